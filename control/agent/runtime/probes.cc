#include "control/agent/runtime/probes.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "cni/netns.h"
#include "control/agent/runtime/container.h"

namespace sluice::agent {
namespace {

using Json = nlohmann::json;

int64_t intField(const Json& j, const char* key, int64_t dflt) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : dflt;
}

// A probe port: a number, or the name of one of the container's ports.
int resolvePort(const Json& port, const Json* container) {
  if (port.is_number_integer()) return port.get<int>();
  if (port.is_string()) {
    std::string s = port.get<std::string>();
    if (!s.empty() && std::all_of(s.begin(), s.end(), ::isdigit)) return std::stoi(s);
    if (container != nullptr && container->contains("ports")) {
      for (const Json& p : (*container)["ports"]) {
        if (p.value("name", "") == s) return p.value("containerPort", 0);
      }
    }
  }
  return 0;
}

// Connects (in the calling thread's namespace) within the deadline.
int connectWithin(const std::string& host, int port, std::chrono::steady_clock::time_point deadline,
                  std::string& error) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) {
    error = "bad probe host " + host;
    return -1;
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::strerror(errno);
    return -1;
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 && errno != EINPROGRESS) {
    error = "dial tcp " + host + ":" + std::to_string(port) + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  pollfd p{fd, POLLOUT, 0};
  int soErr = 0;
  socklen_t len = sizeof(soErr);
  if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1 ||
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soErr, &len) != 0 || soErr != 0) {
    error = "dial tcp " + host + ":" + std::to_string(port) + ": " +
            (soErr != 0 ? std::strerror(soErr) : "i/o timeout");
    ::close(fd);
    return -1;
  }
  return fd;
}

ProbeOutcome tcpProbe(const std::string& host, int port,
                      std::chrono::steady_clock::time_point deadline) {
  std::string error;
  int fd = connectWithin(host, port, deadline, error);
  if (fd < 0) return {false, error};
  ::close(fd);
  return {true, ""};
}

ProbeOutcome httpProbe(const Json& action, const std::string& host, int port,
                       std::chrono::steady_clock::time_point deadline) {
  std::string error;
  int fd = connectWithin(host, port, deadline, error);
  if (fd < 0) return {false, "Get \"http://" + host + ":" + std::to_string(port) + "\": " + error};
  std::string path = action.value("path", "/");
  if (path.empty() || path[0] != '/') path = "/" + path;
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(port) +
                    "\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n";
  if (action.contains("httpHeaders")) {
    for (const Json& h : action["httpHeaders"])
      req += h.value("name", "") + ": " + h.value("value", "") + "\r\n";
  }
  req += "\r\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string resp;
  char buf[1024];
  while (resp.find("\r\n") == std::string::npos && resp.size() < 8192) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) {
      ::close(fd);
      return {false,
              "Get \"http://" + host + ":" + std::to_string(port) + path +
                  "\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"};
    }
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    resp.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  // "HTTP/1.1 200 OK"
  size_t sp = resp.find(' ');
  int status = sp == std::string::npos ? 0 : std::atoi(resp.c_str() + sp + 1);
  if (status >= 200 && status < 400) return {true, ""};
  return {false, "HTTP probe failed with statuscode: " + std::to_string(status)};
}

}  // namespace

ProbeOutcome runProbe(const Json& probe, const ProbeTarget& target) {
  auto timeout = std::chrono::seconds(std::max<int64_t>(1, intField(probe, "timeoutSeconds", 1)));
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (probe.contains("exec")) {
    std::vector<std::string> argv = probe["exec"].value("command", std::vector<std::string>{});
    auto out = execInContainer(target.containerPid, argv, timeout);
    if (!out) return {false, out.error().message};
    if (out->exitCode == -1)
      return {false, "command timed out after " + std::to_string(timeout.count()) + "s"};
    if (out->exitCode != 0) {
      return {false, "command exited with " + std::to_string(out->exitCode) + ": " + out->output};
    }
    return {true, ""};
  }
  const bool http = probe.contains("httpGet");
  const Json& action = http                          ? probe["httpGet"]
                       : probe.contains("tcpSocket") ? probe["tcpSocket"]
                                                     : probe;
  if (!http && !probe.contains("tcpSocket")) return {false, "probe has no handler"};
  int port = resolvePort(action.value("port", Json()), target.container);
  if (port <= 0 || port > 65535) return {false, "probe port does not resolve"};
  std::string host = action.value("host", "");
  if (host.empty()) host = target.podIp;
  auto ns = cni::Netns::open(target.netnsPath);
  if (!ns) return {false, ns.error().message};
  auto r = ns->run([&]() -> Result<ProbeOutcome> {
    return http ? httpProbe(action, host, port, deadline) : tcpProbe(host, port, deadline);
  });
  if (!r) return {false, r.error().message};
  return *r;
}

ProbeState::ProbeState(const Json& probe, bool initiallyHealthy)
    : spec_(probe),
      initialDelayMs_(intField(probe, "initialDelaySeconds", 0) * 1000),
      periodMs_(std::max<int64_t>(1, intField(probe, "periodSeconds", 10)) * 1000),
      failureThreshold_(
          static_cast<int>(std::max<int64_t>(1, intField(probe, "failureThreshold", 3)))),
      successThreshold_(
          static_cast<int>(std::max<int64_t>(1, intField(probe, "successThreshold", 1)))),
      healthy_(initiallyHealthy) {}

bool ProbeState::due(int64_t nowMs, int64_t startedAtMs) const {
  if (nowMs < startedAtMs + initialDelayMs_) return false;
  return lastMs_ == 0 || nowMs >= lastMs_ + periodMs_;
}

bool ProbeState::record(bool success, int64_t nowMs) {
  lastMs_ = nowMs;
  if (success) {
    failures_ = 0;
    if (++successes_ >= successThreshold_) healthy_ = true;
  } else {
    successes_ = 0;
    if (++failures_ >= failureThreshold_) healthy_ = false;
  }
  return healthy_;
}

}  // namespace sluice::agent
