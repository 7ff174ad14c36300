#include "bench/lab/lab_topology.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

namespace sluice::lab {
namespace {

std::string errnoText() { return std::strerror(errno); }

// The backend workload, in a forked child placed in a backend namespace: TCP
// on [::]:port (dual stack), one answer line per request line, "<local
// address>\n" — the backend address the connection reached, which is how
// probes see where a service sent them. A connection whose first line starts
// with "GET " is HTTP/1.1 instead (for wrk): each request, ended by its empty
// line, gets a 200 with that line as body, and the connection stays open.
// Single-threaded poll loop: the lab's clients keep at most a few dozen
// connections open at once.
[[noreturn]] void runEchoServer(uint16_t port, int readyFd) {
  const int lfd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  const int off = 0;
  const int on = 1;
  ::setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_port = htons(port);
  addr.sin6_addr = in6addr_any;
  if (lfd < 0 || ::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(lfd, 4096) != 0) {
    ::_exit(1);
  }
  (void)!::write(readyFd, "ready\n", 6);
  ::close(readyFd);
  std::vector<pollfd> fds{{lfd, POLLIN, 0}};
  std::map<int, std::string> pending;  // partial request line per connection
  std::map<int, std::string> answer;   // "<local address>\n" per connection
  std::map<int, bool> http;
  for (;;) {
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;
    std::vector<pollfd> next{fds[0]};
    if (fds[0].revents & POLLIN) {
      for (;;) {
        const int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c < 0) break;
        sockaddr_in6 local{};
        socklen_t len = sizeof(local);
        ::getsockname(c, reinterpret_cast<sockaddr*>(&local), &len);
        char text[INET6_ADDRSTRLEN] = {};
        if (IN6_IS_ADDR_V4MAPPED(&local.sin6_addr)) {
          ::inet_ntop(AF_INET, &local.sin6_addr.s6_addr[12], text, sizeof(text));
        } else {
          ::inet_ntop(AF_INET6, &local.sin6_addr, text, sizeof(text));
        }
        answer[c] = std::string(text) + "\n";
        next.push_back({c, POLLIN, 0});
      }
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      const int c = fds[i].fd;
      bool keep = true;
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        char buf[4096];
        const ssize_t n = ::read(c, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          keep = false;
        } else if (n > 0) {
          std::string& p = pending[c];
          p.append(buf, static_cast<size_t>(n));
          size_t nl;
          while ((nl = p.find('\n')) != std::string::npos) {
            const std::string line = p.substr(0, nl);
            p.erase(0, nl + 1);
            if (line.rfind("GET ", 0) == 0) http[c] = true;
            if (!http[c]) {
              (void)!::write(c, answer[c].data(), answer[c].size());
            } else if (line.empty() || line == "\r") {
              const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: " +
                                        std::to_string(answer[c].size()) + "\r\n\r\n" +
                                        answer[c];
              (void)!::write(c, reply.data(), reply.size());
            }
          }
        }
      }
      if (keep) {
        next.push_back({c, POLLIN, 0});
      } else {
        ::close(c);
        pending.erase(c);
        answer.erase(c);
        http.erase(c);
      }
    }
    fds.swap(next);
  }
}

pid_t startEchoServer(int netnsFd, uint16_t port, std::string* error) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    *error = "pipe: " + errnoText();
    return -1;
  }
  std::fflush(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    *error = "fork: " + errnoText();
    return -1;
  }
  if (pid == 0) {
    ::close(fds[0]);
    // Dies with the lab even when the lab is SIGKILLed; the parent check
    // closes the race with a parent that died before prctl.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::signal(SIGINT, SIG_IGN);  // Ctrl-C is the lab's to handle; it kills us
    if (::setns(netnsFd, CLONE_NEWNET) != 0) ::_exit(1);
    runEchoServer(port, fds[1]);
  }
  ::close(fds[1]);
  char buf[16] = {};
  pollfd p{fds[0], POLLIN, 0};
  ssize_t n = 0;
  if (::poll(&p, 1, 5000) == 1) n = ::read(fds[0], buf, sizeof(buf) - 1);
  ::close(fds[0]);
  if (n <= 0 || std::string(buf) != "ready\n") {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    *error = "echo server did not start";
    return -1;
  }
  return pid;
}

}  // namespace

