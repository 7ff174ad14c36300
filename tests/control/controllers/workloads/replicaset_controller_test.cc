// The ReplicaSet controller against a real server and store, with hollow
// nodes reporting pods Running/Ready and an injected clock.
#include <gtest/gtest.h>

#include <set>

#include "tests/control/controllers/workloads/workload_fixture.h"

namespace sluice::testing {
namespace {

namespace wl = controllers::workloads;

class ReplicaSetTest : public WorkloadTest {
 protected:
  std::vector<std::string> controllers() const override { return {"replicaset"}; }

  Json createRs(const std::string& name, int replicas, int minReadySeconds = 0) {
    Json rs = replicaSet(name, replicas, {{"app", name}});
    rs["spec"]["minReadySeconds"] = minReadySeconds;
    auto r = api().create(res::kReplicaSets, "default", rs);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r ? *r : Json();
  }

  bool rsStatus(const std::string& name, int replicas, int ready, int available) {
    Json rs = get(res::kReplicaSets, name);
    return status(rs, "replicas") == replicas && status(rs, "readyReplicas") == ready &&
           status(rs, "availableReplicas") == available &&
           rs.value("status", Json::object()).value("observedGeneration", 0) == wl::generationOf(rs);
  }

  Result<Json> scale(const std::string& name, int replicas) {
    return api().patch(res::kReplicaSets, "default", name, Json{{"spec", {{"replicas", replicas}}}});
  }
};

// Pods come from the template with generateName "<rs>-" and a controller
// ownerReference; status counts them once the hollow node reports them.
TEST_F(ReplicaSetTest, CreatesOwnedPodsAndReportsStatus) {
  startNodes();
  Json rs = createRs("web", 3);
  ASSERT_TRUE(eventually([&] { return rsStatus("web", 3, 3, 3); }));
  auto owned = podsOwnedBy(client::uidOf(rs));
  ASSERT_EQ(owned.size(), 3u);
  for (const auto& p : owned) {
    EXPECT_EQ(p["metadata"]["generateName"], "web-");
    EXPECT_EQ(p["metadata"]["labels"]["app"], "web");
    const Json& ref = p["metadata"]["ownerReferences"][0];
    EXPECT_EQ(ref["apiVersion"], "apps/v1");
    EXPECT_EQ(ref["kind"], "ReplicaSet");
    EXPECT_EQ(ref["name"], "web");
    EXPECT_EQ(ref["controller"], true);
    EXPECT_EQ(ref["blockOwnerDeletion"], true);
    EXPECT_EQ(p["status"]["phase"], "Running");
  }
  EXPECT_EQ(status(get(res::kReplicaSets, "web"), "fullyLabeledReplicas"), 3);
}

// Deleting a pod yields a replacement; the count never overshoots.
TEST_F(ReplicaSetTest, DeletedPodIsReplaced) {
  startNodes();
  Json rs = createRs("web", 2);
  ASSERT_TRUE(eventually([&] { return rsStatus("web", 2, 2, 2); }));
  std::string victim = client::nameOf(podsOwnedBy(client::uidOf(rs))[0]);
  ASSERT_TRUE(api().remove(res::kPods, "default", victim).ok());
  ASSERT_TRUE(eventually([&] {
    auto owned = podsOwnedBy(client::uidOf(rs));
    return owned.size() == 2 &&
           std::none_of(owned.begin(), owned.end(), [&](const Json& p) { return client::nameOf(p) == victim; }) &&
           rsStatus("web", 2, 2, 2);
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(pods("app=web").size(), 2u);
}

// Relabelling a pod out of the selector releases it (ownerReference
// removed, pod kept) and a replacement is created; relabelling it back makes
// the ReplicaSet adopt it and delete one surplus pod.
TEST_F(ReplicaSetTest, RelabelReleasesAndRelabelBackAdopts) {
  startNodes();
  Json rs = createRs("web", 3);
  std::string uid = client::uidOf(rs);
  ASSERT_TRUE(eventually([&] { return rsStatus("web", 3, 3, 3); }));
  std::string name = client::nameOf(podsOwnedBy(uid)[0]);
  // The replacement becomes ready 10 s (injected clock) after the others,
  // which makes it the one scale-down picks later.
  cp_->clock().advance(std::chrono::seconds(10));
  ASSERT_TRUE(api().patch(res::kPods, "default", name, Json{{"metadata", {{"labels", {{"app", "debug"}}}}}}).ok());
  ASSERT_TRUE(eventually([&] {
    Json p = get(res::kPods, name);
    return !p.is_null() && !p["metadata"].contains("ownerReferences") && podsOwnedBy(uid).size() == 3 &&
           rsStatus("web", 3, 3, 3);
  })) << get(res::kPods, name).dump();
  EXPECT_EQ(pods("app=web").size(), 3u);
  EXPECT_EQ(pods("app=debug").size(), 1u);

  ASSERT_TRUE(api().patch(res::kPods, "default", name, Json{{"metadata", {{"labels", {{"app", "web"}}}}}}).ok());
  ASSERT_TRUE(eventually([&] { return pods("app=web").size() == 3 && podsOwnedBy(uid).size() == 3; }));
  // The adopted pod has been ready longest, so the ReplicaSet keeps it and
  // deletes the replacement.
  Json p = get(res::kPods, name);
  ASSERT_FALSE(p.is_null());
  EXPECT_TRUE(wl::controlledBy(p, uid));
}

// Orphans that match are adopted instead of creating new pods.
TEST_F(ReplicaSetTest, AdoptsMatchingOrphans) {
  for (const char* n : {"orphan-a", "orphan-b"}) {
    ASSERT_TRUE(api().create(res::kPods, "default", barePod(n, {{"app", "web"}})).ok());
  }
  startNodes();
  Json rs = createRs("web", 2);
  ASSERT_TRUE(eventually([&] { return podsOwnedBy(client::uidOf(rs)).size() == 2 && rsStatus("web", 2, 2, 2); }));
  std::set<std::string> names;
  for (const auto& p : pods("app=web")) names.insert(client::nameOf(p));
  EXPECT_EQ(names, (std::set<std::string>{"orphan-a", "orphan-b"}));
}

// Scale down removes the not-ready pod first, then unscheduled ones before
// running ones; scale up adds pods.
TEST_F(ReplicaSetTest, ScaleDownRemovesNotReadyFirst) {
  startNodes();
  Json rs = createRs("web", 4);
  std::string uid = client::uidOf(rs);
  ASSERT_TRUE(eventually([&] { return rsStatus("web", 4, 4, 4); }));
  auto owned = podsOwnedBy(uid);
  std::string sick = client::nameOf(owned[2]);
  nodes_->setPodReady("default", sick, false);
  ASSERT_TRUE(eventually([&] { return rsStatus("web", 4, 3, 3); }));
  ASSERT_TRUE(scale("web", 3).ok());
  ASSERT_TRUE(eventually([&] { return rsStatus("web", 3, 3, 3); }));
  EXPECT_TRUE(get(res::kPods, sick).is_null()) << "the not-ready pod should have been removed first";

  ASSERT_TRUE(scale("web", 5).ok());
  ASSERT_TRUE(eventually([&] { return rsStatus("web", 5, 5, 5); }));
  ASSERT_TRUE(scale("web", 0).ok());
  ASSERT_TRUE(eventually([&] { return rsStatus("web", 0, 0, 0) && podsOwnedBy(uid).empty(); }));
}

// Unscheduled pods go before scheduled ones (no binder: pods stay pending
// until the hollow node starts binding).
TEST_F(ReplicaSetTest, ScaleDownRemovesUnscheduledFirst) {
  startNodes(1, /*bind=*/false);
  Json rs = createRs("web", 2);
  std::string uid = client::uidOf(rs);
  ASSERT_TRUE(eventually([&] { return podsOwnedBy(uid).size() == 2; }));
  // Bind one pod by hand; the other stays unscheduled.
  std::string bound = client::nameOf(podsOwnedBy(uid)[0]);
  Json binding = {{"apiVersion", "v1"},
                  {"kind", "Binding"},
                  {"metadata", {{"name", bound}}},
                  {"target", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", "hollow-0"}}}};
  ASSERT_TRUE(api().call("POST", res::kPods.path("default", bound, "binding"), &binding).ok());
  ASSERT_TRUE(eventually([&] { return rsStatus("web", 2, 1, 1); }));
  ASSERT_TRUE(scale("web", 1).ok());
  ASSERT_TRUE(eventually([&] { return rsStatus("web", 1, 1, 1); }));
  auto left = podsOwnedBy(uid);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(client::nameOf(left[0]), bound);
}

// availableReplicas waits minReadySeconds on the injected clock.
TEST_F(ReplicaSetTest, MinReadySecondsUsesInjectedClock) {
  startNodes();
  createRs("web", 2, /*minReadySeconds=*/30);
  ASSERT_TRUE(eventually([&] { return rsStatus("web", 2, 2, 0); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_TRUE(rsStatus("web", 2, 2, 0)) << "available before minReadySeconds passed";
  cp_->clock().advance(std::chrono::seconds(31));
  ASSERT_TRUE(eventually([&] { return rsStatus("web", 2, 2, 2); }));
}

// Level-triggered: changes made while the controller is down (pods deleted,
// replicas changed) and a server restart converge from the store alone.
TEST_F(ReplicaSetTest, ConvergesAfterRestart) {
  startNodes();
  Json rs = createRs("web", 3);
  std::string uid = client::uidOf(rs);
  ASSERT_TRUE(eventually([&] { return rsStatus("web", 3, 3, 3); }));
  cp_->stopControllers();
  ASSERT_TRUE(api().remove(res::kPods, "default", client::nameOf(podsOwnedBy(uid)[0])).ok());
  ASSERT_TRUE(scale("web", 5).ok());
  cp_->restart();
  cp_->startControllers();
  ASSERT_TRUE(eventually([&] { return rsStatus("web", 5, 5, 5); }))
      << get(res::kReplicaSets, "web")["status"].dump() << " pods: " << pods().size();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(podsOwnedBy(uid).size(), 5u);
}

}  // namespace
}  // namespace sluice::testing
