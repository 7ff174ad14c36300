// ProxySync against a real in-process API server and the RecordingMode
// fake: what the agent hands a mode for each Service/EndpointSlice change,
// how it recovers from a failed apply and from a mode that lost its state,
// and how it says what a mode cannot do. No BPF, no root: the kernel side
// of each mode is proven by its own suites.
#include <gtest/gtest.h>

#include <algorithm>

#include "control/agent/proxy/proxy_sync.h"
#include "tests/agent/proxy/recording_mode.h"
#include "tests/control/controllers/control_plane.h"

namespace sluice::agent {
namespace {

using client::Json;
using sluice::testing::ControlPlane;
using sluice::testing::RecordingMode;
namespace res = client::resources;

class ProxySyncModeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ControlPlane::Options o;
    o.startControllers = false;  // the test writes EndpointSlices itself
    cp_ = std::make_unique<ControlPlane>(::testing::UnitTest::GetInstance()->current_test_info()->name(), o);
  }
  void TearDown() override {
    if (sync_) sync_->stop();
    sync_.reset();
    cp_.reset();
  }

  void startSync() {
    ProxySyncOptions o;
    o.translator.nodeName = "node-1";
    o.minSyncPeriod = std::chrono::milliseconds(1);
    o.retryPeriod = std::chrono::milliseconds(50);
    sync_ = std::make_unique<ProxySync>(cp_->client(), mode_, o);
    sync_->start();
    ASSERT_TRUE(sync_->waitForInitialSync(std::chrono::seconds(20))) << sync_->lastError();
  }

