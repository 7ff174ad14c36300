#include "tests/netns/topology.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sluice::netns {
namespace {

std::string errnoText() { return std::strerror(errno); }

// Unique per object within this process; the PID makes it unique per machine.
std::string uniqueSuffix() {
  static std::atomic<int> counter{0};
  return std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

bool writeFile(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

void writeAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// Reads until EOF or the deadline; false on timeout.
bool readAll(int fd, std::string* out, int timeoutMs) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
    out->append(buf, static_cast<size_t>(n));
  }
}

// In a forked child: enter the placement or _exit(). Never returns on failure.
void placeSelf(const Placement& where, int reportFd) {
  if (where.netnsFd >= 0 && ::setns(where.netnsFd, CLONE_NEWNET) != 0) {
    writeAll(reportFd, "child: setns: " + errnoText());
    ::_exit(1);
  }
  if (!where.cgroupProcs.empty() && !writeFile(where.cgroupProcs, "0\n")) {
    writeAll(reportFd, "child: join cgroup " + where.cgroupProcs + ": " + errnoText());
    ::_exit(1);
  }
}

}  // namespace

bool sh(const std::string& command) {
  const int status = std::system(command.c_str());
  if (status != 0) {
    std::fprintf(stderr, "netns: command failed (status %d): %s\n", status, command.c_str());
  }
  return status == 0;
}

ScopedSetns::ScopedSetns(int netnsFd) {
  original_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  ok_ = original_ >= 0 && ::setns(netnsFd, CLONE_NEWNET) == 0;
}

ScopedSetns::~ScopedSetns() {
  if (original_ >= 0) {
    if (ok_) (void)::setns(original_, CLONE_NEWNET);
    ::close(original_);
  }
}

// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------

std::string runInChild(const Placement& where, const std::function<std::string()>& fn,
                       int timeoutMs) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return "child: pipe: " + errnoText();
  std::fflush(nullptr);  // the child must not flush the parent's buffers again
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return "child: fork: " + errnoText();
  }
  if (pid == 0) {
    ::close(fds[0]);
    placeSelf(where, fds[1]);
    writeAll(fds[1], fn());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  const bool done = readAll(fds[0], &out, timeoutMs);
  ::close(fds[0]);
  if (!done) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!done) return "child: timed out after " + std::to_string(timeoutMs) + " ms; got: " + out;
  if (!WIFEXITED(status)) return "child: killed by signal " + std::to_string(WTERMSIG(status));
  return out;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& o) noexcept {
  if (this != &o) {
    ChildProcess dying(pid_);
    pid_ = o.pid_;
    o.pid_ = -1;
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

ChildProcess startEchoServer(int netnsFd, const std::string& exe, const std::string& name,
                             uint16_t port, std::string* error) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    *error = "pipe: " + errnoText();
    return {};
  }
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    *error = "fork: " + errnoText();
    ::close(fds[0]);
    ::close(fds[1]);
    return {};
  }
  if (pid == 0) {
    ::close(fds[0]);
    placeSelf(Placement{netnsFd, {}}, fds[1]);
    // The ready fd must survive exec: a dup without O_CLOEXEC.
    const int ready = ::dup(fds[1]);
    const std::string readyText = std::to_string(ready);
    const std::string portText = std::to_string(port);
    ::execl(exe.c_str(), exe.c_str(), "--name", name.c_str(), "--port", portText.c_str(),
            "--ready-fd", readyText.c_str(), static_cast<char*>(nullptr));
    writeAll(fds[1], "exec " + exe + ": " + errnoText());
    ::_exit(127);
  }
  ::close(fds[1]);
  ChildProcess child(pid);
  std::string out;
  const bool done = readAll(fds[0], &out, 10000);
  ::close(fds[0]);
  if (!done || out != "ready\n") {
    *error = "echo server " + name + " did not start: " + (done ? out : "timed out");
    return {};
  }
  return child;
}

// ---------------------------------------------------------------------------

