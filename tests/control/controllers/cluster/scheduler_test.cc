// The scheduler against a real server: nodes and pods written through the
// API, placements read back from spec.nodeName and PodScheduled.
#include <gtest/gtest.h>

#include <map>

#include "tests/control/controllers/cluster/cluster_fixture.h"

namespace sluice::testing {
namespace {

class SchedulerTest : public ClusterTest {
 protected:
  ControlPlane::Options options() override {
    ControlPlane::Options o;
    o.manager.only = {"scheduler"};
    return o;
  }

  void node(const std::string& name, const std::string& cpu, const std::string& memory, bool ready = true,
            Json labels = Json::object(), bool unschedulable = false, const std::string& pods = "110") {
    Json n = {{"apiVersion", "v1"},
              {"kind", "Node"},
              {"metadata", {{"name", name}, {"labels", labels}}},
              {"spec", {{"unschedulable", unschedulable}}},
              {"status",
               {{"allocatable", {{"cpu", cpu}, {"memory", memory}, {"pods", pods}}},
                {"capacity", {{"cpu", cpu}, {"memory", memory}, {"pods", pods}}},
                {"conditions",
                 {{{"type", "Ready"}, {"status", ready ? "True" : "False"}, {"reason", "KubeletReady"},
                   {"lastHeartbeatTime", "2099-01-01T00:00:00Z"}}}}}}};
    auto r = api().create(res::kNodes, "", n);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }

  Json requesting(const std::string& name, const std::string& cpu, const std::string& memory = "") {
    Json p = pod(name, {{"app", "x"}});
    Json req = Json::object();
    if (!cpu.empty()) req["cpu"] = cpu;
    if (!memory.empty()) req["memory"] = memory;
    p["spec"]["containers"][0]["resources"] = {{"requests", req}};
    return p;
  }

  std::string nodeOf(const std::string& pod) {
    return get(res::kPods, "default", pod).value("/spec/nodeName"_json_pointer, std::string());
  }
  Json scheduledCondition(const std::string& pod) {
    for (const auto& c : get(res::kPods, "default", pod).value("/status/conditions"_json_pointer, Json::array())) {
      if (c["type"] == "PodScheduled") return c;
    }
    return Json();
  }
};

// Requests count against allocatable minus what is already placed; the
// nodeSelector, NotReady and unschedulable nodes are honoured; a pod that
// fits nowhere says why, and is placed once a node that fits appears.
TEST_F(SchedulerTest, RequestsSelectorReadinessAndUnschedulableMessage) {
  node("n1", "2", "4Gi", true, {{"disk", "ssd"}});
  node("n2", "8", "16Gi", false);
  node("n3", "8", "16Gi", true, Json::object(), true);
  Json first = requesting("first", "1500m", "1Gi");
  first["spec"]["nodeSelector"] = {{"disk", "ssd"}};
  ASSERT_TRUE(api().create(res::kPods, "default", first).ok());
  ASSERT_TRUE(eventually([&] { return nodeOf("first") == "n1"; }));

  ASSERT_TRUE(api().create(res::kPods, "default", requesting("second", "1")).ok());
  ASSERT_TRUE(eventually([&] { return !scheduledCondition("second").is_null(); }));
  Json c = scheduledCondition("second");
  EXPECT_EQ(c["status"], "False");
  EXPECT_EQ(c["reason"], "Unschedulable");
  EXPECT_EQ(c["message"],
            "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
            "{node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable.");
  EXPECT_EQ(nodeOf("second"), "");
  EXPECT_EQ(get(res::kPods, "default", "second")["status"]["phase"], "Pending");

  // Memory is checked too.
  ASSERT_TRUE(api().create(res::kPods, "default", requesting("big", "", "8Gi")).ok());
  ASSERT_TRUE(eventually([&] {
    Json c = scheduledCondition("big");
    return c.is_object() && c.value("message", "").find("1 Insufficient memory") != std::string::npos;
  }));

  // A node that fits appears: both pending pods are placed on it.
  node("n4", "4", "16Gi");
  ASSERT_TRUE(eventually([&] { return nodeOf("second") == "n4" && nodeOf("big") == "n4"; }));
}

// Pods of one owner spread across nodes (fewest of that owner first); a
// full node (pod count) is skipped.
TEST_F(SchedulerTest, SpreadsPodsOfOneOwner) {
  node("a", "8", "16Gi");
  node("b", "8", "16Gi");
  node("c", "8", "16Gi");
  node("full", "8", "16Gi", true, Json::object(), false, "0");
  Json rs = {{"apiVersion", "apps/v1"},
             {"kind", "ReplicaSet"},
             {"metadata", {{"name", "web"}}},
             {"spec",
              {{"replicas", 6},
               {"selector", {{"matchLabels", {{"app", "web"}}}}},
               {"template",
                {{"metadata", {{"labels", {{"app", "web"}}}}},
                 {"spec", {{"containers", {{{"name", "c"}, {"image", "sluice/echo"}}}}}}}}}}};
  auto created = api().create(res::kReplicaSets, "default", rs);
  ASSERT_TRUE(created.ok()) << created.error().message;
  // Unrelated pods already on node a: spreading is per owner, so a still
  // gets its share of web's pods.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(api().create(res::kPods, "default", pod("other" + std::to_string(i), {{"app", "other"}})).ok());
  }
  ASSERT_TRUE(eventually([&] { return !nodeOf("other0").empty() && !nodeOf("other1").empty() && !nodeOf("other2").empty(); }));
  for (int i = 0; i < 6; ++i) {
    Json p = pod("web-" + std::to_string(i), {{"app", "web"}});
    p["metadata"]["ownerReferences"] = {{{"apiVersion", "apps/v1"}, {"kind", "ReplicaSet"}, {"name", "web"},
                                         {"uid", (*created)["metadata"]["uid"]}, {"controller", true}}};
    ASSERT_TRUE(api().create(res::kPods, "default", p).ok());
  }
  std::map<std::string, int> perNode;
  ASSERT_TRUE(eventually([&] {
    perNode.clear();
    for (int i = 0; i < 6; ++i) {
      std::string n = nodeOf("web-" + std::to_string(i));
      if (n.empty()) return false;
      ++perNode[n];
    }
    return true;
  }));
  EXPECT_EQ(perNode, (std::map<std::string, int>{{"a", 2}, {"b", 2}, {"c", 2}}));
}

}  // namespace
}  // namespace sluice::testing
