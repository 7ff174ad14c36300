#include "tests/cni/cni_test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "cni/invoke.h"
#include "cni/netlink.h"

namespace sluice::cni::testing {
namespace {

std::atomic<int> counter{0};

sockaddr_storage toSockaddr(const IpAddress& addr, uint16_t port, socklen_t& len) {
  sockaddr_storage ss{};
  if (addr.isV4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, addr.bytes().data(), 4);
    len = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    std::memcpy(&sin6->sin6_addr, addr.bytes().data(), 16);
    len = sizeof(sockaddr_in6);
  }
  return ss;
}

std::string addrText(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof(buf));
  }
  return buf;
}

// A socket made inside `netns`: it stays there whichever thread uses it.
Result<int> socketIn(const Netns& netns, int family) {
  return netns.run([family]() -> Result<int> {
    int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Error::internal(std::string("socket: ") + std::strerror(errno));
    return fd;
  });
}

bool waitFor(int fd, short events, int timeoutMs) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, timeoutMs) == 1;
}

}  // namespace

std::string uniqueName(std::string_view prefix) {
  return std::string(prefix) + std::to_string(::getpid()) + "x" + std::to_string(counter++);
}

ScopedNetns::ScopedNetns(std::string_view prefix) : name_(uniqueName(prefix)) {
  auto ns = Netns::create(name_);
  if (!ns) {
    error_ = ns.error().message;
    return;
  }
  netns_.emplace(std::move(*ns));
}

ScopedNetns::~ScopedNetns() { remove(); }

void ScopedNetns::remove() {
  if (!netns_) return;
  netns_.reset();  // closing our fd lets the kernel free it (and its links)
  (void)Netns::remove(name_);
}

ScopedDir::ScopedDir() {
  char tmpl[] = "/tmp/sluice-cni-test-XXXXXX";
  if (::mkdtemp(tmpl) != nullptr) path_ = tmpl;
}

ScopedDir::~ScopedDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

std::string binDir() {
  const char* dir = std::getenv("SLUICE_CNI_BIN_DIR");
  return dir != nullptr ? dir : "cni";
}

std::string cniPath() { return binDir() + ":" + std::string(kReferencePluginDir); }

PluginRun runPlugin(const std::string& plugin, const std::map<std::string, std::string>& env,
                    const std::string& stdinData, const Netns* nodeNetns) {
  ExecRequest req;
  req.path = plugin.find('/') == std::string::npos ? binDir() + "/" + plugin : plugin;
  // PATH too: portmap runs iptables, as it would under a real runtime.
  const char* path = std::getenv("PATH");
  req.env.push_back(std::string("PATH=") + (path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin"));
  for (const auto& [k, v] : env) req.env.push_back(k + "=" + v);
  req.stdinData = stdinData;
  req.netnsFd = nodeNetns != nullptr ? nodeNetns->fd() : -1;
  PluginRun run;
  auto out = execPlugin(req);
  if (!out) {
    run.stderrData = out.error().message;
    return run;
  }
  run.exitCode = out->exitCode;
  run.stdoutData = out->stdoutData;
  run.stderrData = out->stderrData;
  if (auto doc = parseJson(run.stdoutData, "stdout")) run.output = *doc;
  return run;
}

std::map<std::string, std::string> cniEnv(std::string_view command, std::string_view containerId,
                                          std::string_view netnsPath, std::string_view ifName) {
  std::map<std::string, std::string> env = {{"CNI_COMMAND", std::string(command)},
                                            {"CNI_PATH", cniPath()}};
  if (!containerId.empty()) env["CNI_CONTAINERID"] = std::string(containerId);
  if (!netnsPath.empty()) env["CNI_NETNS"] = std::string(netnsPath);
  if (!ifName.empty()) env["CNI_IFNAME"] = std::string(ifName);
  return env;
}

std::vector<std::string> linkNames(const Netns& netns) {
  std::vector<std::string> out;
  auto sock = NetlinkSocket::createIn(netns);
  if (!sock) return out;
  auto links = sock->links();
  if (!links) return out;
  for (const auto& l : *links) out.push_back(l.name);
  return out;
}

std::vector<std::string> listDir(const std::string& path) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(path, ec)) {
    out.push_back(e.path().filename().string());
  }
  return out;
}

std::vector<std::string> allocatedIps(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& f : listDir(dir)) {
    if (IpAddress::parse(f)) out.push_back(f);
  }
  return out;
}

Listener::~Listener() {
  if (fd >= 0) ::close(fd);
}

void listenTcp(const Netns& netns, const IpAddress& addr, uint16_t port, Listener& out) {
  auto fd = socketIn(netns, addr.isV4() ? AF_INET : AF_INET6);
  if (!fd) {
    out.error = fd.error().message;
    return;
  }
  out.fd = *fd;
  const int one = 1;
  ::setsockopt(out.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len = 0;
  auto ss = toSockaddr(addr, port, len);
  if (::bind(out.fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(out.fd, 64) != 0) {
    out.error = "bind/listen " + addr.toString() + ":" + std::to_string(port) + ": " +
                std::strerror(errno);
    return;
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof(bound);
  ::getsockname(out.fd, reinterpret_cast<sockaddr*>(&bound), &blen);
  out.port = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                              : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
}

Exchange tcpExchange(const Netns& client, const IpAddress& addr, uint16_t port, Listener& server,
                     const std::string& message, int timeoutMs) {
  Exchange ex;
  auto fd = socketIn(client, addr.isV4() ? AF_INET : AF_INET6);
  if (!fd) {
    ex.error = fd.error().message;
    return ex;
  }
  const int c = *fd;
  ::fcntl(c, F_SETFL, O_NONBLOCK);
  socklen_t len = 0;
  auto ss = toSockaddr(addr, port, len);
  const std::string target = addr.toString() + ":" + std::to_string(port);
  if (::connect(c, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
    ex.error = "connect " + target + ": " + std::strerror(errno);
    ::close(c);
    return ex;
  }
  int soError = 0;
  socklen_t soLen = sizeof(soError);
  if (!waitFor(c, POLLOUT, timeoutMs) || ::getsockopt(c, SOL_SOCKET, SO_ERROR, &soError, &soLen) != 0 ||
      soError != 0) {
    ex.error = "connect " + target + ": " + (soError != 0 ? std::strerror(soError) : "timed out");
    ::close(c);
    return ex;
  }
  [[maybe_unused]] auto sent = ::send(c, message.data(), message.size(), MSG_NOSIGNAL);
  ::close(c);  // EOF tells the server the message is complete
  if (!waitFor(server.fd, POLLIN, timeoutMs)) {
    ex.error = "accept on " + target + ": timed out";
    return ex;
  }
  sockaddr_storage peer{};
  socklen_t plen = sizeof(peer);
  const int s = ::accept4(server.fd, reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC);
  if (s < 0) {
    ex.error = std::string("accept: ") + std::strerror(errno);
    return ex;
  }
  ex.peer = addrText(peer);
  char buf[1024];
  while (waitFor(s, POLLIN, timeoutMs)) {
    const ssize_t n = ::read(s, buf, sizeof(buf));
    if (n <= 0) break;
    ex.received.append(buf, static_cast<size_t>(n));
  }
  ::close(s);
  ex.ok = ex.received == message;
  if (!ex.ok) ex.error = "received '" + ex.received + "', sent '" + message + "'";
  return ex;
}

}  // namespace sluice::cni::testing
