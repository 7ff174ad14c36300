// The HorizontalPodAutoscaler controller and the metrics.k8s.io kinds
// against a real server, with the injected clock driving sync periods and
// the scale-down stabilisation window; and real kubectl (1.27, 1.33)
// creating an HPA with `kubectl autoscale`, listing it, and `kubectl top`.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "control/controllers/cluster/hpa_controller.h"
#include "tests/control/controllers/cluster/cluster_fixture.h"

namespace sluice::testing {
namespace {

const client::Resource& kPodMetrics = controllers::HpaController::kPodMetrics;

class HpaTest : public ClusterTest {
 protected:
  ControlPlane::Options options() override {
    ControlPlane::Options o;
    o.manager.only = {"horizontalpodautoscaling", "replicaset"};
    return o;
  }

  Json replicaSet(const std::string& name, int replicas) {
    return {{"apiVersion", "apps/v1"},
            {"kind", "ReplicaSet"},
            {"metadata", {{"name", name}}},
            {"spec",
             {{"replicas", replicas},
              {"selector", {{"matchLabels", {{"app", name}}}}},
              {"template",
               {{"metadata", {{"labels", {{"app", name}}}}},
                {"spec",
                 {{"containers",
                   {{{"name", "c"}, {"image", "sluice/echo"}, {"resources", {{"requests", {{"cpu", "100m"}}}}}}}}}}}}}}};
  }

  std::vector<std::string> podsOf(const std::string& app) {
    client::ListOptions o;
    o.labelSelector = "app=" + app;
    std::vector<std::string> out;
    auto l = api().list(res::kPods, "default", o);
    if (!l.ok()) return out;
    for (const auto& p : (*l)["items"]) out.push_back(p["metadata"]["name"]);
    return out;
  }

  // Every pod of `app` Running/Ready, each reporting `cpu` usage.
  void report(const std::string& app, const std::string& cpu) {
    for (const auto& name : podsOf(app)) {
      Json p = get(res::kPods, "default", name);
      if (p.value("/status/podIP"_json_pointer, std::string()).empty()) setStatus("default", name, "10.3.0." + std::to_string(++ip_), true);
      writeMetrics(name, cpu);
    }
  }

  void writeMetrics(const std::string& pod, const std::string& cpu) {
    Json m = {{"apiVersion", "metrics.k8s.io/v1beta1"},
              {"kind", "PodMetrics"},
              {"metadata", {{"name", pod}, {"namespace", "default"}}},
              {"timestamp", controllers::formatRfc3339(cp_->clock().now())},
              {"window", "10s"},
              {"containers", {{{"name", "c"}, {"usage", {{"cpu", cpu}, {"memory", "20Mi"}}}}}}};
    auto cur = api().get(kPodMetrics, "default", pod);
    if (cur.ok()) {
      m["metadata"]["resourceVersion"] = (*cur)["metadata"]["resourceVersion"];
      auto r = api().update(kPodMetrics, "default", m);
      ASSERT_TRUE(r.ok()) << r.error().message;
    } else {
      auto r = api().create(kPodMetrics, "default", m);
      ASSERT_TRUE(r.ok()) << r.error().message;
    }
  }

  int replicas(const std::string& rs) { return get(res::kReplicaSets, "default", rs).value("/spec/replicas"_json_pointer, -1); }
  Json hpaStatus(const std::string& name) { return get(res::kHorizontalPodAutoscalers, "default", name).value("status", Json::object()); }
  int utilization(const std::string& name) {
    return hpaStatus(name).value("/currentMetrics/0/resource/current/averageUtilization"_json_pointer, -1);
  }
  std::string conditionReason(const std::string& name, const std::string& type) {
    for (const auto& c : hpaStatus(name).value("conditions", Json::array())) {
      if (c["type"] == type) return c.value("reason", "");
    }
    return "";
  }

