// The server side of graceful pod deletion, as Kubernetes does it: a pod
// bound to a node is marked (deletionTimestamp = now + grace,
// deletionGracePeriodSeconds) for its agent to stop; grace 0 removes it;
// unbound and terminal pods go at once; a shorter grace moves the deadline.
#include <gtest/gtest.h>
#include <unistd.h>

#include "control/api/time_util.h"
#include "control/util/rfc3339.h"
#include "tests/control/controllers/control_plane.h"

namespace sluice::testing {
namespace {

using Json = nlohmann::json;
const client::Resource& kPods = client::resources::kPods;

class GracefulDeleteTest : public ::testing::Test {
 protected:
  GracefulDeleteTest() : cp_("graceful-" + std::to_string(::getpid()), Options()) {}
  static ControlPlane::Options Options() {
    ControlPlane::Options o;
    o.startControllers = false;
    return o;
  }
  Json pod(const std::string& name, const std::string& node,
           std::optional<int64_t> grace = std::nullopt) {
    Json p = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", name}}},
              {"spec", {{"containers", {{{"name", "c"}, {"image", "sluice/echo"}}}}}}};
    if (!node.empty()) p["spec"]["nodeName"] = node;
    if (grace) p["spec"]["terminationGracePeriodSeconds"] = *grace;
    auto r = cp_.client().create(kPods, "default", p);
    EXPECT_TRUE(r) << r.error().message;
    return r ? *r : Json();
  }
  bool exists(const std::string& name) { return cp_.client().get(kPods, "default", name).ok(); }

  ControlPlane cp_;
};

// Bound pod, default grace (spec 30 s): marked, not removed; the agent's
// grace-0 delete then removes it.
TEST_F(GracefulDeleteTest, BoundPodIsMarkedThenRemovedWithGraceZero) {
  pod("bound", "node-1");
  auto before = api::Clock::now();
  auto r = cp_.client().remove(kPods, "default", "bound");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(exists("bound"));
  Json p = *cp_.client().get(kPods, "default", "bound");
  ASSERT_TRUE(p["metadata"].contains("deletionTimestamp")) << p.dump(2);
  EXPECT_EQ(p["metadata"]["deletionGracePeriodSeconds"], 30);
  auto ts = util::parseRfc3339(p["metadata"]["deletionTimestamp"].get<std::string>());
  ASSERT_TRUE(ts.has_value());
  EXPECT_GE(*ts, before + std::chrono::seconds(28));
  EXPECT_LE(*ts, api::Clock::now() + std::chrono::seconds(31));

  // A second delete with the same grace changes nothing.
  ASSERT_TRUE(cp_.client().remove(kPods, "default", "bound"));
  EXPECT_EQ(
      (*cp_.client().get(kPods, "default", "bound"))["metadata"]["deletionGracePeriodSeconds"], 30);
  // Status updates of a terminating pod still go through (the agent reports).
  ASSERT_TRUE(cp_.client().patch(kPods, "default", "bound",
                                 Json{{"status", {{"phase", "Running"}}}},
                                 "application/merge-patch+json", "status"));
  ASSERT_TRUE(cp_.client().remove(kPods, "default", "bound", Json{{"gracePeriodSeconds", 0}}));
  EXPECT_FALSE(exists("bound"));
}

// spec.terminationGracePeriodSeconds is the default; a shorter request
// moves the deadline closer; a longer one does not extend it.
TEST_F(GracefulDeleteTest, ShorterGracePeriodMovesDeadline) {
  pod("short", "node-1", 120);
  ASSERT_TRUE(cp_.client().remove(kPods, "default", "short"));
  EXPECT_EQ(
      (*cp_.client().get(kPods, "default", "short"))["metadata"]["deletionGracePeriodSeconds"],
      120);
  ASSERT_TRUE(cp_.client().remove(kPods, "default", "short", Json{{"gracePeriodSeconds", 5}}));
  EXPECT_EQ(
      (*cp_.client().get(kPods, "default", "short"))["metadata"]["deletionGracePeriodSeconds"], 5);
  ASSERT_TRUE(cp_.client().remove(kPods, "default", "short", Json{{"gracePeriodSeconds", 60}}));
  EXPECT_EQ(
      (*cp_.client().get(kPods, "default", "short"))["metadata"]["deletionGracePeriodSeconds"], 5);
  // gracePeriodSeconds as a query parameter, as some clients send it.
  auto r = cp_.client().call("DELETE", kPods.path("default", "short") + "?gracePeriodSeconds=0");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(exists("short"));
}

// Unbound pods, terminal pods and an explicit grace 0 delete at once.
TEST_F(GracefulDeleteTest, UnboundTerminalAndZeroGraceDeleteAtOnce) {
  pod("unbound", "");
  ASSERT_TRUE(cp_.client().remove(kPods, "default", "unbound"));
  EXPECT_FALSE(exists("unbound"));

  pod("done", "node-1");
  ASSERT_TRUE(cp_.client().patch(kPods, "default", "done",
                                 Json{{"status", {{"phase", "Succeeded"}}}},
                                 "application/merge-patch+json", "status"));
  ASSERT_TRUE(cp_.client().remove(kPods, "default", "done"));
  EXPECT_FALSE(exists("done"));

  pod("zero", "node-1", 0);
  ASSERT_TRUE(cp_.client().remove(kPods, "default", "zero"));
  EXPECT_FALSE(exists("zero"));

  pod("forced", "node-1");
  ASSERT_TRUE(cp_.client().remove(kPods, "default", "forced", Json{{"gracePeriodSeconds", 0}}));
  EXPECT_FALSE(exists("forced"));
}

// A terminating pod is still an object: updating it (a label, its status)
// does not remove it. With a finalizer, the graceful mark comes first; the
// agent's grace 0 then leaves it to the last finalizer, whose removal
// deletes it.
TEST_F(GracefulDeleteTest, TerminatingPodSurvivesUpdatesAndWaitsForFinalizers) {
  pod("labelled", "node-1");
  ASSERT_TRUE(cp_.client().remove(kPods, "default", "labelled"));
  ASSERT_TRUE(cp_.client().patch(kPods, "default", "labelled",
                                 Json{{"metadata", {{"labels", {{"a", "b"}}}}}}));
  ASSERT_TRUE(exists("labelled")) << "an update removed a pod in its grace period";
  EXPECT_EQ(
      (*cp_.client().get(kPods, "default", "labelled"))["metadata"]["deletionGracePeriodSeconds"],
      30);

  pod("finalized", "node-1");
  ASSERT_TRUE(cp_.client().patch(kPods, "default", "finalized",
                                 Json{{"metadata", {{"finalizers", {"example.com/hold"}}}}}));
  ASSERT_TRUE(cp_.client().remove(kPods, "default", "finalized"));
  Json marked = *cp_.client().get(kPods, "default", "finalized");
  EXPECT_EQ(marked["metadata"]["deletionGracePeriodSeconds"], 30) << marked.dump(2);
  ASSERT_TRUE(cp_.client().remove(kPods, "default", "finalized", Json{{"gracePeriodSeconds", 0}}));
  marked = *cp_.client().get(kPods, "default", "finalized");
  EXPECT_EQ(marked["metadata"]["deletionGracePeriodSeconds"], 0) << marked.dump(2);
  ASSERT_TRUE(cp_.client().patch(kPods, "default", "finalized",
                                 Json{{"metadata", {{"finalizers", nullptr}}}}));
  EXPECT_FALSE(exists("finalized"));
}

}  // namespace
}  // namespace sluice::testing