bool sh(const std::string& command) {
  const int status = std::system(command.c_str());
  if (status != 0) {
    std::fprintf(stderr, "sluice-bench: command failed (status %d): %s\n", status,
                 command.c_str());
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

std::unique_ptr<LabTopology> LabTopology::create(int backendNetns, int ipsPerNetns,
                                                 std::string* error) {
  std::unique_ptr<LabTopology> t(new LabTopology());
  if (!t->build(backendNetns, ipsPerNetns, error)) return nullptr;
  return t;
}

bool LabTopology::addNetns(const std::string& name, int* fd) {
  if (!sh("ip netns add " + name)) return false;
  created_.push_back(name);
  *fd = ::open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  if (*fd < 0) return false;
  fds_.push_back(*fd);
  return sh("ip netns exec " + name +
            " sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0") &&
         sh("ip -n " + name + " link set lo up");
}

bool LabTopology::build(int backendNetns, int ipsPerNetns, std::string* error) {
  static int counter = 0;
  prefix_ = "slab-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  node_ = prefix_ + "-node";
  auto fail = [&](const std::string& what) {
    *error = "topology: " + what + " (see the failed command above)";
    return false;
  };
  if (!addNetns(node_, &nodeFd_)) return fail("node netns");
  const std::string n = "ip -n " + node_ + " ";
  if (!sh("ip netns exec " + node_ + " sysctl -qw net.ipv4.ip_forward=1") ||
      !sh(n + "addr add " + kNodeIp + "/32 dev lo")) {
    return fail("node addresses");
  }
  // Wires a peer namespace: veth `veth` in the node, eth0 in the peer.
  auto wire = [&](const std::string& peer, const std::string& veth) {
    const std::string p = "ip -n " + peer + " ";
    return sh(n + "link add " + veth + " type veth peer name eth0 netns " + peer) &&
           sh(n + "link set " + veth + " up") && sh(n + "addr add 169.254.1.1/32 dev " + veth) &&
           sh(p + "link set eth0 up") && sh(p + "route add 169.254.1.1 dev eth0 scope link") &&
           sh(p + "route add default via 169.254.1.1 dev eth0");
  };
  client_ = prefix_ + "-client";
  const std::string& client = client_;
  clientVeth_ = "lxcclient";
  if (!addNetns(client, &clientFd_) || !wire(client, clientVeth_) ||
      !sh("ip -n " + client + " addr add " + kClientIp + "/32 dev eth0") ||
      !sh(n + "route add " + kClientIp + "/32 dev " + clientVeth_ + " src " + kNodeIp)) {
    return fail("client netns");
  }
  for (int b = 0; b < backendNetns; ++b) {
    BackendNetns be;
    be.netnsName = prefix_ + "-be" + std::to_string(b);
    be.hostVeth = "lxcbe" + std::to_string(b);
    if (!addNetns(be.netnsName, &be.netnsFd) || !wire(be.netnsName, be.hostVeth)) {
      return fail("backend netns " + be.netnsName);
    }
    // One `ip -batch` for all addresses: hundreds of fork/execs cost seconds.
    std::string batch;
    for (int k = 0; k < ipsPerNetns; ++k) {
      be.ips.push_back("10.245." + std::to_string(b) + "." + std::to_string(k + 1));
      batch += "addr add " + be.ips.back() + "/32 dev eth0\n";
    }
    const std::string file = "/tmp/" + prefix_ + "-be" + std::to_string(b) + ".batch";
    if (FILE* f = std::fopen(file.c_str(), "w")) {
      std::fputs(batch.c_str(), f);
      std::fclose(f);
    }
    const bool added = sh("ip -n " + be.netnsName + " -batch " + file);
    ::unlink(file.c_str());
    if (!added ||
        !sh(n + "route add 10.245." + std::to_string(b) + ".0/24 dev " + be.hostVeth + " src " +
            kNodeIp)) {
      return fail("backend addresses " + be.netnsName);
    }
    be.echoPid = startEchoServer(be.netnsFd, kBackendPort, error);
    backends_.push_back(be);
    if (be.echoPid < 0) return false;
  }
  return true;
}

std::vector<std::string> LabTopology::backendIps() const {
  std::vector<std::string> out;
  for (size_t k = 0;; ++k) {
    bool any = false;
    for (const BackendNetns& b : backends_) {
      if (k < b.ips.size()) {
        out.push_back(b.ips[k]);
        any = true;
      }
    }
    if (!any) break;
  }
  return out;
}

LabTopology::~LabTopology() {
  for (const BackendNetns& b : backends_) {
    if (b.echoPid > 0) {
      ::kill(b.echoPid, SIGKILL);
      ::waitpid(b.echoPid, nullptr, 0);
    }
  }
  for (int fd : fds_) ::close(fd);
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) sh("ip netns del " + *it);
}

}  // namespace sluice::lab
