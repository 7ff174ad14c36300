#include "bench/lab/lab_mode.h"

#include "control/agent/proxy/mode_factory.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

extern char** environ;  // posix_spawn's environment (POSIX declares it nowhere)

namespace sluice::lab {

std::vector<std::string> labModeNames() {
  std::vector<std::string> names;
  for (const ModeDriver& d : agent::modeDrivers()) names.push_back(d.name);
  names.push_back("iptables");
  names.push_back("nftables");
  names.push_back("kube-ipvs");
  return names;
}

std::unique_ptr<LabMode> makeLabMode(std::string_view name, LabScale scale) {
  for (const ModeDriver& d : agent::modeDrivers()) {
    if (d.name == name) return makeDatapathLabMode(name, scale);
  }
  if (name == "iptables") return makeIptablesLabMode();
  if (name == "nftables") return makeNftablesLabMode();
  if (name == "kube-ipvs") return makeKubeIpvsLabMode();
  return nullptr;
}

Result<void> pipeTo(const std::string& program, const std::string& input, Deadline deadline,
                    uint64_t* peakRssBytes) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
  if (left <= 0) return Error::aborted(program + ": out of time");
  const std::string log = "/tmp/sluice-bench-" + std::to_string(::getpid()) + ".stderr";
  char seconds[32];
  std::snprintf(seconds, sizeof(seconds), "%.3f", static_cast<double>(left) / 1000.0);
  // posix_spawn of the rusage wrapper rather than popen: pclose() returns
  // no rusage. The child inherits this thread's network namespace.
  int in[2];
  int report[2];
  if (::pipe2(in, O_CLOEXEC) != 0) {
    return Error::internal("pipe: " + std::string(std::strerror(errno)));
  }
  if (::pipe2(report, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return Error::internal("pipe: " + std::string(std::strerror(errno)));
  }
  constexpr int kReportFd = 3;
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  ::posix_spawn_file_actions_adddup2(&actions, report[1], kReportFd);
  ::posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::string exe = "/proc/self/exe", role = kRusageWrapperArg, fd = std::to_string(kReportFd);
  std::string sh = "/bin/sh", dashC = "-c";
  std::string command = "timeout -s KILL " + std::string(seconds) + " " + program;
  char* argv[] = {exe.data(), role.data(), fd.data(), sh.data(), dashC.data(), command.data(),
                  nullptr};
  pid_t pid = -1;
  const int spawned = ::posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv, environ);
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(report[1]);
  if (spawned != 0) {
    ::close(in[1]);
    ::close(report[0]);
    return Error::internal("spawn " + program + ": " + std::strerror(spawned));
  }
  // SIGPIPE is ignored by the lab, so a killed program fails write, not us.
  size_t written = 0;
  while (written < input.size()) {
    const ssize_t n = ::write(in[1], input.data() + written, input.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  ::close(in[1]);
  std::string maxRss;
  char buf[64];
  for (ssize_t n; (n = ::read(report[0], buf, sizeof(buf))) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    maxRss.append(buf, static_cast<size_t>(n));
  }
  ::close(report[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (peakRssBytes != nullptr && !maxRss.empty()) {
    *peakRssBytes =
        std::max<uint64_t>(*peakRssBytes, std::strtoull(maxRss.c_str(), nullptr, 10) * 1024);
  }
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

int runRusageWrapper(char** argv) {
  const int report = std::atoi(argv[2]);
  ::fcntl(report, F_SETFD, FD_CLOEXEC);  // not for the program
  const pid_t pid = ::fork();
  if (pid < 0) return 127;
  if (pid == 0) {
    ::execv(argv[3], argv + 3);
    ::_exit(127);
  }
  int status = 0;
  rusage usage{};
  while (::wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) return 127;
  }
  char line[32];
  const int n = std::snprintf(line, sizeof(line), "%ld\n", usage.ru_maxrss);
  (void)!::write(report, line, static_cast<size_t>(n));
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
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
