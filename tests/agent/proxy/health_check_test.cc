// HealthCheckServer (the healthCheckNodePort of eTP=Local Services) on
// loopback: what a cloud load balancer's probe sees as the node's local
// endpoints come and go.
#include "control/agent/proxy/health_check.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace sluice::agent {
namespace {

// A free loopback port (bound once to learn it, then released).
uint16_t freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// The probe's raw answer ("" when the connection is refused).
std::string probe(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    const std::string req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    (void)!::send(fd, req.data(), req.size(), 0);
    char buf[2048];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;)
      out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Service local(uint16_t hcPort, std::vector<bool> locality) {
  Service s;
  s.key = ServiceKey{"default", "web", "http"};
  s.externalPolicy = TrafficPolicy::kLocal;
  s.healthCheckNodePort = hcPort;
  s.frontends.push_back(
      {*IpAddress::parse("10.96.0.10"), 80, Protocol::kTcp, FrontendScope::kClusterIp});
  int i = 2;
  for (bool l : locality) {
    Backend b;
    b.address = *IpAddress::parse("10.244.0." + std::to_string(i++));
    b.port = 8080;
    b.nodeLocal = l;
    s.backends.push_back(b);
  }
  return s;
}

// 200 with the count while the node has a local endpoint, 503 without one,
// and the port closes with the Service.
TEST(HealthCheckServerTest, AnswersByLocalEndpointsAndClosesWithTheService) {
  HealthCheckServer server("127.0.0.1");
  const uint16_t port = freePort();
  ServiceDiff add;
  add.changes.push_back({std::nullopt, local(port, {true, false, true})});
  ASSERT_TRUE(server.update(add, true).ok());
  std::string r = probe(port);
  EXPECT_NE(r.find("HTTP/1.1 200"), std::string::npos) << r;
  EXPECT_NE(r.find("\"localEndpoints\":2"), std::string::npos) << r;
  EXPECT_NE(r.find("\"name\":\"web\""), std::string::npos) << r;

  ServiceDiff remote;
  remote.changes.push_back({local(port, {true, false, true}), local(port, {false})});
  ASSERT_TRUE(server.update(remote, false).ok());
  r = probe(port);
  EXPECT_NE(r.find("HTTP/1.1 503"), std::string::npos) << r;
  EXPECT_NE(r.find("\"localEndpoints\":0"), std::string::npos) << r;

  ServiceDiff gone;
  gone.changes.push_back({local(port, {false}), std::nullopt});
  ASSERT_TRUE(server.update(gone, false).ok());
  EXPECT_TRUE(server.ports().empty());
  EXPECT_EQ(probe(port), "") << "the port must close with its Service";
}

}  // namespace
}  // namespace sluice::agent
