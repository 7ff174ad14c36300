#include "bench/lab/lab_mode.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>

namespace sluice::lab {

std::vector<std::string> labModeNames() { return {"ebpf", "iptables", "nftables"}; }

std::unique_ptr<LabMode> makeLabMode(std::string_view name, uint32_t endpointCapacity) {
  if (name == "ebpf") return makeEbpfLabMode(endpointCapacity);
  if (name == "iptables") return makeIptablesLabMode();
  if (name == "nftables") return makeNftablesLabMode();
  return nullptr;
}

Result<void> pipeTo(const std::string& program, const std::string& input, Deadline deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
  if (left <= 0) return Error::aborted(program + ": out of time");
  const std::string log = "/tmp/sluice-bench-" + std::to_string(::getpid()) + ".stderr";
  char seconds[32];
  std::snprintf(seconds, sizeof(seconds), "%.3f", static_cast<double>(left) / 1000.0);
  // SIGPIPE is ignored by the lab, so a killed program fails fwrite, not us.
  FILE* p = ::popen(("timeout -s KILL " + std::string(seconds) + " " + program + " 2>" + log).c_str(), "w");
  if (p == nullptr) return Error::internal("popen " + program);
  const size_t written = std::fwrite(input.data(), 1, input.size(), p);
  const int status = ::pclose(p);
  std::string err;
  if (FILE* f = std::fopen(log.c_str(), "r")) {
    char buf[512];
    while (std::fgets(buf, sizeof(buf), f) != nullptr && err.size() < 2000) err += buf;
    std::fclose(f);
  }
  std::remove(log.c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 137) {
    return Error::aborted(program + ": killed at the time budget");
  }
  if (written != input.size() || status != 0) {
    return Error::internal(program + " failed (status " + std::to_string(status) + "): " + err);
  }
  return {};
}

Result<std::string> capture(const std::string& command) {
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return Error::internal("popen " + command);
  std::string out;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  if (::pclose(p) != 0) return Error::internal(command + " failed");
  return out;
}

std::string chainHash(const std::string& text) {
  // FNV-1a 64, twice with different seeds: 80 bits as 16 base32 characters
  // (kube-proxy takes 16 base32 characters of a SHA-256; names only need to
  // be unique and stable here).
  auto fnv = [&](uint64_t h) {
    for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ULL;
    return h;
  };
  const uint64_t a = fnv(0xcbf29ce484222325ULL);
  const uint64_t b = fnv(0x84222325cbf29ce4ULL);
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  for (int i = 0; i < 8; ++i) out += kAlphabet[(a >> (5 * i)) & 31];
  for (int i = 0; i < 8; ++i) out += kAlphabet[(b >> (5 * i)) & 31];
  return out;
}

}  // namespace sluice::lab
