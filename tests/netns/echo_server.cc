// echo_server: the backend workload of the netns suite. Serves TCP and UDP
// on one port, IPv4 and IPv6 (one dual-stack socket each), and answers
// every request line (TCP) or datagram (UDP) with
//
//   "<name> <peer address>\n"
//
// so a client learns which backend it reached and the backend's view of
// who connected (the client, the node, or the hairpin address after NAT).
// Runs until killed. With --ready-fd N it writes "ready\n" to fd N once
// both sockets listen, then closes it, so the parent can wait for it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "echo_server: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

std::string peerText(const sockaddr_in6& a) {
  char text[INET6_ADDRSTRLEN] = {};
  if (IN6_IS_ADDR_V4MAPPED(&a.sin6_addr)) {
    ::inet_ntop(AF_INET, &a.sin6_addr.s6_addr[12], text, sizeof(text));
  } else {
    ::inet_ntop(AF_INET6, &a.sin6_addr, text, sizeof(text));
  }
  return text;
}

int listenOn(int type, uint16_t port) {
  const int fd = ::socket(AF_INET6, type | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  const int off = 0;
  const int on = 1;
  ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_port = htons(port);
  addr.sin6_addr = in6addr_any;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) die("bind");
  if (type == SOCK_STREAM && ::listen(fd, 128) != 0) die("listen");
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  std::string name;
  int port = 0;
  int readyFd = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--name") {
      name = argv[i + 1];
    } else if (flag == "--port") {
      port = std::atoi(argv[i + 1]);
    } else if (flag == "--ready-fd") {
      readyFd = std::atoi(argv[i + 1]);
    }
  }
  if (name.empty() || port <= 0 || port > 65535) {
    std::fprintf(stderr, "usage: echo_server --name NAME --port PORT [--ready-fd FD]\n");
    return 2;
  }
  const int tcp = listenOn(SOCK_STREAM, static_cast<uint16_t>(port));
  const int udp = listenOn(SOCK_DGRAM, static_cast<uint16_t>(port));
  if (readyFd >= 0) {
    if (::write(readyFd, "ready\n", 6) != 6) die("write ready");
    ::close(readyFd);
  }

  // Connected TCP clients: fd -> peer text and the partial line so far.
  struct Conn {
    std::string peer;
    std::string pending;
  };
  std::map<int, Conn> conns;
  for (;;) {
    std::vector<pollfd> fds{{tcp, POLLIN, 0}, {udp, POLLIN, 0}};
    for (const auto& [fd, c] : conns) fds.push_back({fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (fds[0].revents & POLLIN) {
      sockaddr_in6 peer{};
      socklen_t len = sizeof(peer);
      const int c = ::accept4(tcp, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
      if (c >= 0) conns[c] = Conn{peerText(peer), {}};
    }
    if (fds[1].revents & POLLIN) {
      char buf[2048];
      sockaddr_in6 peer{};
      socklen_t len = sizeof(peer);
      const ssize_t n =
          ::recvfrom(udp, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&peer), &len);
      if (n >= 0) {
        const std::string reply = name + " " + peerText(peer) + "\n";
        (void)::sendto(udp, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&peer),
                       len);
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const int fd = fds[i].fd;
      char buf[2048];
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n <= 0) {
        ::close(fd);
        conns.erase(fd);
        continue;
      }
      Conn& c = conns[fd];
      c.pending.append(buf, static_cast<size_t>(n));
      for (size_t nl; (nl = c.pending.find('\n')) != std::string::npos;) {
        c.pending.erase(0, nl + 1);
        const std::string reply = name + " " + c.peer + "\n";
        if (::write(fd, reply.data(), reply.size()) < 0) break;
      }
    }
  }
}
