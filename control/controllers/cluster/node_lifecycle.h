// The node lifecycle controller, as kube-controller-manager's: a node's
// last heartbeat is the later of its Lease's renewTime (kube-node-lease)
// and its Ready condition's lastHeartbeatTime. When that is older than the
// grace period the node's conditions become Unknown ("Kubelet stopped
// posting node status.") and its pods are marked not Ready (so Endpoints
// drop them); once the node has not been Ready for the eviction timeout its
// pods are deleted, and their controllers recreate them elsewhere.
//
// Times come from the injected Clock; the check runs every monitorPeriod of
// real time (cheap: it reads the informers' caches).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "control/controllers/cluster/cluster_util.h"
#include "control/controllers/controller.h"

namespace sluice::controllers {

struct NodeLifecycleOptions {
  // --node-monitor-grace-period.
  std::chrono::seconds gracePeriod{40};
  // How long pods stay on a node that is not Ready (the default
  // not-ready/unreachable toleration, formerly --pod-eviction-timeout).
  std::chrono::seconds evictionTimeout{300};
  // --node-monitor-period is 5 s; checks here only read caches.
  std::chrono::milliseconds monitorPeriod{500};
};

class NodeLifecycleController final : public Controller {
 public:
  NodeLifecycleController(const ControllerContext& ctx, NodeLifecycleOptions options = {});
  ~NodeLifecycleController() override { stop(); }
  const char* name() const override { return "nodelifecycle"; }
  void start() override;
  void stop() override;

  // One pass over every node (what the monitor thread runs).
  void monitorOnce();

 private:
  Result<void> monitor(const Json& node);
  Result<void> markUnknown(const Json& node, TimePoint now);
  Result<void> markPodsNotReady(const std::string& node, TimePoint now);
  Result<void> evictPods(const std::string& node);

  ControllerContext ctx_;
  NodeLifecycleOptions options_;
  client::Informer& nodes_;
  client::Informer& leases_;
  client::Informer& pods_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sluice::controllers
