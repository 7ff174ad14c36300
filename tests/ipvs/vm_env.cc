#include "tests/ipvs/vm_env.h"

#include <stdio.h>
#include <sys/wait.h>

#include <cstdlib>
#include <thread>

namespace sluice::ipvs::testing {

int sh(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  if (status < 0 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

std::string capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

int feed(const std::string& cmd, const std::string& input) {
  FILE* p = popen(cmd.c_str(), "w");
  if (p == nullptr) return -1;
  fwrite(input.data(), 1, input.size(), p);
  const int status = pclose(p);
  if (status < 0 || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

std::string squeeze(const std::string& text) {
  std::string out;
  bool blank = false;
  for (char c : text) {
    if (c == ' ' || c == '\t') {
      blank = true;
      continue;
    }
    if (blank && !out.empty() && out.back() != '\n' && c != '\n') out += ' ';
    blank = false;
    out += c;
  }
  return out;
}

bool waitFor(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

LocalLink::LocalLink(const std::string& name, const std::vector<std::string>& cidrs) : name_(name) {
  std::string batch = "link add " + name_ + " type dummy\nlink set " + name_ + " up\n";
  for (const auto& cidr : cidrs) batch += "addr add " + cidr + " dev " + name_ + "\n";
  ok_ = feed("ip -batch -", batch) == 0;
}

LocalLink::~LocalLink() { sh("ip link del " + name_ + " 2>/dev/null"); }

}  // namespace sluice::ipvs::testing
