#include "bench/lab/traffic.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "bench/lab/lab_measure.h"
#include "bench/lab/lab_topology.h"

namespace sluice::lab {

std::atomic<bool> gStop{false};

namespace {

double usSince(Clock::time_point t) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

int msLeft(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// Non-blocking connect with a deadline; returns the fd or -1.
int connectTo(const Target& t, Clock::time_point deadline, double* connectUs) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(t.port);
  if (::inet_pton(AF_INET, t.ip.c_str(), &addr.sin_addr) != 1) return -1;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  // Closing with RST leaves no TIME_WAIT: tens of thousands of connections
  // from one client address would otherwise exhaust its ephemeral ports.
  const linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const auto start = Clock::now();
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
      errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  if (::poll(&p, 1, msLeft(deadline)) != 1) {
    ::close(fd);
    return -1;
  }
  int err = 0;
  socklen_t len = sizeof(err);
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    ::close(fd);
    return -1;
  }
  if (connectUs != nullptr) *connectUs = usSince(start);
  return fd;
}

// Sends one request line and reads one answer line.
std::optional<std::string> exchange(int fd, Clock::time_point deadline) {
  if (::send(fd, "x\n", 2, MSG_NOSIGNAL) != 2) return std::nullopt;
  std::string out;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, msLeft(deadline)) != 1) return std::nullopt;
    char buf[128];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return std::nullopt;
    out.append(buf, static_cast<size_t>(n));
    if (const size_t nl = out.find('\n'); nl != std::string::npos) return out.substr(0, nl);
  }
}

}  // namespace

std::optional<std::string> requestOnce(const Target& t, int timeoutMs, double* connectUs) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  const int fd = connectTo(t, deadline, connectUs);
  if (fd < 0) return std::nullopt;
  auto answer = exchange(fd, deadline);
  ::close(fd);
  return answer;
}

ConnectResult measureConnect(int clientNetnsFd, const std::vector<Target>& targets, int count,
                             Clock::time_point deadline) {
  ConnectResult r;
  ScopedSetns in(clientNetnsFd);
  if (!in.ok() || targets.empty()) {
    r.failures = static_cast<uint64_t>(count);
    return r;
  }
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<size_t> pick(0, targets.size() - 1);
  for (int i = 0; i < count && !gStop; ++i) {
    if (Clock::now() >= deadline) {
      r.outOfTime = true;
      break;
    }
    double us = 0;
    if (requestOnce(targets[pick(rng)], 1000, &us)) {
      r.latenciesUs.push_back(us);
    } else {
      ++r.failures;
    }
  }
  return r;
}

std::optional<double> waitForBackend(int clientNetnsFd, const Target& t, const std::string& expected,
                                     Clock::time_point since, Clock::time_point deadline) {
  ScopedSetns in(clientNetnsFd);
  if (!in.ok()) return std::nullopt;
  while (!gStop && Clock::now() < deadline) {
    auto answer = requestOnce(t, 200, nullptr);
    if (answer && *answer == expected) {
      return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
    }
  }
  return std::nullopt;
}

namespace {

// user+system CPU seconds of `pid` (0: this process, all threads).
double cpuSeconds(pid_t pid) {
  const std::string path = pid == 0 ? "/proc/self/stat" : "/proc/" + std::to_string(pid) + "/stat";
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return 0;
  char buf[1024] = {};
  const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  // Fields after the ")" of comm: state is field 3; utime 14, stime 15.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr || n == 0) return 0;
  unsigned long long utime = 0, stime = 0;
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                  &stime) != 2) {
    return 0;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double cpuSeconds(const std::vector<pid_t>& processes) {
  double s = cpuSeconds(0);
  for (pid_t p : processes) s += cpuSeconds(p);
  return s;
}

}  // namespace

std::optional<double> runWrk(const std::string& clientNetns, const Target& t, double seconds,
                             int connections) {
  if (std::system("command -v wrk >/dev/null 2>&1") != 0) return std::nullopt;
  const std::string cmd = "ip netns exec " + clientNetns + " wrk -t2 -c" +
                          std::to_string(connections) + " -d" +
                          std::to_string(std::max(1, static_cast<int>(seconds))) +
                          "s --timeout 2s http://" + t.ip + ":" + std::to_string(t.port) +
                          "/ 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return std::nullopt;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  if (::pclose(p) != 0) return std::nullopt;
  const size_t at = out.find("Requests/sec:");
  if (at == std::string::npos) return std::nullopt;
  return std::strtod(out.c_str() + at + 13, nullptr);
}

RpsResult measureRps(int clientNetnsFd, const std::vector<Target>& targets, int threads,
                     double seconds, bool keepAlive, const std::vector<pid_t>& processes) {
  if (targets.empty() || threads <= 0) return {};
  std::atomic<uint64_t> done{0};
  const double cpuBefore = cpuSeconds(processes);
  const double irqBefore = systemIrqSeconds();
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(seconds));
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) {
    pool.emplace_back([&, i] {
      ScopedSetns in(clientNetnsFd);
      if (!in.ok()) return;
      std::mt19937_64 rng(static_cast<uint64_t>(i) + 1);
      std::uniform_int_distribution<size_t> pick(0, targets.size() - 1);
      uint64_t mine = 0;
      int fd = -1;
      while (!gStop && Clock::now() < end) {
        const auto deadline = std::min(end, Clock::now() + std::chrono::seconds(1));
        if (!keepAlive) {
          if (requestOnce(targets[pick(rng)], 1000, nullptr)) ++mine;
          continue;
        }
        if (fd < 0) fd = connectTo(targets[pick(rng)], deadline, nullptr);
        if (fd < 0) continue;
        if (exchange(fd, deadline)) {
          ++mine;
        } else {
          ::close(fd);
          fd = -1;
        }
      }
      if (fd >= 0) ::close(fd);
      done += mine;
    });
  }
  for (std::thread& t : pool) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = cpuSeconds(processes) - cpuBefore;
  const double irq = systemIrqSeconds() - irqBefore;
  RpsResult r;
  r.rps = static_cast<double>(done.load()) / elapsed;
  if (done > 0) {
    r.cpuUsPerRequest = cpu * 1e6 / static_cast<double>(done.load());
    r.softirqUsPerRequest = irq * 1e6 / static_cast<double>(done.load());
  }
  return r;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const double rank = std::ceil(p / 100.0 * static_cast<double>(v.size()));
  const size_t idx = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return v[std::min(idx, v.size() - 1)];
}

}  // namespace sluice::lab
