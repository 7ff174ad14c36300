// The HorizontalPodAutoscaler controller (autoscaling/v2 subset), as
// kube-controller-manager's: every sync period of the injected clock it
// reads the scale target's Scale subresource (Deployment, ReplicaSet),
// lists the pods its selector picks, and for each cpu Resource metric with
// a Utilization target computes usage from their PodMetrics
// (metrics.k8s.io/v1beta1, written by the node agents) against their cpu
// requests: desired = ceil(ready pods * utilization / target), unchanged
// within the 10 % tolerance, with Kubernetes' treatment of pods without
// metrics and not-ready pods. The recommendation is stabilised (scale-down:
// the highest recommendation within behavior.scaleDown.stabilizationWindow,
// default 300 s; scale-up: the lowest within scaleUp's, default 0), limited
// to max(2x, +4) per scale-up, clamped to [minReplicas, maxReplicas] and
// written to the Scale subresource. Status carries currentReplicas,
// desiredReplicas, currentMetrics, lastScaleTime and the AbleToScale,
// ScalingActive and ScalingLimited conditions.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "control/controllers/cluster/cluster_util.h"
#include "control/controllers/controller.h"

namespace sluice::controllers {

struct HpaOptions {
  // --horizontal-pod-autoscaler-sync-period, in the injected clock's time.
  std::chrono::seconds syncPeriod{15};
  // --horizontal-pod-autoscaler-tolerance.
  double tolerance = 0.1;
  // --horizontal-pod-autoscaler-downscale-stabilization.
  std::chrono::seconds downscaleStabilization{300};
  // How often (real time) the controller looks for HPAs due a sync.
  std::chrono::milliseconds tick{250};
};

class HpaController final : public QueueController {
 public:
  static const client::Resource kPodMetrics;

  HpaController(const ControllerContext& ctx, HpaOptions options = {});
  ~HpaController() override;
  void start() override;
  void stop() override;

 protected:
  Result<void> reconcile(const std::string& key) override;

 private:
  struct Recommendation {
    TimePoint at;
    int32_t replicas;
  };
  struct MetricResult {
    int32_t replicas = 0;
    int32_t utilization = 0;
    int64_t averageMilli = 0;
  };
  Result<MetricResult> cpuReplicas(const Json& hpa, const std::vector<client::ObjectPtr>& pods, int32_t current,
                                   int32_t target);
  int32_t stabilize(const std::string& key, const Json& hpa, int32_t current, int32_t desired, TimePoint now,
                    std::string& reason);
  void syncLoop();

  HpaOptions options_;
  client::Informer& hpas_;
  client::Informer& metrics_;
  std::mutex mu_;
  std::map<std::string, TimePoint> lastSync_;
  std::map<std::string, std::vector<Recommendation>> recommendations_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread ticker_;
};

}  // namespace sluice::controllers