std::unique_ptr<Topology> Topology::create(const std::vector<std::string>& podNames,
                                           std::string* error) {
  std::unique_ptr<Topology> t(new Topology());
  if (!t->build(podNames, error)) return nullptr;
  return t;
}

bool Topology::build(const std::vector<std::string>& podNames, std::string* error) {
  prefix_ = "sluice-" + uniqueSuffix();
  node_ = prefix_ + "-node";
  auto addNetns = [&](const std::string& name) {
    if (!sh("ip netns add " + name)) return false;
    created_.push_back(name);
    // Before any interface exists, so every one inherits it: no DAD delay
    // on the fixed addresses, no reverse-path filter (see class comment).
    return sh("ip netns exec " + name +
              " sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0"
              " net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0") &&
           sh("ip -n " + name + " link set lo up");
  };
  auto fail = [&](const std::string& what) {
    *error = "topology: " + what + " (see the failed command above)";
    return false;
  };

  if (!addNetns(node_)) return fail("node netns " + node_);
  nodeFd_ = ::open(("/var/run/netns/" + node_).c_str(), O_RDONLY | O_CLOEXEC);
  if (nodeFd_ < 0) return fail("open node netns: " + errnoText());
  const std::string n = "ip -n " + node_ + " ";
  if (!sh("ip netns exec " + node_ +
          " sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1") ||
      !sh(n + "addr add " + kNodeIp4 + "/32 dev lo") ||
      !sh(n + "-6 addr add " + std::string(kNodeIp6) + "/128 dev lo nodad")) {
    return fail("node addresses");
  }

  int index = 0;
  for (const std::string& name : podNames) {
    ++index;
    Pod pod;
    pod.name = name;
    pod.netnsName = prefix_ + "-" + name;
    pod.ip4 = "10.244.0." + std::to_string(10 + index);
    pod.ip6 = "fd00:244::" + std::to_string(10 + index);
    pod.hostVeth = "lxc" + std::to_string(index);
    if (!addNetns(pod.netnsName)) return fail("pod netns " + pod.netnsName);
    pod.netnsFd = ::open(("/var/run/netns/" + pod.netnsName).c_str(), O_RDONLY | O_CLOEXEC);
    if (pod.netnsFd < 0) return fail("open pod netns: " + errnoText());
    const std::string p = "ip -n " + pod.netnsName + " ";
    const std::string v = pod.hostVeth;
    if (!sh(n + "link add " + v + " type veth peer name eth0 netns " + pod.netnsName) ||
        !sh(n + "link set " + v + " up") || !sh(n + "addr add 169.254.1.1/32 dev " + v) ||
        !sh(n + "-6 addr add fe80::1/64 dev " + v + " nodad") ||
        !sh(n + "route add " + pod.ip4 + "/32 dev " + v + " src " + kNodeIp4) ||
        !sh(n + "-6 route add " + pod.ip6 + "/128 dev " + v + " src " + kNodeIp6) ||
        !sh(p + "link set eth0 up") || !sh(p + "addr add " + pod.ip4 + "/32 dev eth0") ||
        !sh(p + "-6 addr add " + pod.ip6 + "/128 dev eth0 nodad") ||
        !sh(p + "route add 169.254.1.1 dev eth0 scope link") ||
        !sh(p + "route add default via 169.254.1.1 dev eth0") ||
        !sh(p + "-6 route add default via fe80::1 dev eth0")) {
      pods_.push_back(pod);
      return fail("pod " + name);
    }
    pods_.push_back(pod);
  }
  return true;
}

const Pod& Topology::pod(const std::string& name) const {
  for (const Pod& p : pods_) {
    if (p.name == name) return p;
  }
  std::fprintf(stderr, "netns: no pod %s\n", name.c_str());
  std::abort();
}

Topology::~Topology() {
  for (Pod& p : pods_) {
    if (p.netnsFd >= 0) ::close(p.netnsFd);
  }
  if (nodeFd_ >= 0) ::close(nodeFd_);
  // Deleting a namespace deletes its interfaces, and with them the peer
  // ends, tc filters and routes.
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) sh("ip netns del " + *it);
}

}  // namespace sluice::netns
