// Rollout arithmetic (rollout.h) as data: maxSurge/maxUnavailable rounding,
// the new ReplicaSet's next size, proportional shares, conditions, and the
// template hash. Pure functions, no server.
#include "control/controllers/workloads/rollout.h"

#include <gtest/gtest.h>

namespace sluice::controllers::workloads {
namespace {

Json deployment(int replicas, Json surge, Json unavailable) {
  return {{"metadata", {{"generation", 1}}},
          {"spec",
           {{"replicas", replicas},
            {"strategy", {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxSurge", surge}, {"maxUnavailable", unavailable}}}}}}}};
}

Json rs(int replicas, int available = 0, const std::string& maxReplicas = "") {
  Json r = {{"metadata", {{"name", "rs"}}}, {"spec", {{"replicas", replicas}}}, {"status", {{"availableReplicas", available}}}};
  if (!maxReplicas.empty()) r["metadata"]["annotations"][kMaxReplicasAnnotation] = maxReplicas;
  return r;
}

// Percentages: surge rounds up, unavailable rounds down; both zero → 1.
TEST(RolloutTest, FencepostsRounding) {
  struct Case {
    const char* scenario;
    int replicas;
    Json surge, unavailable;
    int wantSurge, wantUnavailable;
  } cases[] = {
      {"defaults on 10", 10, "25%", "25%", 3, 2},
      {"defaults on 1", 1, "25%", "25%", 1, 0},
      {"integers", 5, 2, 1, 2, 1},
      {"both zero becomes unavailable 1", 4, 0, 0, 0, 1},
      {"unavailable capped at replicas", 2, 0, 5, 0, 2},
      {"percent of 3", 3, "50%", "50%", 2, 1},
  };
  for (const auto& c : cases) {
    Json d = deployment(c.replicas, c.surge, c.unavailable);
    EXPECT_EQ(maxSurge(d), c.wantSurge) << c.scenario;
    EXPECT_EQ(maxUnavailable(d), c.wantUnavailable) << c.scenario;
  }
  Json recreate = deployment(4, 1, 1);
  recreate["spec"]["strategy"] = {{"type", "Recreate"}};
  EXPECT_EQ(maxSurge(recreate), 0);
  EXPECT_EQ(maxUnavailable(recreate), 0);
}

// The new ReplicaSet grows up to replicas + maxSurge in total.
TEST(RolloutTest, NewReplicaSetGrowsWithinSurge) {
  Json d = deployment(10, 3, 2);
  Json old = rs(10);
  Json n = rs(0);
  EXPECT_EQ(newRSNewReplicas(d, {&old, &n}, n), 3);
  old = rs(8);
  n = rs(3);
  EXPECT_EQ(newRSNewReplicas(d, {&old, &n}, n), 5);
  old = rs(8);
  n = rs(5);
  EXPECT_EQ(newRSNewReplicas(d, {&old, &n}, n), 5) << "at the surge limit: no growth";
}

// Kubernetes' documented example: 10 → 15 mid-rollout (old 8, new 5, max
// 13) gives old +3 and new +2.
TEST(RolloutTest, ProportionalShares) {
  Json d = deployment(15, 3, 2);
  Json old = rs(8, 8, "13");
  Json n = rs(5, 0, "13");
  int32_t toAdd = 18 - 13;
  int32_t a = proportion(old, d, toAdd, 0);
  int32_t b = proportion(n, d, toAdd, a);
  EXPECT_EQ(a, 3);
  EXPECT_EQ(b, 2);
}

// Same status and reason: no change; same status: lastTransitionTime kept.
TEST(RolloutTest, ConditionTransitions) {
  TimePoint t0 = std::chrono::system_clock::from_time_t(1700000000);
  TimePoint t1 = t0 + std::chrono::seconds(60);
  Json status = Json::object();
  setCondition(status, newCondition(kProgressing, "True", kNewRSReason, "created", t0));
  setCondition(status, newCondition(kProgressing, "True", kRSUpdatedReason, "progressing", t1));
  const Json* c = condition(status, kProgressing);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["reason"], kRSUpdatedReason);
  EXPECT_EQ((*c)["lastTransitionTime"], formatRfc3339(t0));
  EXPECT_EQ((*c)["lastUpdateTime"], formatRfc3339(t1));
  setCondition(status, newCondition(kProgressing, "False", kTimedOutReason, "late", t1));
  EXPECT_EQ((*condition(status, kProgressing))["lastTransitionTime"], formatRfc3339(t1));
  EXPECT_EQ(status["conditions"].size(), 1u);
}

// The progress deadline counts from the Progressing condition's last update.
TEST(RolloutTest, ProgressDeadline) {
  TimePoint t0 = std::chrono::system_clock::from_time_t(1700000000);
  Json d = deployment(2, 1, 0);
  d["spec"]["progressDeadlineSeconds"] = 30;
  Json status = Json::object();
  setCondition(status, newCondition(kProgressing, "True", kRSUpdatedReason, "x", t0));
  EXPECT_FALSE(deploymentTimedOut(d, status, t0 + std::chrono::seconds(30)));
  EXPECT_TRUE(deploymentTimedOut(d, status, t0 + std::chrono::seconds(31)));
}

// Rollbacks keep the older revisions in revision-history.
TEST(RolloutTest, RevisionAnnotations) {
  Json d = {{"metadata", {{"annotations", {{kChangeCauseAnnotation, "v1"}, {kRevisionAnnotation, "3"}}}}},
            {"spec", {{"replicas", 2}}}};
  Json r = rs(2);
  r["metadata"]["annotations"][kRevisionAnnotation] = "1";
  EXPECT_TRUE(setNewReplicaSetAnnotations(d, r, 4, true));
  EXPECT_EQ(annotation(r, kRevisionAnnotation), "4");
  EXPECT_EQ(annotation(r, kRevisionHistoryAnnotation), "1");
  EXPECT_EQ(annotation(r, kChangeCauseAnnotation), "v1");
  EXPECT_FALSE(setNewReplicaSetAnnotations(d, r, 4, true)) << "idempotent";
  EXPECT_FALSE(setNewReplicaSetAnnotations(d, r, 2, true)) << "revisions never go down";
}

// The hash is stable, depends on the template and the collision count, and
// uses only the no-vowel alphabet.
TEST(RolloutTest, TemplateHash) {
  Json t = {{"metadata", {{"labels", {{"app", "web"}}}}}, {"spec", {{"containers", {{{"name", "a"}, {"image", "x:1"}}}}}}};
  Json t2 = t;
  t2["spec"]["containers"][0]["image"] = "x:2";
  EXPECT_EQ(templateHash(t, std::nullopt), templateHash(t, std::nullopt));
  EXPECT_NE(templateHash(t, std::nullopt), templateHash(t2, std::nullopt));
  EXPECT_NE(templateHash(t, std::nullopt), templateHash(t, 1));
  EXPECT_EQ(templateHash(t, std::nullopt).find_first_of("aeiou01"), std::string::npos);
  Json withHash = t;
  withHash["metadata"]["labels"][kPodTemplateHashLabel] = "abc";
  EXPECT_TRUE(equalIgnoreHash(t, withHash));
  EXPECT_FALSE(equalIgnoreHash(t2, withHash));
}

}  // namespace
}  // namespace sluice::controllers::workloads
