// The Endpoints and EndpointSlice controllers against a real server: pods
// are created through the API with the status a node agent would report.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "control/controllers/cluster/endpoints_common.h"
#include "tests/control/controllers/cluster/cluster_fixture.h"

namespace sluice::testing {
namespace {

class EndpointsTest : public ClusterTest {
 protected:
  // The IPs under subsets[*].key of Endpoints default/name.
  std::set<std::string> ips(const std::string& name, const char* key) {
    std::set<std::string> out;
    Json ep = get(res::kEndpoints, "default", name);
    if (ep.is_null()) return out;
    for (const auto& s : ep.value("subsets", Json::array())) {
      for (const auto& a : s.value(key, Json::array())) out.insert(a.value("ip", ""));
    }
    return out;
  }
  // Endpoints of all slices of a service, by address.
  std::map<std::string, Json> sliceEndpoints(const std::string& svc) {
    std::map<std::string, Json> out;
    for (const auto& s : slicesOf(svc)) {
      for (const auto& e : s.value("endpoints", Json::array())) out[e["addresses"][0].get<std::string>()] = e;
    }
    return out;
  }
};

Json webPort() { return Json::array({{{"name", "http"}, {"port", 80}, {"targetPort", 8080}}}); }

client::ObjectPtr readyPod(const std::string& name, const std::string& transition) {
  return std::make_shared<const Json>(Json{
      {"metadata", {{"name", name}}},
      {"status", {{"conditions", {{{"type", "Ready"}, {"status", "True"}, {"lastTransitionTime", transition}}}}}}});
}

// A sync whose write failed publishes nothing: its retry stamps the same
// trigger time (the write used to lose the annotation after a conflict,
// which made ReadyAndNotReadyPodsInBothObjects fail about 1 run in 10).
TEST(TriggerTimeTrackerTest, UnpublishedChangeIsStampedAgainOnRetry) {
  controllers::TriggerTimeTracker tracker;
  const Json svc = {{"metadata", {{"creationTimestamp", "2024-01-01T00:00:00Z"}}}};
  auto first = tracker.compute("default/web", svc, {});
  ASSERT_TRUE(first.trigger.has_value());
  EXPECT_EQ(controllers::formatRfc3339(*first.trigger), "2024-01-01T00:00:00Z");
  tracker.publish(std::move(first));

  const std::vector<client::ObjectPtr> pods = {readyPod("a", "2024-01-01T00:00:07Z")};
  auto failed = tracker.compute("default/web", svc, pods);  // its write fails: not published
  ASSERT_TRUE(failed.trigger.has_value());
  auto retry = tracker.compute("default/web", svc, pods);
  ASSERT_TRUE(retry.trigger.has_value());
  EXPECT_EQ(*retry.trigger, *failed.trigger);
  tracker.publish(std::move(retry));
  // Published: the same pods again are no new change.
  EXPECT_FALSE(tracker.compute("default/web", svc, pods).trigger.has_value());
}

// Ready pods are addresses, not-ready ones notReadyAddresses, pods without
// an IP nowhere; the slice carries conditions, labels, owner and ports.
TEST_F(EndpointsTest, ReadyAndNotReadyPodsInBothObjects) {
  Json svc = service("web", {{"app", "web"}}, webPort());
  runPod("default", pod("a", {{"app", "web"}}), "10.1.0.1", true, "n1");
  runPod("default", pod("b", {{"app", "web"}}), "10.1.0.2", false);
  runPod("default", pod("c", {{"app", "web"}}), "", false);
  runPod("default", pod("other", {{"app", "db"}}), "10.1.0.9", true);
  ASSERT_TRUE(eventually([&] {
    return ips("web", "addresses") == std::set<std::string>{"10.1.0.1"} &&
           ips("web", "notReadyAddresses") == std::set<std::string>{"10.1.0.2"} && sliceEndpoints("web").size() == 2;
  }));
  Json ep = get(res::kEndpoints, "default", "web");
  const Json& subset = ep["subsets"][0];
  EXPECT_EQ(subset["ports"], Json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}}));
  EXPECT_EQ(subset["addresses"][0]["nodeName"], "n1");
  EXPECT_EQ(subset["addresses"][0]["targetRef"]["kind"], "Pod");
  EXPECT_EQ(subset["addresses"][0]["targetRef"]["name"], "a");
  EXPECT_TRUE(ep["metadata"]["annotations"].contains("endpoints.kubernetes.io/last-change-trigger-time"));

  Json slices = slicesOf("web");
  ASSERT_EQ(slices.size(), 1u);
  const Json& s = slices[0];
  EXPECT_EQ(s["addressType"], "IPv4");
  EXPECT_EQ(s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"], "endpointslice-controller.k8s.io");
  EXPECT_EQ(s["metadata"]["ownerReferences"][0]["uid"], svc["metadata"]["uid"]);
  EXPECT_EQ(s["metadata"]["ownerReferences"][0]["controller"], true);
  EXPECT_EQ(s["ports"], Json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}}));
  EXPECT_TRUE(s["metadata"]["annotations"].contains("endpoints.kubernetes.io/last-change-trigger-time"));
  auto eps = sliceEndpoints("web");
  EXPECT_EQ(eps["10.1.0.1"]["conditions"], Json({{"ready", true}, {"serving", true}, {"terminating", false}}));
  EXPECT_EQ(eps["10.1.0.1"]["nodeName"], "n1");
  EXPECT_EQ(eps["10.1.0.2"]["conditions"], Json({{"ready", false}, {"serving", false}, {"terminating", false}}));

  // Readiness flips move the address; a relabelled pod leaves.
  setStatus("default", "b", "10.1.0.2", true, "2024-01-01T00:00:05Z");
  ASSERT_TRUE(eventually([&] { return ips("web", "addresses") == std::set<std::string>{"10.1.0.1", "10.1.0.2"}; }));
  ASSERT_TRUE(eventually([&] { return sliceEndpoints("web")["10.1.0.2"]["conditions"]["ready"] == true; }));
  ASSERT_TRUE(api().patch(res::kPods, "default", "a", {{"metadata", {{"labels", {{"app", "gone"}}}}}}).ok());
  ASSERT_TRUE(eventually([&] {
    return ips("web", "addresses") == std::set<std::string>{"10.1.0.2"} && sliceEndpoints("web").size() == 1;
  }));
}