  Json service(const std::string& name, Json extra = Json::object()) {
    Json spec = {{"selector", {{"app", name}}}, {"ports", {{{"name", "http"}, {"port", 80}}}}};
    spec.update(extra);
    Json s = {{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", {{"name", name}}}, {"spec", spec}};
    auto r = cp_->client().create(res::kServices, "default", s);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : Json();
  }

  // The EndpointSlice of service `name` with one ready endpoint per address.
  void slice(const std::string& name, const std::vector<std::string>& ips) {
    Json eps = Json::array();
    for (const std::string& ip : ips) {
      eps.push_back({{"addresses", {ip}}, {"conditions", {{"ready", true}, {"serving", true}, {"terminating", false}}}});
    }
    Json s = {{"apiVersion", "discovery.k8s.io/v1"},
              {"kind", "EndpointSlice"},
              {"metadata", {{"name", name + "-x"}, {"labels", {{"kubernetes.io/service-name", name}}}}},
              {"addressType", "IPv4"},
              {"endpoints", eps},
              {"ports", {{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}}}};
    auto cur = cp_->client().get(res::kEndpointSlices, "default", name + "-x");
    if (cur.ok()) {
      s["metadata"]["resourceVersion"] = (*cur)["metadata"]["resourceVersion"];
      ASSERT_TRUE(cp_->client().update(res::kEndpointSlices, "default", s).ok());
    } else {
      ASSERT_TRUE(cp_->client().create(res::kEndpointSlices, "default", s).ok());
    }
  }

  static size_t backendsOf(const ServiceTable& t, const std::string& name) {
    const Service* s = t.find(ServiceKey{"default", name, "http"});
    return s ? s->backends.size() : 0;
  }

  std::unique_ptr<ControlPlane> cp_;
  RecordingMode mode_;
  std::unique_ptr<ProxySync> sync_;
};

// What exists before the agent starts reaches the mode as one full sync.
TEST_F(ProxySyncModeTest, StartIsOneFullSyncOfEverything) {
  service("web");
  slice("web", {"10.1.0.1", "10.1.0.2"});
  service("db");
  slice("db", {"10.1.0.3"});
  startSync();
  auto calls = mode_.calls();
  ASSERT_GE(calls.size(), 1u);
  EXPECT_TRUE(calls[0].full);
  EXPECT_EQ(backendsOf(calls[0].table, "web"), 2u);
  EXPECT_EQ(backendsOf(calls[0].table, "db"), 1u);
}

// One changed endpoint is one apply() with exactly that service, updated
// in place (before and after), and the mode ends up with the API's state.
TEST_F(ProxySyncModeTest, OneEndpointChangeIsAOneServiceDiff) {
  service("web");
  slice("web", {"10.1.0.1"});
  service("db");
  slice("db", {"10.1.0.3"});
  startSync();
  const size_t before = mode_.calls().size();
  slice("web", {"10.1.0.1", "10.1.0.2"});
  ASSERT_TRUE(mode_.waitFor([&](const auto& c, const ServiceTable& held) {
    return c.size() > before && backendsOf(held, "web") == 2;
  }));
  auto calls = mode_.calls();
  for (size_t i = before; i < calls.size(); ++i) {
    ASSERT_FALSE(calls[i].full);
    for (const ServiceChange& c : calls[i].diff.changes) EXPECT_EQ(c.key().name, "web");
  }
  const ServiceChange& last = calls.back().diff.changes.back();
  ASSERT_TRUE(last.updated());
  EXPECT_EQ(last.before->backends.size(), 1u);
  EXPECT_EQ(last.after->backends.size(), 2u);
  EXPECT_EQ(backendsOf(mode_.held(), "db"), 1u);
}

// Two Services claiming one external IP and port: the second is left out
// (the table stays valid), and gets programmed once the first lets go.
TEST_F(ProxySyncModeTest, ConflictingFrontendWaitsUntilTheOwnerLetsGo) {
  startSync();
  service("first", {{"externalIPs", {"192.0.2.77"}}});
  slice("first", {"10.1.0.1"});
  ASSERT_TRUE(mode_.waitFor([&](const auto&, const ServiceTable& held) { return backendsOf(held, "first") == 1; }));
  service("second", {{"externalIPs", {"192.0.2.77"}}});
  slice("second", {"10.1.0.2"});
  // The conflicting service is retried every run: let a few pass.
  slice("first", {"10.1.0.1", "10.1.0.5"});
  ASSERT_TRUE(mode_.waitFor([&](const auto&, const ServiceTable& held) { return backendsOf(held, "first") == 2; }));
  EXPECT_EQ(mode_.held().find(ServiceKey{"default", "second", "http"}), nullptr);
  ASSERT_TRUE(cp_->client().remove(res::kServices, "default", "first").ok());
  ASSERT_TRUE(mode_.waitFor([&](const auto&, const ServiceTable& held) { return backendsOf(held, "second") == 1; }));
  EXPECT_EQ(mode_.held().find(ServiceKey{"default", "first", "http"}), nullptr);
}

// A failed apply leaves the agent assuming nothing: it resyncs the whole
// table it wants (including the change that failed), as proxy_mode.h says.
TEST_F(ProxySyncModeTest, FailedApplyIsFollowedByAFullResync) {
  service("web");
  slice("web", {"10.1.0.1"});
  startSync();
  mode_.failNextApply();
  slice("web", {"10.1.0.1", "10.1.0.2"});
  ASSERT_TRUE(mode_.waitFor([](const auto& c, const ServiceTable&) {
    auto failed = std::find_if(c.begin(), c.end(), [](const auto& call) { return call.failed; });
    return failed != c.end() && std::any_of(failed + 1, c.end(), [](const auto& call) { return call.full; });
  }));
  EXPECT_EQ(backendsOf(mode_.held(), "web"), 2u);
  EXPECT_GE(sync_->errors(), 1u);
  // Counted once the round is booked, just after the mode's sync() returns.
  EXPECT_TRUE(ControlPlane::eventually(
      [&] { return sync_->renderMetrics().find("sluice_proxy_resyncs_total 1\n") != std::string::npos; }))
      << sync_->renderMetrics();
}

// A mode that lost its state (new epoch, listener called) gets a full sync
// at once, without waiting for a Service change.
TEST_F(ProxySyncModeTest, ModeThatLostStateIsResyncedWithoutAnyChange) {
  service("web");
  slice("web", {"10.1.0.1", "10.1.0.2"});
  startSync();
  const size_t before = mode_.calls().size();
  mode_.loseState();
  EXPECT_TRUE(mode_.held().empty());
  ASSERT_TRUE(mode_.waitFor(
      [&](const auto& c, const ServiceTable&) { return c.size() > before && c.back().full; }));
  EXPECT_EQ(backendsOf(mode_.held(), "web"), 2u);
}

// A Service asking for what the mode cannot do is said once: a Warning
// Event on the Service and a gauge, not a silent difference and not a
// flood on every change.
TEST_F(ProxySyncModeTest, UnsupportedRequestIsSaidOncePerServiceAndFeature) {
  mode_.setMissing(ModeFeature::kSessionAffinity, "the recording mode keeps no affinity");
  startSync();
  service("sticky", {{"sessionAffinity", "ClientIP"}});
  slice("sticky", {"10.1.0.1"});
  auto events = [&] {
    size_t n = 0;
    auto list = cp_->client().list(res::kEvents, "default");
    if (!list.ok()) return n;
    for (const Json& e : (*list)["items"]) {
      if (e.value("reason", "") == "UnsupportedByProxyMode" && e["involvedObject"].value("name", "") == "sticky") {
        EXPECT_EQ(e.value("type", ""), "Warning");
        EXPECT_NE(e.value("message", "").find("sessionAffinity ClientIP"), std::string::npos) << e.dump();
        ++n;
      }
    }
    return n;
  };
  ASSERT_TRUE(ControlPlane::eventually([&] { return events() == 1; }));
  slice("sticky", {"10.1.0.1", "10.1.0.2"});
  ASSERT_TRUE(
      mode_.waitFor([&](const auto&, const ServiceTable& held) { return backendsOf(held, "sticky") == 2; }));
  EXPECT_EQ(events(), 1u);
  EXPECT_NE(sync_->renderMetrics().find("sluice_proxy_unsupported_requests{feature=\"session-affinity\"} 1\n"),
            std::string::npos)
      << sync_->renderMetrics();
  // The mode's own gap, whether or not a Service asks (a kernel's missing
  // features on an old node).
  EXPECT_NE(sync_->renderMetrics().find(
                "sluice_proxy_mode_missing_features{feature=\"session-affinity\",mode=\"recording\"} 1\n"),
            std::string::npos)
      << sync_->renderMetrics();
}

}  // namespace
}  // namespace sluice::agent
