// The garbage collector against a real server: background, foreground and
// orphan propagation through Deployment → ReplicaSet → pods, dangling
// references, and collection of what was orphaned while it was down.
#include <gtest/gtest.h>

#include "tests/control/controllers/workloads/workload_fixture.h"

namespace sluice::testing {
namespace {

namespace wl = controllers::workloads;

class GarbageCollectorTest : public WorkloadTest {
 protected:
  Json deployment(const std::string& name, int replicas) {
    Json labels = {{"app", name}};
    Json d = {{"apiVersion", "apps/v1"},
              {"kind", "Deployment"},
              {"metadata", {{"name", name}}},
              {"spec", {{"replicas", replicas}, {"selector", {{"matchLabels", labels}}}, {"template", podTemplate(labels)}}}};
    auto r = api().create(res::kDeployments, "default", d);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r ? *r : Json();
  }
  size_t count(const client::Resource& r, const std::string& selector) {
    client::ListOptions o;
    o.labelSelector = selector;
    auto l = api().list(r, "default", o);
    return l ? (*l)["items"].size() : 0;
  }
  bool running(const std::string& selector, size_t n) {
    size_t ready = 0;
    for (const auto& p : pods(selector)) ready += wl::podReady(p) ? 1 : 0;
    return ready == n;
  }
};

// Background (the default): the owner goes at once, then its dependents.
TEST_F(GarbageCollectorTest, BackgroundDeleteRemovesReplicaSetsAndPods) {
  startNodes();
  deployment("web", 3);
  ASSERT_TRUE(eventually([&] { return running("app=web", 3); }));
  ASSERT_TRUE(api().remove(res::kDeployments, "default", "web").ok());
  EXPECT_TRUE(get(res::kDeployments, "web").is_null());
  ASSERT_TRUE(eventually([&] { return count(res::kReplicaSets, "app=web") == 0 && pods("app=web").empty(); }));
}

// Foreground: the Deployment stays (deletionTimestamp + foregroundDeletion)
// until its ReplicaSet, and that ReplicaSet's pods, are gone.
TEST_F(GarbageCollectorTest, ForegroundDeleteWaitsForDependents) {
  startNodes();
  deployment("web", 3);
  ASSERT_TRUE(eventually([&] { return running("app=web", 3); }));
  auto r = api().remove(res::kDeployments, "default", "web", Json{{"propagationPolicy", "Foreground"}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(wl::isDeleting(*r));
  EXPECT_TRUE(wl::hasFinalizer(*r, "foregroundDeletion"));
  // Whenever the Deployment is seen gone, its pods are gone too.
  bool orderKept = true;
  ASSERT_TRUE(eventually([&] {
    size_t podsLeft = pods("app=web").size();
    bool deploymentGone = get(res::kDeployments, "web").is_null();
    if (deploymentGone && podsLeft != 0) orderKept = false;
    return deploymentGone && podsLeft == 0 && count(res::kReplicaSets, "app=web") == 0;
  }));
  EXPECT_TRUE(orderKept);
}

// Orphan: dependents stay, without the ownerReference, and nothing
// recreates or deletes them.
TEST_F(GarbageCollectorTest, OrphanKeepsPods) {
  startNodes();
  Json rs = replicaSet("web", 2, {{"app", "web"}});
  ASSERT_TRUE(api().create(res::kReplicaSets, "default", rs).ok());
  ASSERT_TRUE(eventually([&] { return running("app=web", 2); }));
  ASSERT_TRUE(api().remove(res::kReplicaSets, "default", "web", Json{{"propagationPolicy", "Orphan"}}).ok());
  ASSERT_TRUE(eventually([&] { return get(res::kReplicaSets, "web").is_null(); }));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  auto left = pods("app=web");
  ASSERT_EQ(left.size(), 2u);
  for (const auto& p : left) EXPECT_FALSE(p["metadata"].contains("ownerReferences")) << p.dump();
}

// A dangling reference next to a live owner is removed; the pod stays.
TEST_F(GarbageCollectorTest, DanglingReferenceRemovedWhenAnotherOwnerLives) {
  Json svc = {{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata", {{"name", "owner"}}},
              {"spec", {{"ports", {{{"port", 80}}}}}}};
  auto s = api().create(res::kServices, "default", svc);
  ASSERT_TRUE(s.ok()) << s.error().message;
  Json pod = barePod("two-owners", {{"app", "x"}});
  pod["metadata"]["ownerReferences"] = {
      {{"apiVersion", "v1"}, {"kind", "Service"}, {"name", "owner"}, {"uid", client::uidOf(*s)}},
      {{"apiVersion", "apps/v1"}, {"kind", "ReplicaSet"}, {"name", "gone"}, {"uid", "00000000-dead-beef-0000-000000000000"}}};
  ASSERT_TRUE(api().create(res::kPods, "default", pod).ok());
  ASSERT_TRUE(eventually([&] {
    Json p = get(res::kPods, "two-owners");
    return !p.is_null() && p["metadata"]["ownerReferences"].size() == 1 &&
           p["metadata"]["ownerReferences"][0]["name"] == "owner";
  }));
  // Its last owner gone, the pod is collected.
  ASSERT_TRUE(api().remove(res::kServices, "default", "owner").ok());
  ASSERT_TRUE(eventually([&] { return get(res::kPods, "two-owners").is_null(); }));
}

// Level-triggered: an owner deleted while the collector was down has its
// dependents collected after a restart.
TEST_F(GarbageCollectorTest, CollectsAfterRestart) {
  startNodes();
  ASSERT_TRUE(api().create(res::kReplicaSets, "default", replicaSet("web", 3, {{"app", "web"}})).ok());
  ASSERT_TRUE(eventually([&] { return running("app=web", 3); }));
  cp_->stopControllers();
  ASSERT_TRUE(api().remove(res::kReplicaSets, "default", "web").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(pods("app=web").size(), 3u) << "nothing collects while the controllers are down";
  cp_->restart();
  cp_->startControllers();
  ASSERT_TRUE(eventually([&] { return pods("app=web").empty(); }));
}

}  // namespace
}  // namespace sluice::testing
