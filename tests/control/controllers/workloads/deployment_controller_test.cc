// The Deployment controller against a real server and store: ReplicaSets
// keyed by template hash, revisions, rolling and Recreate rollouts, scaling
// (proportional when paused mid-rollout), rollback, history cleanup,
// conditions with an injected clock, and a restart mid-rollout.
#include <gtest/gtest.h>

#include "control/controllers/workloads/rollout.h"
#include "tests/control/controllers/workloads/workload_fixture.h"

namespace sluice::testing {
namespace {

namespace wl = controllers::workloads;

class DeploymentTest : public WorkloadTest {
 protected:
  Json create(const std::string& name, int replicas, Json strategy = Json(), Json extraSpec = Json::object()) {
    Json labels = {{"app", name}};
    Json d = {{"apiVersion", "apps/v1"},
              {"kind", "Deployment"},
              {"metadata", {{"name", name}}},
              {"spec", {{"replicas", replicas}, {"selector", {{"matchLabels", labels}}}, {"template", podTemplate(labels)}}}};
    if (!strategy.is_null()) d["spec"]["strategy"] = strategy;
    for (auto it = extraSpec.begin(); it != extraSpec.end(); ++it) d["spec"][it.key()] = it.value();
    auto r = api().create(res::kDeployments, "default", d);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r ? *r : Json();
  }
  static Json rolling(Json surge, Json unavailable) {
    return {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxSurge", surge}, {"maxUnavailable", unavailable}}}};
  }
  Result<Json> patch(const std::string& name, const Json& p) {
    return api().patch(res::kDeployments, "default", name, p, "application/strategic-merge-patch+json");
  }
  Result<Json> setImage(const std::string& name, const std::string& image) {
    return patch(name, {{"spec", {{"template", {{"spec", {{"containers", {{{"name", "app"}, {"image", image}}}}}}}}}}});
  }
  std::vector<Json> replicaSets(const std::string& app) {
    client::ListOptions o;
    o.labelSelector = "app=" + app;
    auto l = api().list(res::kReplicaSets, "default", o);
    std::vector<Json> out;
    if (l) {
      for (const auto& r : (*l)["items"]) out.push_back(r);
    }
    std::sort(out.begin(), out.end(), [](const Json& a, const Json& b) { return wl::revisionOf(a) < wl::revisionOf(b); });
    return out;
  }
  static std::string image(const Json& rs) { return rs["spec"]["template"]["spec"]["containers"][0]["image"]; }
  static std::string reason(const Json& d, const char* type) {
    const Json st = d.is_object() ? d.value("status", Json::object()) : Json::object();
    const Json* c = wl::condition(st, type);
    return c == nullptr ? "" : (*c)["reason"].get<std::string>();
  }
  // kubectl rollout status's notion of done.
  bool rolledOut(const std::string& name) {
    Json d = get(res::kDeployments, name);
    if (d.is_null() || d.value("status", Json::object()).value("observedGeneration", 0) < wl::generationOf(d)) {
      return false;
    }
    int want = wl::specReplicas(d);
    return status(d, "updatedReplicas") == want && status(d, "replicas") == want &&
           status(d, "availableReplicas") == want;
  }
};

// One ReplicaSet "<name>-<hash>", hash label on selector and template,
// revision 1 on both objects, replica annotations, Available/Progressing.
TEST_F(DeploymentTest, CreatesHashedReplicaSetWithRevision) {
  startNodes();
  Json d = create("web", 3);
  ASSERT_TRUE(eventually([&] { return rolledOut("web") && reason(get(res::kDeployments, "web"), "Progressing") == "NewReplicaSetAvailable"; }));
  auto rss = replicaSets("web");
  ASSERT_EQ(rss.size(), 1u);
  const Json& rs = rss[0];
  std::string hash = rs["metadata"]["labels"][wl::kPodTemplateHashLabel];
  EXPECT_EQ(client::nameOf(rs), "web-" + hash);
  EXPECT_EQ(rs["spec"]["selector"]["matchLabels"][wl::kPodTemplateHashLabel], hash);
  EXPECT_EQ(rs["spec"]["template"]["metadata"]["labels"][wl::kPodTemplateHashLabel], hash);
  EXPECT_EQ(wl::annotation(rs, wl::kRevisionAnnotation), "1");
  EXPECT_EQ(wl::annotation(rs, wl::kDesiredReplicasAnnotation), "3");
  EXPECT_EQ(wl::annotation(rs, wl::kMaxReplicasAnnotation), "4");
  EXPECT_TRUE(wl::controlledBy(rs, client::uidOf(d)));
  Json cur = get(res::kDeployments, "web");
  EXPECT_EQ(wl::annotation(cur, wl::kRevisionAnnotation), "1");
  EXPECT_EQ(reason(cur, "Available"), "MinimumReplicasAvailable");
  EXPECT_EQ(status(cur, "readyReplicas"), 3);
  EXPECT_EQ(status(cur, "unavailableReplicas"), 0);
}

// Changing the image rolls to a new ReplicaSet (revision 2, change-cause
// copied) without ever exceeding replicas + maxSurge ReplicaSet replicas or
// dropping below replicas - maxUnavailable available pods.
TEST_F(DeploymentTest, RollingUpdateStaysWithinSurgeAndUnavailable) {
  startNodes();
  create("web", 4, rolling(1, 0));
  ASSERT_TRUE(eventually([&] { return rolledOut("web"); }));
  nodes_->setReadyDelay(std::chrono::milliseconds(200));
  ASSERT_TRUE(patch("web", {{"metadata", {{"annotations", {{wl::kChangeCauseAnnotation, "image v2"}}}}}}).ok());
  ASSERT_TRUE(setImage("web", "sluice/echo:2").ok());
  int maxTotal = 0;
  int minAvailable = 4;
  ASSERT_TRUE(eventually([&] {
    auto rss = replicaSets("web");
    int total = 0;
    int available = 0;
    for (const auto& rs : rss) {
      total += wl::specReplicas(rs);
      available += status(rs, "availableReplicas");
    }
    maxTotal = std::max(maxTotal, total);
    minAvailable = std::min(minAvailable, available);
    return rolledOut("web") && rss.size() == 2 && wl::specReplicas(rss[0]) == 0;
  }, std::chrono::seconds(60)));
  EXPECT_LE(maxTotal, 5);
  EXPECT_GE(minAvailable, 4);
  auto rss = replicaSets("web");
  EXPECT_EQ(image(rss[1]), "sluice/echo:2");
  EXPECT_EQ(wl::annotation(rss[1], wl::kRevisionAnnotation), "2");
  EXPECT_EQ(wl::annotation(rss[1], wl::kChangeCauseAnnotation), "image v2");
  EXPECT_EQ(wl::annotation(get(res::kDeployments, "web"), wl::kRevisionAnnotation), "2");
  EXPECT_EQ(pods("app=web").size(), 4u);
}

// Scaling changes replicas, not the revision.
TEST_F(DeploymentTest, ScalingDoesNotCreateRevision) {
  startNodes();
  create("web", 2);
  ASSERT_TRUE(eventually([&] { return rolledOut("web"); }));
  ASSERT_TRUE(patch("web", {{"spec", {{"replicas", 5}}}}).ok());
  ASSERT_TRUE(eventually([&] { return rolledOut("web") && status(get(res::kDeployments, "web"), "replicas") == 5; }));
  auto rss = replicaSets("web");
  ASSERT_EQ(rss.size(), 1u);
  EXPECT_EQ(wl::annotation(rss[0], wl::kRevisionAnnotation), "1");
  EXPECT_EQ(wl::annotation(rss[0], wl::kDesiredReplicasAnnotation), "5");
}

// What `kubectl rollout undo --to-revision=1` sends: the old template back
// (JSON patch). The existing ReplicaSet is reused with the next revision.
TEST_F(DeploymentTest, RollbackReusesReplicaSet) {
  startNodes();
  create("web", 2);
  ASSERT_TRUE(eventually([&] { return rolledOut("web"); }));
  for (const char* img : {"sluice/echo:2", "sluice/echo:3"}) {
    ASSERT_TRUE(setImage("web", img).ok());
    ASSERT_TRUE(eventually([&] { return rolledOut("web") && replicaSets("web").back()["spec"]["template"]["spec"]["containers"][0]["image"] == img; }));
  }
  auto rss = replicaSets("web");
  ASSERT_EQ(rss.size(), 3u);
  Json tmpl = rss[0]["spec"]["template"];
  tmpl["metadata"]["labels"].erase(wl::kPodTemplateHashLabel);
  Json undo = Json::array({{{"op", "replace"}, {"path", "/spec/template"}, {"value", tmpl}}});
  ASSERT_TRUE(api().patch(res::kDeployments, "default", "web", undo, "application/json-patch+json").ok());
  ASSERT_TRUE(eventually([&] {
    auto now = replicaSets("web");
    return rolledOut("web") && now.size() == 3 && image(now.back()) == "sluice/echo:1" &&
           wl::specReplicas(now.back()) == 2;
  }));
  rss = replicaSets("web");
  EXPECT_EQ(client::nameOf(rss.back()), client::nameOf(replicaSets("web").back()));
  EXPECT_EQ(wl::annotation(rss.back(), wl::kRevisionAnnotation), "4");
  EXPECT_EQ(wl::annotation(rss.back(), wl::kRevisionHistoryAnnotation), "1");
  EXPECT_EQ(wl::annotation(get(res::kDeployments, "web"), wl::kRevisionAnnotation), "4");
}

// revisionHistoryLimit: old ReplicaSets at zero replicas beyond the limit go.
TEST_F(DeploymentTest, RevisionHistoryLimit) {
  startNodes();
  create("web", 1, Json(), {{"revisionHistoryLimit", 1}});
  ASSERT_TRUE(eventually([&] { return rolledOut("web"); }));
  for (const char* img : {"sluice/echo:2", "sluice/echo:3", "sluice/echo:4"}) {
    ASSERT_TRUE(setImage("web", img).ok());
    ASSERT_TRUE(eventually([&] { return rolledOut("web") && image(replicaSets("web").back()) == img; }));
  }
  ASSERT_TRUE(eventually([&] { return replicaSets("web").size() == 2; }));
  auto rss = replicaSets("web");
  EXPECT_EQ(wl::annotation(rss[0], wl::kRevisionAnnotation), "3");
  EXPECT_EQ(wl::annotation(rss[1], wl::kRevisionAnnotation), "4");
}

// Paused: an image change makes no new ReplicaSet; scaling a paused
// mid-rollout Deployment is proportional (10 → 15 with old 8 / new 5 gives
// 11 / 7, Kubernetes' documented example); resume finishes the rollout.
TEST_F(DeploymentTest, PausedScalesProportionallyAndResumes) {
  startNodes();
  create("web", 10, rolling(3, 2));
  ASSERT_TRUE(eventually([&] { return rolledOut("web"); }));
  nodes_->setReadyDelay(std::chrono::hours(1));  // new pods never become ready
  ASSERT_TRUE(setImage("web", "sluice/echo:2").ok());
  ASSERT_TRUE(eventually([&] {
    auto rss = replicaSets("web");
    return rss.size() == 2 && wl::specReplicas(rss[0]) == 8 && wl::specReplicas(rss[1]) == 5;
  }));
  ASSERT_TRUE(patch("web", {{"spec", {{"paused", true}}}}).ok());
  ASSERT_TRUE(eventually([&] { return reason(get(res::kDeployments, "web"), "Progressing") == "DeploymentPaused"; }));
  ASSERT_TRUE(patch("web", {{"spec", {{"replicas", 15}}}}).ok());
  ASSERT_TRUE(eventually([&] {
    auto rss = replicaSets("web");
    return rss.size() == 2 && wl::specReplicas(rss[0]) == 11 && wl::specReplicas(rss[1]) == 7;
  })) << replicaSets("web")[0].dump();
  ASSERT_TRUE(setImage("web", "sluice/echo:3").ok());
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(replicaSets("web").size(), 2u) << "a paused deployment makes no new ReplicaSet";
  nodes_->setReadyDelay(std::chrono::milliseconds(0));
  for (const auto& p : pods("app=web")) nodes_->setPodReady("default", client::nameOf(p), true);
  ASSERT_TRUE(patch("web", {{"spec", {{"paused", false}}}}).ok());
  ASSERT_TRUE(eventually([&] {
    auto rss = replicaSets("web");
    return rolledOut("web") && rss.size() == 3 && image(rss.back()) == "sluice/echo:3";
  }, std::chrono::seconds(60)));
}

// Recreate: all old pods are gone before any new one exists.
TEST_F(DeploymentTest, RecreateStopsOldPodsFirst) {
  startNodes();
  create("web", 3, Json{{"type", "Recreate"}});
  ASSERT_TRUE(eventually([&] { return rolledOut("web"); }));
  ASSERT_TRUE(setImage("web", "sluice/echo:2").ok());
  bool overlap = false;
  ASSERT_TRUE(eventually([&] {
    bool oldPods = false;
    bool newPods = false;
    for (const auto& p : pods("app=web")) {
      (p["spec"]["containers"][0]["image"] == "sluice/echo:2" ? newPods : oldPods) = true;
    }
    if (oldPods && newPods) overlap = true;
    return rolledOut("web") && image(replicaSets("web").back()) == "sluice/echo:2";
  }));
  EXPECT_FALSE(overlap);
}

// A rollout that makes no progress for progressDeadlineSeconds (injected
// clock) is reported ProgressDeadlineExceeded; minReadySeconds gates
// availability on the same clock.
TEST_F(DeploymentTest, ProgressDeadlineAndMinReadySeconds) {
  startNodes();
  create("web", 2, rolling(1, 0), {{"progressDeadlineSeconds", 30}, {"minReadySeconds", 5}});
  ASSERT_TRUE(eventually([&] { return status(get(res::kDeployments, "web"), "readyReplicas") == 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(status(get(res::kDeployments, "web"), "availableReplicas"), 0);
  cp_->clock().advance(std::chrono::seconds(6));
  ASSERT_TRUE(eventually([&] { return rolledOut("web"); }));
  nodes_->setReadyDelay(std::chrono::hours(1));
  ASSERT_TRUE(setImage("web", "sluice/echo:2").ok());
  ASSERT_TRUE(eventually([&] { return reason(get(res::kDeployments, "web"), "Progressing") == "NewReplicaSetCreated" ||
                                      reason(get(res::kDeployments, "web"), "Progressing") == "ReplicaSetUpdated"; }));
  // The controller may still record progress (the surge pod, the new
  // ReplicaSet's status) after the image change, which restarts the
  // deadline; so keep moving the clock past it until the pods have settled
  // and the deadline is reported. No real progress is possible: the new pod
  // never becomes ready.
  ASSERT_TRUE(eventually([&] {
    cp_->clock().advance(std::chrono::seconds(31));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return reason(get(res::kDeployments, "web"), "Progressing") == "ProgressDeadlineExceeded";
  }));
  EXPECT_EQ(reason(get(res::kDeployments, "web"), "Available"), "MinimumReplicasAvailable");
}

// A server and controller restart in the middle of a rolling update ends in
// the same state as the same rollout left alone.
TEST_F(DeploymentTest, RestartMidRolloutConvergesToSameEndState) {
  startNodes(3);
  nodes_->setReadyDelay(std::chrono::milliseconds(300));
  auto endState = [&](const std::string& app) {
    Json out = Json::array();
    for (const auto& rs : replicaSets(app)) {
      out.push_back({{"hash", rs["metadata"]["labels"][wl::kPodTemplateHashLabel]},
                     {"revision", wl::annotation(rs, wl::kRevisionAnnotation)},
                     {"replicas", wl::specReplicas(rs)},
                     {"available", status(rs, "availableReplicas")}});
    }
    Json d = get(res::kDeployments, app);
    out.push_back({{"revision", wl::annotation(d, wl::kRevisionAnnotation)},
                   {"updated", status(d, "updatedReplicas")},
                   {"available", status(d, "availableReplicas")},
                   {"progressing", reason(d, "Progressing")},
                   {"pods", pods("app=" + app).size()}});
    return out;
  };
  auto rollout = [&](const std::string& app, bool restartMidway) {
    create(app, 6, rolling(1, 0));
    ASSERT_TRUE(eventually([&] { return rolledOut(app); }, std::chrono::seconds(60)));
    // Same template for both apps but the label: patch only the image.
    ASSERT_TRUE(setImage(app, "sluice/echo:2").ok());
    if (restartMidway) {
      ASSERT_TRUE(eventually([&] {
        auto rss = replicaSets(app);
        return rss.size() == 2 && wl::specReplicas(rss[1]) >= 2 && wl::specReplicas(rss[1]) < 6;
      }));
      cp_->restart();
    }
    ASSERT_TRUE(eventually([&] {
      auto rss = replicaSets(app);
      return rolledOut(app) && rss.size() == 2 && wl::specReplicas(rss[0]) == 0 &&
             reason(get(res::kDeployments, app), "Progressing") == "NewReplicaSetAvailable";
    }, std::chrono::seconds(90)));
  };
  rollout("plain", false);
  rollout("restarted", true);
  Json a = endState("plain");
  Json b = endState("restarted");
  // Hashes differ (the templates' labels do); everything else must match.
  for (size_t i = 0; i + 1 < a.size(); ++i) {
    a[i].erase("hash");
    b[i].erase("hash");
  }
  EXPECT_EQ(a, b);
  EXPECT_EQ(b.back()["pods"], 6);
}

}  // namespace
}  // namespace sluice::testing
