// The agent's metrics and health endpoint (control/metrics/endpoint.h) over
// real loopback TCP: what a scraper and a kubelet-style probe see.
#include "control/metrics/endpoint.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

namespace sluice::metrics {
namespace {

// One request, the whole response (the endpoint closes after answering).
std::string get(uint16_t port, const std::string& method, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
    const std::string req = method + " " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
    (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    char buf[8192];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

class EndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    prometheus::BuildCounter()
        .Name("test_events_total")
        .Help("Events seen")
        .Register(registry_)
        .Add({{"kind", "a"}})
        .Increment(3);
    EndpointOptions o;
    o.address = "127.0.0.1:0";
    o.sources = {collect(registry_), [] {
                   return std::vector{single("test_live_value", "Read at scrape time",
                                             prometheus::MetricType::Gauge, 42)};
                 }};
    o.ready = [this]() -> std::optional<std::string> {
      if (!ready_) return "proxy: no successful sync yet";
      return std::nullopt;
    };
    auto e = Endpoint::start(std::move(o));
    ASSERT_TRUE(e.ok()) << e.error().message;
    endpoint_ = std::move(*e);
  }

  prometheus::Registry registry_;
  std::atomic<bool> ready_{false};
  std::unique_ptr<Endpoint> endpoint_;
};

// A scrape gets the registry's series and those computed at scrape time, in
// the text format Prometheus asks for.
TEST_F(EndpointTest, MetricsServesRegistriesAndLiveValues) {
  std::string r = get(endpoint_->port(), "GET", "/metrics");
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_NE(r.find("text/plain; version=0.0.4"), std::string::npos) << r;
  EXPECT_NE(r.find("test_events_total{kind=\"a\"} 3\n"), std::string::npos) << r;
  EXPECT_NE(r.find("# TYPE test_live_value gauge\ntest_live_value 42\n"), std::string::npos) << r;
}

// Liveness is unconditional; readiness says why not until its check passes.
TEST_F(EndpointTest, HealthzLivezAndReadyzAnswerLikeKubernetesComponents) {
  EXPECT_EQ(get(endpoint_->port(), "GET", "/healthz").rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(get(endpoint_->port(), "GET", "/livez").rfind("HTTP/1.1 200", 0), 0u);
  std::string notReady = get(endpoint_->port(), "GET", "/readyz");
  EXPECT_EQ(notReady.rfind("HTTP/1.1 500", 0), 0u) << notReady;
  EXPECT_NE(notReady.find("no successful sync yet"), std::string::npos) << notReady;
  ready_ = true;
  std::string ready = get(endpoint_->port(), "GET", "/readyz");
  EXPECT_EQ(ready.rfind("HTTP/1.1 200", 0), 0u) << ready;
  EXPECT_EQ(ready.substr(ready.size() - 2), "ok");
}

// Anything else is refused with a status, and the endpoint keeps serving.
TEST_F(EndpointTest, OtherPathsAndMethodsAreRefused) {
  EXPECT_EQ(get(endpoint_->port(), "GET", "/debug/pprof").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(get(endpoint_->port(), "POST", "/metrics").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(get(endpoint_->port(), "GET", "/metrics").rfind("HTTP/1.1 200", 0), 0u);
}

TEST(EndpointAddressTest, BadAddressesAreRefusedNamingTheProblem) {
  for (const char* bad : {"127.0.0.1", "127.0.0.1:99999", "not-an-ip:80"}) {
    EndpointOptions o;
    o.address = bad;
    auto e = Endpoint::start(std::move(o));
    EXPECT_FALSE(e.ok()) << bad;
  }
}

}  // namespace
}  // namespace sluice::metrics
