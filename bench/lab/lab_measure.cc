#include "bench/lab/lab_measure.h"

#include <dirent.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <thread>

namespace sluice::lab {

uint64_t kernelMemoryBytes() {
  FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return 0;
  uint64_t kib = 0;
  char line[256];
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    char name[64] = {};
    unsigned long long v = 0;
    if (std::sscanf(line, "%63[^:]: %llu", name, &v) != 2) continue;
    if (std::strcmp(name, "SUnreclaim") == 0 || std::strcmp(name, "Percpu") == 0 ||
        std::strcmp(name, "VmallocUsed") == 0) {
      kib += v;
    }
  }
  std::fclose(f);
  return kib * 1024;
}

KernelMemoryReading settledKernelMemory(std::chrono::milliseconds maxWait, int window) {
  constexpr double kQuietSpread = 512.0 * 1024;
  const auto until = std::chrono::steady_clock::now() + maxWait;
  std::deque<double> last;
  for (;;) {
    last.push_back(static_cast<double>(kernelMemoryBytes()));
    if (static_cast<int>(last.size()) > window) last.pop_front();
    const auto [lo, hi] = std::minmax_element(last.begin(), last.end());
    const bool full = static_cast<int>(last.size()) == window;
    if ((full && *hi - *lo < kQuietSpread) || std::chrono::steady_clock::now() >= until) {
      double sum = 0;
      for (double v : last) sum += v;
      return {sum / static_cast<double>(last.size()), *hi - *lo};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

uint64_t trimmedRssBytes() {
  ::malloc_trim(0);
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  unsigned long long kib = 0;
  char line[256];
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::sscanf(line, "VmRSS: %llu", &kib) == 1) break;
  }
  std::fclose(f);
  return kib * 1024;
}

double systemIrqSeconds() {
  FILE* f = std::fopen("/proc/stat", "r");
  if (f == nullptr) return 0;
  // "cpu  user nice system idle iowait irq softirq steal ..."
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
  const int n = std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system,
                            &idle, &iowait, &irq, &softirq);
  std::fclose(f);
  if (n != 7) return 0;
  return static_cast<double>(irq + softirq) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::vector<pid_t> ksoftirqdPids() {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    FILE* f = std::fopen((std::string("/proc/") + e->d_name + "/comm").c_str(), "r");
    if (f == nullptr) continue;
    char comm[64] = {};
    if (std::fgets(comm, sizeof(comm), f) != nullptr && std::strncmp(comm, "ksoftirqd/", 10) == 0) {
      out.push_back(static_cast<pid_t>(pid));
    }
    std::fclose(f);
  }
  ::closedir(d);
  return out;
}

}  // namespace sluice::lab
