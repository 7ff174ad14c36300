#include "control/agent/proxy/health_check.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace sluice::agent {

namespace {

int localCount(const Service& s) {
  // The backends a node-local new flow may use: the one eligibility rule.
  return static_cast<int>(s.backendSet(true).forNewFlows().size());
}

Result<int> listenOn(const std::string& address, uint16_t port) {
  const bool any = address.empty();
  const bool v6 = !any && address.find(':') != std::string::npos;
  const int fd =
      ::socket(any || v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Error::internal(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  int rc;
  if (any || v6) {
    const int zero = 0;  // [::] serves IPv4 too (v4-mapped)
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    if (!any) ::inet_pton(AF_INET6, address.c_str(), &a.sin6_addr);
    rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, address.c_str(), &a.sin_addr);
    rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  }
  if (rc != 0 || ::listen(fd, 64) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    return Error::unavailable("healthCheckNodePort " + std::to_string(port) + ": " + why);
  }
  return fd;
}

}  // namespace

HealthCheckServer::HealthCheckServer(std::string bindAddress)
    : bindAddress_(std::move(bindAddress)) {
  if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) wake_[0] = wake_[1] = -1;
  thread_ = std::thread([this] { serve(); });
}

HealthCheckServer::~HealthCheckServer() {
  stop_ = true;
  if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
  if (thread_.joinable()) thread_.join();
  for (auto& [port, p] : ports_) ::close(p.fd);
  for (int fd : wake_) {
    if (fd >= 0) ::close(fd);
  }
}

Result<void> HealthCheckServer::update(const ServiceDiff& diff, bool full) {
  std::lock_guard lock(mu_);
  if (full) services_.clear();
  for (const ServiceChange& c : diff.changes) {
    if (!c.after || c.after->healthCheckNodePort == 0) {
      services_.erase(c.key());
      continue;
    }
    services_[c.key()] = {c.after->healthCheckNodePort, localCount(*c.after)};
  }
  auto r = reconcile();
  if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
  return r;
}

Result<void> HealthCheckServer::reconcile() {
  std::map<uint16_t, Port> next;
  for (const auto& [key, v] : services_) {
    Port& p = next[v.first];
    p.ns = key.ns;
    p.name = key.name;
    p.local[key] = v.second;
  }
  std::string errors;
  for (auto& [port, p] : next) {
    auto old = ports_.find(port);
    if (old != ports_.end()) {
      p.fd = old->second.fd;
      old->second.fd = -1;
      continue;
    }
    auto fd = listenOn(bindAddress_, port);
    if (!fd) {
      errors += (errors.empty() ? "" : "; ") + fd.error().message;
      continue;
    }
    p.fd = *fd;
  }
  for (auto& [port, p] : ports_) {
    if (p.fd >= 0) ::close(p.fd);
  }
  for (auto it = next.begin(); it != next.end();) {
    it = it->second.fd < 0 ? next.erase(it) : std::next(it);
  }
  ports_ = std::move(next);
  if (!errors.empty()) return Error::unavailable(errors);
  return okResult();
}

std::set<uint16_t> HealthCheckServer::ports() const {
  std::lock_guard lock(mu_);
  std::set<uint16_t> out;
  for (const auto& [port, p] : ports_) out.insert(port);
  return out;
}

int HealthCheckServer::localEndpoints(uint16_t port) const {
  std::lock_guard lock(mu_);
  auto it = ports_.find(port);
  if (it == ports_.end()) return -1;
  int n = 0;
  for (const auto& [k, v] : it->second.local) n += v;
  return n;
}

void HealthCheckServer::serve() {
  while (!stop_) {
    std::vector<pollfd> fds;
    fds.push_back({wake_[0], POLLIN, 0});
    {
      std::lock_guard lock(mu_);
      for (const auto& [port, p] : ports_) fds.push_back({p.fd, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), 1000) <= 0) continue;
    if (fds[0].revents) {
      char buf[64];
      while (::read(wake_[0], buf, sizeof(buf)) > 0) {
      }
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      int client = -1;
      {
        std::lock_guard lock(mu_);
        // The port may have closed since the poll: accept only from a live one.
        for (const auto& [port, p] : ports_) {
          if (p.fd == fds[i].fd) client = ::accept4(p.fd, nullptr, nullptr, SOCK_CLOEXEC);
        }
      }
      if (client >= 0) answer(client);
    }
  }
}

void HealthCheckServer::answer(int client) {
  // One read of the request; the answer does not depend on the path, as
  // kube-proxy's. Without mu_ while the client is slow: update() never waits.
  timeval tv{1, 0};
  ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  char buf[1024];
  (void)::recv(client, buf, sizeof(buf), 0);
  sockaddr_storage local{};
  socklen_t len = sizeof(local);
  ::getsockname(client, reinterpret_cast<sockaddr*>(&local), &len);
  const uint16_t port =
      ntohs(local.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&local)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  int n = 0;
  std::string ns, name;
  std::unique_lock lock(mu_);
  if (auto it = ports_.find(port); it != ports_.end()) {
    ns = it->second.ns;
    name = it->second.name;
    for (const auto& [k, v] : it->second.local) n += v;
  }
  lock.unlock();
  const std::string body = "{\"service\":{\"namespace\":\"" + ns + "\",\"name\":\"" + name +
                           "\"},\"localEndpoints\":" + std::to_string(n) +
                           ",\"serviceProxyHealthy\":true}";
  const std::string resp = std::string("HTTP/1.1 ") +
                           (n > 0 ? "200 OK" : "503 Service Unavailable") +
                           "\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff"
                           "\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  (void)!::send(client, resp.data(), resp.size(), MSG_NOSIGNAL);
  ::close(client);
}

}  // namespace sluice::agent
