// Node heartbeats (Lease + Ready) and the node lifecycle controller, with
// the injected clock: a node that stops heartbeating becomes Unknown after
// the grace period, its pods not Ready, then evicted after the eviction
// timeout, and their ReplicaSet's replacements land on the live node.
#include <gtest/gtest.h>

#include "control/controllers/cluster/node_heartbeat.h"
#include "control/controllers/cluster/node_lifecycle.h"
#include "tests/control/controllers/cluster/cluster_fixture.h"

namespace sluice::testing {
namespace {

using controllers::NodeHeartbeat;
using controllers::NodeHeartbeatOptions;

class NodeLifecycleTest : public ClusterTest {
 protected:
  ControlPlane::Options options() override {
    ControlPlane::Options o;
    o.manager.only = {"nodelifecycle", "scheduler", "replicaset", "endpoints"};
    return o;
  }

  std::unique_ptr<NodeHeartbeat> startNode(const std::string& name) {
    NodeHeartbeatOptions o;
    o.node = {{"metadata", {{"name", name}}},
              {"status", {{"allocatable", {{"cpu", "4"}, {"memory", "8Gi"}, {"pods", "110"}}}}}};
    o.clock = &cp_->clock();
    o.renewInterval = std::chrono::hours(1);  // beats are driven by the test
    auto h = NodeHeartbeat::start(api(), o);
    EXPECT_TRUE(h.ok()) << h.error().message;
    return h.ok() ? std::move(*h) : nullptr;
  }

  std::string readyStatus(const std::string& node) {
    for (const auto& c : get(res::kNodes, "", node).value("/status/conditions"_json_pointer, Json::array())) {
      if (c["type"] == "Ready") return c["status"];
    }
    return "";
  }

  // Advances the clock in steps shorter than the grace period, renewing
  // `live`'s lease after each step, as its agent would.
  void advance(std::chrono::seconds total, NodeHeartbeat& live) {
    for (auto done = std::chrono::seconds(0); done < total; done += std::chrono::seconds(10)) {
      cp_->clock().advance(std::chrono::seconds(10));
      auto r = live.beat();
      ASSERT_TRUE(r.ok()) << r.error().message;
      // Let the controllers see the renewal before the next step.
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  // Plays the node agent for pods bound to `node`: Running and Ready.
  void runBoundPods(const std::string& node, int& ipSuffix) {
    auto list = api().list(res::kPods, "default");
    ASSERT_TRUE(list.ok());
    for (const auto& p : (*list)["items"]) {
      if (p.value("/spec/nodeName"_json_pointer, std::string()) != node) continue;
      if (!p.value("/status/podIP"_json_pointer, std::string()).empty()) continue;
      setStatus("default", p["metadata"]["name"], "10.7.0." + std::to_string(++ipSuffix), true);
    }
  }
};

// Registration creates the Node (Ready) and its Lease in kube-node-lease,
// held by the node and renewed with the clock's time.
TEST_F(NodeLifecycleTest, HeartbeatRegistersNodeAndRenewsLease) {
  auto n = startNode("n1");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(readyStatus("n1"), "True");
  Json lease = get(res::kLeases, "kube-node-lease", "n1");
  ASSERT_FALSE(lease.is_null());
  EXPECT_EQ(lease["spec"]["holderIdentity"], "n1");
  EXPECT_EQ(lease["spec"]["leaseDurationSeconds"], 40);
  EXPECT_EQ(lease["metadata"]["ownerReferences"][0]["kind"], "Node");
  std::string first = lease["spec"]["renewTime"];
  cp_->clock().advance(std::chrono::seconds(10));
  ASSERT_TRUE(n->beat().ok());
  std::string second = get(res::kLeases, "kube-node-lease", "n1")["spec"]["renewTime"];
  EXPECT_NE(first, second);
  EXPECT_EQ(controllers::parseRfc3339(second).value() - controllers::parseRfc3339(first).value(),
            std::chrono::seconds(10));
}

// The whole path: a dead node turns Unknown after 40 s (the live one stays
// Ready), its pods turn not Ready and leave the Service's addresses, and
// after the eviction timeout they are deleted and replaced on the live node.
TEST_F(NodeLifecycleTest, DeadNodeGoesUnknownThenItsPodsMoveToLiveNode) {
  auto dead = startNode("dead");
  auto live = startNode("live");
  ASSERT_TRUE(dead && live);
  Json svc = service("web", {{"app", "web"}}, Json::array({{{"port", 80}}}));
  Json rs = {{"apiVersion", "apps/v1"},
             {"kind", "ReplicaSet"},
             {"metadata", {{"name", "web"}}},
             {"spec",
              {{"replicas", 2},
               {"selector", {{"matchLabels", {{"app", "web"}}}}},
               {"template",
                {{"metadata", {{"labels", {{"app", "web"}}}}},
                 {"spec", {{"containers", {{{"name", "c"}, {"image", "sluice/echo"}}}}}}}}}}};
  ASSERT_TRUE(api().create(res::kReplicaSets, "default", rs).ok());
  // Spread: one pod on each node.
  auto podsOn = [&](const std::string& node, bool includeTerminating) {
    int n = 0;
    auto list = api().list(res::kPods, "default");
    for (const auto& p : (*list)["items"]) {
      bool terminating = !p.value("/metadata/deletionTimestamp"_json_pointer, std::string()).empty();
      if (p.value("/spec/nodeName"_json_pointer, std::string()) == node && (includeTerminating || !terminating)) ++n;
    }
    return n;
  };
  ASSERT_TRUE(eventually([&] { return podsOn("dead", false) == 1 && podsOn("live", false) == 1; }));
  int ip = 0;
  runBoundPods("dead", ip);
  runBoundPods("live", ip);
  auto readyAddresses = [&] {
    size_t n = 0;
    Json ep = get(res::kEndpoints, "default", "web");
    for (const auto& s : ep.value("subsets", Json::array())) n += s.value("addresses", Json::array()).size();
    return n;
  };
  ASSERT_TRUE(eventually([&] { return readyAddresses() == 2; }));

  advance(std::chrono::seconds(30), *live);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(readyStatus("dead"), "True") << "30 s without heartbeat is within the grace period";
  advance(std::chrono::seconds(20), *live);
  ASSERT_TRUE(eventually([&] { return readyStatus("dead") == "Unknown"; }));
  EXPECT_EQ(readyStatus("live"), "True");
  Json deadNode = get(res::kNodes, "", "dead");
  for (const auto& c : deadNode["status"]["conditions"]) {
    if (c["type"] == "Ready") {
      EXPECT_EQ(c["reason"], "NodeStatusUnknown");
      EXPECT_EQ(c["message"], "Kubelet stopped posting node status.");
    }
  }
  ASSERT_TRUE(eventually([&] { return readyAddresses() == 1; }));
  EXPECT_EQ(podsOn("dead", false), 1) << "pods stay until the eviction timeout";

  advance(std::chrono::seconds(310), *live);
  // Evicted (marked for deletion: the dead node's agent never confirms),
  // replaced, and the replacement is placed on the live node.
  ASSERT_TRUE(eventually([&] { return podsOn("dead", false) == 0 && podsOn("live", false) == 2; }));
  runBoundPods("live", ip);
  ASSERT_TRUE(eventually([&] { return readyAddresses() == 2; }));
  EXPECT_EQ(readyStatus("live"), "True");
}

}  // namespace
}  // namespace sluice::testing
