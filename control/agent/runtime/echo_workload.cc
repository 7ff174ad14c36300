#include "control/agent/runtime/echo_workload.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "dataplane/log.h"

namespace sluice::agent {
namespace {

std::atomic<bool> gStop{false};

void onSignal(int) { gStop.store(true); }

std::string hostName() {
  char buf[256] = {};
  ::gethostname(buf, sizeof(buf) - 1);
  return buf;
}

std::string peerText(const sockaddr_in& a) {
  char ip[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a.sin_addr, ip, sizeof(ip));
  return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
}

int bound(int type, uint16_t port) {
  int fd = ::socket(AF_INET, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      (type == SOCK_STREAM && ::listen(fd, 128) != 0)) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// One HTTP/1.x request per connection (Connection: close).
void serveHttp(int fd, sockaddr_in peer, std::string header) {
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string req;
  char buf[2048];
  while (req.find("\r\n\r\n") == std::string::npos && req.find("\n\n") == std::string::npos &&
         req.size() < 16384) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    req.append(buf, static_cast<size_t>(n));
  }
  std::string line = req.substr(0, req.find_first_of("\r\n"));
  std::string body = header + "client: " + peerText(peer) + "\nrequest: " + line + "\n";
  std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  size_t off = 0;
  while (off < resp.size()) {
    ssize_t w = ::send(fd, resp.data() + off, resp.size() - off, MSG_NOSIGNAL);
    if (w <= 0) break;
    off += static_cast<size_t>(w);
  }
  ::shutdown(fd, SHUT_WR);
  ::close(fd);
  std::printf("%s %s\n", peerText(peer).c_str(), line.c_str());
  std::fflush(stdout);
}

}  // namespace

std::string localPodIp() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    auto* a = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
    if ((ntohl(a->sin_addr.s_addr) >> 24) == 127) continue;
    char ip[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
    out = ip;
    break;
  }
  ::freeifaddrs(list);
  return out;
}

int runEchoWorkload(const EchoOptions& options) {
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  std::vector<uint16_t> ports = options.ports.empty() ? std::vector<uint16_t>{8080} : options.ports;
  std::vector<pollfd> fds;
  std::vector<bool> isTcp;
  for (uint16_t port : ports) {
    int t = bound(SOCK_STREAM, port);
    int u = bound(SOCK_DGRAM, port);
    if (t < 0 || u < 0) {
      log::error("echo", "cannot bind port", {{"port", port}, {"err", std::strerror(errno)}});
      return 1;
    }
    fds.push_back({t, POLLIN, 0});
    isTcp.push_back(true);
    fds.push_back({u, POLLIN, 0});
    isTcp.push_back(false);
  }
  const std::string ident = "hostname: " + hostName() + "\npod-ip: " + localPodIp() + "\n";
  const std::string header = ident + "version: " + options.tag + "\n";
  std::printf("echo %s: listening on %zu port(s) as %s", options.tag.c_str(), ports.size(),
              ident.c_str());
  std::fflush(stdout);
  while (!gStop.load()) {
    int n = ::poll(fds.data(), fds.size(), 200);
    if (n <= 0) continue;
    for (size_t i = 0; i < fds.size(); ++i) {
      if ((fds[i].revents & POLLIN) == 0) continue;
      sockaddr_in peer{};
      socklen_t len = sizeof(peer);
      if (isTcp[i]) {
        int c = ::accept4(fds[i].fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
        if (c >= 0) std::thread(serveHttp, c, peer, header).detach();
      } else {
        char buf[65536];
        ssize_t r =
            ::recvfrom(fds[i].fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&peer), &len);
        if (r < 0) continue;
        std::string reply = ident + std::string(buf, static_cast<size_t>(r));
        ::sendto(fds[i].fd, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&peer), len);
      }
    }
  }
  std::printf("echo: terminating\n");
  std::fflush(stdout);
  for (auto& p : fds) ::close(p.fd);
  return 0;
}

int runEchoWorkload(int argc, char** argv, int first) {
  EchoOptions o;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--port" || a == "-p") && i + 1 < argc) {
      long p = std::strtol(argv[++i], nullptr, 10);
      if (p <= 0 || p > 65535) {
        log::error("echo", "bad port", {{"port", argv[i]}});
        return 2;
      }
      o.ports.push_back(static_cast<uint16_t>(p));
    } else if (a == "--tag" && i + 1 < argc) {
      o.tag = argv[++i];
    } else {
      log::error("echo", "unknown argument (usage: echo [--port N]... [--tag T])", {{"argument", a}});
      return 2;
    }
  }
  return runEchoWorkload(o);
}

}  // namespace sluice::agent