// The trigger-time annotation is the Ready transition that caused the
// update, on both objects.
TEST_F(EndpointsTest, TriggerTimeIsThePodReadyTransition) {
  service("web", {{"app", "web"}}, webPort());
  runPod("default", pod("a", {{"app", "web"}}), "10.1.0.1", true);
  ASSERT_TRUE(eventually([&] { return ips("web", "addresses").size() == 1; }));
  setStatus("default", "a", "10.1.0.1", false, "2025-03-04T05:06:07.123456789Z");
  const std::string want = "2025-03-04T05:06:07.123456789Z";
  auto annotation = [](const Json& o) {
    return o.value("/metadata/annotations/endpoints.kubernetes.io~1last-change-trigger-time"_json_pointer,
                   std::string());
  };
  ASSERT_TRUE(eventually([&] {
    Json slices = slicesOf("web");
    return annotation(get(res::kEndpoints, "default", "web")) == want && slices.size() == 1 &&
           annotation(slices[0]) == want;
  }));
}

// publishNotReadyAddresses lists not-ready pods as addresses, and the slice
// marks them ready.
TEST_F(EndpointsTest, PublishNotReadyAddresses) {
  Json s = {{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", {{"name", "db"}}},
            {"spec", {{"selector", {{"app", "db"}}}, {"ports", webPort()}, {"publishNotReadyAddresses", true}}}};
  ASSERT_TRUE(api().create(res::kServices, "default", s).ok());
  runPod("default", pod("a", {{"app", "db"}}), "10.1.0.3", false);
  ASSERT_TRUE(eventually([&] { return ips("db", "addresses") == std::set<std::string>{"10.1.0.3"}; }));
  EXPECT_TRUE(ips("db", "notReadyAddresses").empty());
  ASSERT_TRUE(eventually([&] { return sliceEndpoints("db")["10.1.0.3"]["conditions"]["ready"] == true; }));
}

// A terminating pod leaves Endpoints but stays in its slice as
// serving+terminating, not ready, so the dataplane can drain it.
TEST_F(EndpointsTest, TerminatingPodDrainsThroughSlice) {
  service("web", {{"app", "web"}}, webPort());
  Json p = pod("a", {{"app", "web"}});
  p["metadata"]["finalizers"] = {"test.sluice.dev/hold"};
  runPod("default", p, "10.1.0.1", true);
  runPod("default", pod("b", {{"app", "web"}}), "10.1.0.2", true);
  ASSERT_TRUE(eventually([&] { return ips("web", "addresses").size() == 2 && sliceEndpoints("web").size() == 2; }));
  ASSERT_TRUE(api().remove(res::kPods, "default", "a").ok());
  ASSERT_TRUE(eventually([&] {
    return ips("web", "addresses") == std::set<std::string>{"10.1.0.2"} &&
           sliceEndpoints("web")["10.1.0.1"]["conditions"] ==
               Json({{"ready", false}, {"serving", true}, {"terminating", true}});
  }));
  EXPECT_TRUE(ips("web", "notReadyAddresses").empty());
  ASSERT_TRUE(api().patch(res::kPods, "default", "a", {{"metadata", {{"finalizers", nullptr}}}}).ok());
  ASSERT_TRUE(eventually([&] { return sliceEndpoints("web").size() == 1; }));
}

// A named targetPort resolves per pod; pods with different ports land in
// different subsets and slices; a multi-port Service lists every port.
TEST_F(EndpointsTest, NamedTargetPortPerPodAndMultiPort) {
  Json ports = Json::array({{{"name", "http"}, {"port", 80}, {"targetPort", "web"}},
                            {{"name", "metrics"}, {"port", 9090}, {"targetPort", 9090}}});
  service("web", {{"app", "web"}}, ports);
  runPod("default", pod("a", {{"app", "web"}}, {{{"name", "web"}, {"containerPort", 8080}}}), "10.1.0.1", true);
  runPod("default", pod("b", {{"app", "web"}}, {{{"name", "web"}, {"containerPort", 8081}}}), "10.1.0.2", true);
  // No port named "web": only the numeric port applies.
  runPod("default", pod("c", {{"app", "web"}}, {{{"name", "other"}, {"containerPort", 7000}}}), "10.1.0.3", true);
  ASSERT_TRUE(eventually([&] {
    Json ep = get(res::kEndpoints, "default", "web");
    return !ep.is_null() && ep.value("subsets", Json::array()).size() == 3 && slicesOf("web").size() == 3;
  }));
  std::map<std::string, std::set<int>> portsByIp;
  Json ep = get(res::kEndpoints, "default", "web");
  for (const auto& s : ep["subsets"]) {
    for (const auto& a : s["addresses"]) {
      for (const auto& p : s["ports"]) portsByIp[a["ip"].get<std::string>()].insert(p["port"].get<int>());
    }
  }
  EXPECT_EQ(portsByIp["10.1.0.1"], (std::set<int>{8080, 9090}));
  EXPECT_EQ(portsByIp["10.1.0.2"], (std::set<int>{8081, 9090}));
  EXPECT_EQ(portsByIp["10.1.0.3"], (std::set<int>{9090}));
  for (const auto& s : slicesOf("web")) {
    ASSERT_EQ(s["endpoints"].size(), 1u);
    std::string ip = s["endpoints"][0]["addresses"][0].get<std::string>();
    std::set<int> got;
    for (const auto& p : s["ports"]) got.insert(p["port"].get<int>());
    EXPECT_EQ(got, portsByIp[ip]) << ip;
  }
}

// Services without a selector keep the Endpoints their user wrote; no
// slices are made for them.
TEST_F(EndpointsTest, SelectorlessServiceKeepsUserEndpoints) {
  service("ext", Json(), webPort());
  Json ep = {{"apiVersion", "v1"}, {"kind", "Endpoints"}, {"metadata", {{"name", "ext"}}},
             {"subsets", {{{"addresses", {{{"ip", "192.0.2.10"}}}}, {"ports", {{{"name", "http"}, {"port", 8080}}}}}}}};
  auto created = api().create(res::kEndpoints, "default", ep);
  ASSERT_TRUE(created.ok()) << created.error().message;
  // A selected service and a pod change make the controllers busy meanwhile.
  service("web", {{"app", "web"}}, webPort());
  runPod("default", pod("a", {{"app", "web"}}), "10.1.0.1", true);
  ASSERT_TRUE(eventually([&] { return ips("web", "addresses").size() == 1 && slicesOf("web").size() == 1; }));
  Json now = get(res::kEndpoints, "default", "ext");
  EXPECT_EQ(now["metadata"]["resourceVersion"], (*created)["metadata"]["resourceVersion"]);
  EXPECT_EQ(now["subsets"][0]["addresses"][0]["ip"], "192.0.2.10");
  EXPECT_TRUE(slicesOf("ext").empty());
}

// Deleting the Service removes its Endpoints and slices; a Service that
// selects nothing has an empty Endpoints and one placeholder slice.
TEST_F(EndpointsTest, ServiceDeletionAndEmptyService) {
  service("web", {{"app", "web"}}, webPort());
  ASSERT_TRUE(eventually([&] {
    Json ep = get(res::kEndpoints, "default", "web");
    Json slices = slicesOf("web");
    return !ep.is_null() && ep.value("subsets", Json::array()).empty() && slices.size() == 1 &&
           slices[0].value("endpoints", Json::array()).empty();
  }));
  runPod("default", pod("a", {{"app", "web"}}), "10.1.0.1", true);
  ASSERT_TRUE(eventually([&] { return sliceEndpoints("web").size() == 1 && slicesOf("web").size() == 1; }));
  ASSERT_TRUE(api().remove(res::kServices, "default", "web").ok());
  ASSERT_TRUE(eventually([&] { return get(res::kEndpoints, "default", "web").is_null() && slicesOf("web").empty(); }))
      << "left: endpoints " << get(res::kEndpoints, "default", "web").dump() << " slices " << slicesOf("web").dump();
}

// More than 100 endpoints spread over several slices; one pod's change
// rewrites only the slice holding it; an unrelated pod change and a
// controller restart rewrite nothing.
TEST_F(EndpointsTest, SlicesHoldAtMost100AndChangesStayLocal) {
  service("web", {{"app", "web"}}, webPort());
  for (int i = 0; i < 130; ++i) {
    runPod("default", pod("p" + std::to_string(i), {{"app", "web"}}), "10.2." + std::to_string(i / 200) + "." +
           std::to_string(i % 200 + 1), true);
  }
  ASSERT_TRUE(eventually([&] { return sliceEndpoints("web").size() == 130 && ips("web", "addresses").size() == 130; }));
  Json slices = slicesOf("web");
  ASSERT_EQ(slices.size(), 2u);
  std::map<std::string, std::string> rv;
  std::string holder;
  for (const auto& s : slices) {
    EXPECT_LE(s["endpoints"].size(), 100u);
    rv[s["metadata"]["name"]] = s["metadata"]["resourceVersion"];
    for (const auto& e : s["endpoints"]) {
      if (e["targetRef"]["name"] == "p7") holder = s["metadata"]["name"];
    }
  }
  ASSERT_FALSE(holder.empty());
  std::string epRv = get(res::kEndpoints, "default", "web")["metadata"]["resourceVersion"];

  // Irrelevant changes: an annotation on a selected pod, an unselected pod.
  ASSERT_TRUE(api().patch(res::kPods, "default", "p3", {{"metadata", {{"annotations", {{"x", "y"}}}}}}).ok());
  runPod("default", pod("stranger", {{"app", "db"}}), "10.9.0.1", true);
  cp_->stopControllers();
  cp_->startControllers();
  setStatus("default", "p7", "10.2.0.8", false, "2024-02-01T00:00:00Z");
  ASSERT_TRUE(eventually([&] { return ips("web", "notReadyAddresses") == std::set<std::string>{"10.2.0.8"}; }));
  ASSERT_TRUE(eventually([&] { return sliceEndpoints("web")["10.2.0.8"]["conditions"]["ready"] == false; }));
  for (const auto& s : slicesOf("web")) {
    std::string name = s["metadata"]["name"];
    if (name == holder) {
      EXPECT_NE(s["metadata"]["resourceVersion"], rv[name]);
    } else {
      EXPECT_EQ(s["metadata"]["resourceVersion"], rv[name]) << name << " was rewritten";
    }
  }
  EXPECT_NE(get(res::kEndpoints, "default", "web")["metadata"]["resourceVersion"], epRv);
}

// Nothing changes, nothing is written: a restart of the controllers over
// converged state leaves every resourceVersion as it was.
TEST_F(EndpointsTest, NoRewriteWhenNothingChanged) {
  service("web", {{"app", "web"}}, webPort());
  runPod("default", pod("a", {{"app", "web"}}), "10.1.0.1", true);
  runPod("default", pod("b", {{"app", "web"}}), "10.1.0.2", false);
  ASSERT_TRUE(eventually([&] { return ips("web", "addresses").size() == 1 && sliceEndpoints("web").size() == 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::string epRv = get(res::kEndpoints, "default", "web")["metadata"]["resourceVersion"];
  std::string sliceRv = slicesOf("web")[0]["metadata"]["resourceVersion"];
  cp_->stopControllers();
  cp_->startControllers();
  ASSERT_TRUE(api().patch(res::kPods, "default", "a", {{"metadata", {{"annotations", {{"x", "y"}}}}}}).ok());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(get(res::kEndpoints, "default", "web")["metadata"]["resourceVersion"], epRv);
  EXPECT_EQ(slicesOf("web")[0]["metadata"]["resourceVersion"], sliceRv);
}

}  // namespace
}  // namespace sluice::testing
