// The API server's in-flight limits, as kube-apiserver's
// --max-requests-inflight / --max-mutating-requests-inflight: requests past
// a limit are 429 TooManyRequests with Retry-After: 1, read-only and
// mutating requests are counted apart, and long-running requests (watch,
// exec, attach, port-forward, logs) are not counted at all. A request holds
// its slot from its header to its answer, so a body that never finishes
// arriving holds one: that is how the tests fill a limit.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "control/server/api_server.h"
#include "tests/control/server/https_client.h"
#include "tests/control/server/server_fixture.h"

namespace sluice::server {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::HttpsClient;
using testing::TlsConnection;

const std::string kEndpoints = "/api/v1/namespaces/default/endpoints";

class ApiServerLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::scratchDir("sluice-limits-test");
    ApiServerOptions o = testing::testServerOptions(dir_);
    o.maxRequestsInflight = 1;
    o.maxMutatingRequestsInflight = 1;
    auto s = ApiServer::start(o);
    ASSERT_TRUE(s.ok()) << s.error().message;
    server_ = std::move(*s);
    client_ = std::make_unique<HttpsClient>("127.0.0.1", server_->port(), server_->caCertPem(),
                                            server_->token());
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A request whose header is complete and whose body never is: it holds
  // one in-flight slot until the connection closes.
  std::unique_ptr<TlsConnection> holdSlot(const std::string& method, const std::string& path) {
    auto c = std::make_unique<TlsConnection>("127.0.0.1", server_->port(), server_->caCertPem());
    EXPECT_TRUE(c->ok());
    c->write(method + " " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
             server_->token() +
             "\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"metadata\":");
    return c;
  }

  json endpoints() { return {{"metadata", {{"generateName", "ep-"}}}}; }

  // Retries `send` until it answers `status`, for up to 30 s: the held
  // slot is taken, and given back, by the server's I/O thread on its own
  // time (on a loaded machine, seconds after the client's write or close).
  // Returns that answer, or the last one.
  static testing::HttpResponse until(int status, const std::function<testing::HttpResponse()>& send) {
    testing::HttpResponse r;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      r = send();
      if (r.status == status || std::chrono::steady_clock::now() > deadline) return r;
      std::this_thread::sleep_for(10ms);
    }
  }

  std::filesystem::path dir_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<HttpsClient> client_;
};

// A mutating request past the limit is a Kubernetes Status 429 with
// Retry-After; reads are unaffected, and the slot comes back when the held
// request ends.
TEST_F(ApiServerLimitsTest, MutatingRequestsPastTheLimitAre429) {
  auto held = holdSlot("POST", kEndpoints);
  auto r = until(429, [&] { return client_->post(kEndpoints, endpoints()); });
  ASSERT_EQ(r.status, 429) << r.body;
  EXPECT_EQ(r.header("Retry-After"), "1");
  json s = r.json();
  EXPECT_EQ(s["kind"], "Status");
  EXPECT_EQ(s["reason"], "TooManyRequests");
  EXPECT_EQ(s["code"], 429);
  EXPECT_EQ(s["details"]["retryAfterSeconds"], 1);
  EXPECT_EQ(s["message"], "Too many requests, please try again later.");
  EXPECT_EQ(client_->request("DELETE", kEndpoints + "/x").status, 429);
  EXPECT_EQ(client_->get(kEndpoints).status, 200);  // the read-only limit is separate
  held.reset();
  EXPECT_EQ(until(201, [&] { return client_->post(kEndpoints, endpoints()); }).status, 201);
}

// Read-only requests past their limit are 429, while watches (long-running)
// are neither counted nor refused; authentication comes first (401).
TEST_F(ApiServerLimitsTest, ReadOnlyLimitExemptsLongRunningRequests) {
  auto held = holdSlot("GET", kEndpoints);
  auto r = until(429, [&] { return client_->get(kEndpoints); });
  ASSERT_EQ(r.status, 429) << r.body;
  EXPECT_EQ(r.json()["reason"], "TooManyRequests");
  HttpsClient anonymous("127.0.0.1", server_->port(), server_->caCertPem(), "");
  EXPECT_EQ(anonymous.get(kEndpoints).status, 401);
  EXPECT_EQ(client_->get("/healthz").status, 200);  // probes are exempt, as in kube-apiserver's APF

  // Three concurrent watches while the read-only slot is taken.
  std::vector<std::thread> watchers;
  std::atomic<int> ok{0};
  for (int i = 0; i < 3; ++i) {
    watchers.emplace_back([&] {
      HttpsClient c("127.0.0.1", server_->port(), server_->caCertPem(), server_->token());
      int status = c.watch(
          kEndpoints + "?watch=1&timeoutSeconds=1", [](const json&) { return true; }, 5s);
      if (status == 200) ++ok;
    });
  }
  for (auto& t : watchers) t.join();
  EXPECT_EQ(ok.load(), 3);
  EXPECT_EQ(client_->post(kEndpoints, endpoints()).status, 201);  // the mutating limit is separate
}

}  // namespace
}  // namespace sluice::server
