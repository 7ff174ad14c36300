// The scheduler: binds pending pods (no spec.nodeName, not terminating,
// schedulerName default-scheduler) to nodes through pods/binding, as
// kube-scheduler's default profile does for the plugins that matter here:
// NodeUnschedulable, TaintToleration (NoSchedule/NoExecute; NotReady nodes
// count as tainted not-ready/unreachable), NodeAffinity (nodeSelector),
// NodeResourcesFit (cpu, memory, pod count against allocatable minus the
// requests of the pods already there) and spreading: among the nodes that
// fit, the one with the fewest pods of the same controller owner, then the
// fewest pods, then by name. A pod that fits nowhere stays Pending with
// PodScheduled=False, reason Unschedulable and kube-scheduler's message
// ("0/3 nodes are available: 3 Insufficient cpu."), and is retried when a
// node or an assigned pod changes.
//
// One worker: placements are decided one at a time against an accounting
// that includes the pods this scheduler bound but the informer has not
// shown yet (kube-scheduler's "assumed" pods).
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>

#include "control/controllers/cluster/cluster_util.h"
#include "control/controllers/controller.h"

namespace sluice::controllers {

// A pod's effective requests: max(sum of containers, largest init
// container), in milli-units, as the scheduler counts them.
struct PodRequests {
  int64_t cpuMilli = 0;
  int64_t memoryMilli = 0;
};
PodRequests podRequests(const Json& pod);

class Scheduler final : public QueueController {
 public:
  static constexpr const char* kSchedulerName = "default-scheduler";

  explicit Scheduler(const ControllerContext& ctx);

 protected:
  Result<void> reconcile(const std::string& key) override;

 private:
  struct Placed {
    PodRequests requests;
    std::string owner;  // controller ownerReference uid
  };
  void onPod(const client::ObjectPtr& old, const client::ObjectPtr& cur);
  void onNode(const client::ObjectPtr& old, const client::ObjectPtr& cur);
  void retryUnschedulable();
  void place(const std::string& podKey, const std::string& node, const Json& pod);
  void unplace(const std::string& podKey);
  Result<void> markUnschedulable(const Json& pod, const std::string& message);

  client::Informer& pods_;
  client::Informer& nodes_;
  std::mutex mu_;
  std::map<std::string, std::map<std::string, Placed>> byNode_;  // node -> pod key -> placement
  std::map<std::string, std::string> nodeOf_;                    // pod key -> node
  std::set<std::string> unschedulable_;
};

}  // namespace sluice::controllers
