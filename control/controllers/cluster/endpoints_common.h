// What the Endpoints and EndpointSlice controllers share, as in
// kube-controller-manager: informer handlers that map a pod change to the
// Services selecting the pod (through label indexes, so one pod change costs
// O(labels), not O(services)), per-pod port resolution, and the tracker of
// `endpoints.kubernetes.io/last-change-trigger-time`.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "control/controllers/cluster/cluster_util.h"
#include "control/controllers/controller.h"

namespace sluice::controllers {

inline constexpr const char* kTriggerTimeAnnotation = "endpoints.kubernetes.io/last-change-trigger-time";

// Keys ("ns/name") indexed by the label pairs ("k=v") they carry or select,
// per namespace. Not thread-safe; the owner locks.
class LabelIndex {
 public:
  void set(const std::string& key, const std::string& ns, const Json& pairs);
  void erase(const std::string& key);
  // Keys under ns|k=v, or nullptr.
  const std::set<std::string>* find(const std::string& ns, const std::string& k, const std::string& v) const;

 private:
  std::unordered_map<std::string, std::set<std::string>> byPair_;
  std::unordered_map<std::string, std::vector<std::string>> pairsOf_;
};

// EndpointsLastChangeTriggerTime, as Kubernetes' TriggerTimeTracker: a pod's
// trigger time is its Ready condition's lastTransitionTime, the Service's
// its creationTimestamp; a sync stamps the earliest trigger time that
// changed since the last *published* sync of that Service (the start of the
// oldest change not yet published), the creation time on a Service's first
// sync, and nothing when no tracked time changed (a pod deletion, say).
//
// Two phases, so a failed write publishes nothing: compute() only reads the
// tracker, and the caller hands the result to publish() once its writes
// succeeded (or nothing had to be written). Kubernetes records the state in
// compute itself, so a write that loses a conflict and is retried drops the
// annotation from the object it finally writes; a client then sees a change
// with no trigger time.
class TriggerTimeTracker {
 public:
  struct State {
    std::map<std::string, TimePoint> pods;
    std::optional<TimePoint> service;
  };
  struct Change {
    std::string serviceKey;
    std::optional<TimePoint> trigger;  // what to stamp; nullopt: clear it
    State next;                        // the tracker's state once published
  };
  Change compute(const std::string& serviceKey, const Json& service,
                 const std::vector<client::ObjectPtr>& pods) const;
  void publish(Change change);
  void forget(const std::string& serviceKey);

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, State> states_;
};

// A ServicePort's port for one pod: targetPort as a number, or a named
// targetPort looked up in the pod's container ports with the same protocol.
std::optional<int> resolveTargetPort(const Json& servicePort, const Json& pod);

// "IPv4" or "IPv6" for each family the Service serves (spec.ipFamilies, or
// from its cluster IP), primary first.
std::vector<std::string> serviceFamilies(const Json& service);

// True when the Service's endpoints are the controllers' to manage: it has
// a non-empty selector and is not ExternalName.
bool managesEndpoints(const Json& service);

// The base of both controllers: keys are Services ("ns/name").
class ServiceEndpointsController : public QueueController {
 public:
  ServiceEndpointsController(const ControllerContext& ctx, const char* name);

 protected:
  // Pods the Service selects, from the pod cache.
  std::vector<client::ObjectPtr> selectedPods(const Json& service) const;

  client::Informer& services_;
  client::Informer& pods_;
  TriggerTimeTracker triggers_;

 private:
  void onPod(const client::ObjectPtr& old, const client::ObjectPtr& cur);
  void onService(const client::ObjectPtr& svc, bool deleted);

  mutable std::mutex mu_;
  LabelIndex podsByLabel_;
  LabelIndex servicesBySelector_;
};

}  // namespace sluice::controllers