  int ip_ = 0;
};

// Scale up to ceil(pods * utilization / target); no change within the
// tolerance; a scale-down waits out the stabilisation window.
TEST_F(HpaTest, ScalesOnCpuUtilizationWithScaleDownStabilization) {
  ASSERT_TRUE(api().create(res::kReplicaSets, "default", replicaSet("web", 2)).ok());
  ASSERT_TRUE(eventually([&] { return podsOf("web").size() == 2; }));
  report("web", "90m");  // 90 % of the 100m request
  Json hpa = {{"apiVersion", "autoscaling/v2"},
              {"kind", "HorizontalPodAutoscaler"},
              {"metadata", {{"name", "web"}}},
              {"spec",
               {{"scaleTargetRef", {{"apiVersion", "apps/v1"}, {"kind", "ReplicaSet"}, {"name", "web"}}},
                {"minReplicas", 1},
                {"maxReplicas", 10},
                {"metrics",
                 {{{"type", "Resource"},
                   {"resource", {{"name", "cpu"}, {"target", {{"type", "Utilization"}, {"averageUtilization", 50}}}}}}}},
                {"behavior", {{"scaleDown", {{"stabilizationWindowSeconds", 60}}}}}}}};
  auto created = api().create(res::kHorizontalPodAutoscalers, "default", hpa);
  ASSERT_TRUE(created.ok()) << created.error().message;
  // 2 pods at 90 % against 50 %: ceil(2 * 1.8) = 4.
  ASSERT_TRUE(eventually([&] { return replicas("web") == 4; }));
  ASSERT_TRUE(eventually([&] { return hpaStatus("web").value("desiredReplicas", 0) == 4 && utilization("web") == 90; }));
  EXPECT_FALSE(hpaStatus("web").value("lastScaleTime", "").empty());
  EXPECT_EQ(conditionReason("web", "ScalingActive"), "ValidMetricFound");

  // 4 pods at 53 %: within 10 % of the target, no change.
  ASSERT_TRUE(eventually([&] { return podsOf("web").size() == 4; }));
  report("web", "53m");
  cp_->clock().advance(std::chrono::seconds(15));
  ASSERT_TRUE(eventually([&] { return utilization("web") == 53; }));
  EXPECT_EQ(replicas("web"), 4);
  EXPECT_EQ(hpaStatus("web")["desiredReplicas"], 4);

  // Load drops to 10 %: the recommendation is 1, but for 60 s the highest
  // recent recommendation (4) holds.
  report("web", "10m");
  cp_->clock().advance(std::chrono::seconds(15));
  ASSERT_TRUE(eventually([&] { return utilization("web") == 10; }));
  EXPECT_EQ(conditionReason("web", "AbleToScale"), "ScaleDownStabilized");
  for (int i = 0; i < 2; ++i) {
    cp_->clock().advance(std::chrono::seconds(15));
    std::this_thread::sleep_for(std::chrono::seconds(1));
    EXPECT_EQ(replicas("web"), 4) << "scaled down inside the stabilization window";
  }
  for (int i = 0; i < 4 && replicas("web") != 1; ++i) {
    cp_->clock().advance(std::chrono::seconds(15));
    ControlPlane::eventually([&] { return replicas("web") == 1; }, std::chrono::seconds(3));
  }
  EXPECT_EQ(replicas("web"), 1);
  EXPECT_TRUE(eventually([&] { return hpaStatus("web").value("desiredReplicas", 0) == 1; }));
}

// maxReplicas caps the recommendation (ScalingLimited TooManyReplicas);
// missing cpu requests are reported instead of guessed.
TEST_F(HpaTest, ClampsToMaxAndReportsMissingRequests) {
  ASSERT_TRUE(api().create(res::kReplicaSets, "default", replicaSet("web", 2)).ok());
  ASSERT_TRUE(eventually([&] { return podsOf("web").size() == 2; }));
  report("web", "100m");
  Json hpa = {{"apiVersion", "autoscaling/v2"},
              {"kind", "HorizontalPodAutoscaler"},
              {"metadata", {{"name", "web"}}},
              {"spec",
               {{"scaleTargetRef", {{"apiVersion", "apps/v1"}, {"kind", "ReplicaSet"}, {"name", "web"}}},
                {"maxReplicas", 3},
                {"metrics",
                 {{{"type", "Resource"},
                   {"resource", {{"name", "cpu"}, {"target", {{"type", "Utilization"}, {"averageUtilization", 20}}}}}}}}}}};
  ASSERT_TRUE(api().create(res::kHorizontalPodAutoscalers, "default", hpa).ok());
  ASSERT_TRUE(eventually([&] { return replicas("web") == 3; }));
  ASSERT_TRUE(eventually([&] { return conditionReason("web", "ScalingLimited") == "TooManyReplicas"; }));
  EXPECT_EQ(get(res::kHorizontalPodAutoscalers, "default", "web")["spec"]["minReplicas"], 1) << "defaulted";

  Json bare = replicaSet("nreq", 1);
  bare["spec"]["template"]["spec"]["containers"][0].erase("resources");
  ASSERT_TRUE(api().create(res::kReplicaSets, "default", bare).ok());
  ASSERT_TRUE(eventually([&] { return podsOf("nreq").size() == 1; }));
  report("nreq", "50m");
  hpa["metadata"]["name"] = "nreq";
  hpa["spec"]["scaleTargetRef"]["name"] = "nreq";
  ASSERT_TRUE(api().create(res::kHorizontalPodAutoscalers, "default", hpa).ok());
  ASSERT_TRUE(eventually([&] { return conditionReason("nreq", "ScalingActive") == "FailedGetResourceMetric"; }));
  EXPECT_EQ(replicas("nreq"), 1);
}

// ---------------------------------------------------------------- kubectl

std::string run(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (f == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  int rc = ::pclose(f);
  if (status != nullptr) *status = rc;
  return out;
}

class HpaKubectlTest : public HpaTest, public ::testing::WithParamInterface<std::string> {};

// `kubectl autoscale` (autoscaling/v1 on the wire up to 1.33), `kubectl get
// hpa` (the v2 object, converted), and `kubectl top pods|nodes` reading
// metrics.k8s.io.
TEST_P(HpaKubectlTest, AutoscaleGetHpaAndTop) {
  std::string kubectl = "/usr/lib/google-cloud-sdk/bin/kubectl." + GetParam();
  if (!std::filesystem::exists(kubectl)) GTEST_SKIP() << kubectl << " is not installed";
  std::string k = "KUBECONFIG=" + cp_->server().kubeconfigPath() + " " + kubectl + " ";
  Json deploy = {{"apiVersion", "apps/v1"},
                 {"kind", "Deployment"},
                 {"metadata", {{"name", "web"}}},
                 {"spec",
                  {{"replicas", 2},
                   {"selector", {{"matchLabels", {{"app", "web"}}}}},
                   {"template", replicaSet("web", 2)["spec"]["template"]}}}};
  ASSERT_TRUE(api().create(res::kDeployments, "default", deploy).ok());
  for (const char* name : {"web-a", "web-b"}) {
    Json p = pod(name, {{"app", "web"}});
    p["spec"]["containers"][0]["resources"] = {{"requests", {{"cpu", "100m"}}}};
    runPod("default", p, std::string("10.4.0.") + (name[4] == 'a' ? "1" : "2"), true);
    writeMetrics(name, "40m");
  }
  int rc = 0;
  std::string out = run(k + "autoscale deployment web --min=1 --max=5 --cpu-percent=50", &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("horizontalpodautoscaler.autoscaling/web autoscaled"), std::string::npos) << out;
  Json hpa = get(res::kHorizontalPodAutoscalers, "default", "web");
  EXPECT_EQ(hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 50);
  EXPECT_EQ(hpa["spec"]["maxReplicas"], 5);
  EXPECT_EQ(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");

  // 80 % utilisation measured by the controller shows in `get hpa`.
  ASSERT_TRUE(eventually([&] { return utilization("web") == 40; }));
  out = run(k + "get hpa web", &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("REFERENCE"), std::string::npos) << out;
  EXPECT_NE(out.find("Deployment/web"), std::string::npos) << out;
  EXPECT_NE(out.find("40%/50%"), std::string::npos) << out;
  // Read back as autoscaling/v1: the cpu metric is targetCPUUtilizationPercentage.
  auto v1 = api().get(client::Resource{"autoscaling", "v1", "horizontalpodautoscalers", true}, "default", "web");
  ASSERT_TRUE(v1.ok()) << v1.error().message;
  EXPECT_EQ((*v1)["apiVersion"], "autoscaling/v1");
  EXPECT_EQ((*v1)["spec"]["targetCPUUtilizationPercentage"], 50);
  EXPECT_EQ((*v1)["status"]["currentCPUUtilizationPercentage"], 40);
  EXPECT_FALSE((*v1)["spec"].contains("metrics"));

  out = run(k + "top pods", &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("web-a"), std::string::npos) << out;
  EXPECT_NE(out.find("40m"), std::string::npos) << out;
  EXPECT_NE(out.find("20Mi"), std::string::npos) << out;
}

INSTANTIATE_TEST_SUITE_P(Kubectl, HpaKubectlTest, ::testing::Values("1.27", "1.33"),
                         [](const auto& info) { return "v" + std::string(info.param == "1.27" ? "127" : "133"); });

}  // namespace
}  // namespace sluice::testing
