// The ReplicaSet controller (kube-controller-manager's replicaset): keeps
// spec.replicas active pods matching a ReplicaSet's selector, created from its
// template with a controller ownerReference. It adopts orphans that match,
// releases owned pods that stopped matching, scales down the least valuable
// pods first (unscheduled < pending < not ready < ready, then by colocation,
// readiness age, restarts, newer first), and writes status (replicas,
// fullyLabeledReplicas, readyReplicas, availableReplicas with minReadySeconds
// on the injected clock, observedGeneration).
//
// Creates and deletes are remembered until the pod informer has seen them
// (client-go's "expectations"), so a lagging cache never causes duplicates;
// after a restart the controller starts from the stored state alone.
#pragma once

#include <map>
#include <set>
#include <string>

#include "control/controllers/controller.h"

namespace sluice::controllers::workloads {

class ReplicaSetController final : public QueueController {
 public:
  explicit ReplicaSetController(const ControllerContext& ctx);

  // Most pods created or deleted in one reconcile (client-go's burstReplicas).
  static constexpr int kBurstReplicas = 500;

 protected:
  Result<void> reconcile(const std::string& key) override;

 private:
  struct Pending {
    std::set<std::string> creates;  // pod names created, not yet in the cache
    std::set<std::string> deletes;  // pod keys deleted, still active in the cache
    std::chrono::steady_clock::time_point since;
  };

  void onPod(const client::ObjectPtr& pod);
  void enqueueMatching(const client::Json& pod);
  bool expectationsMet(const std::string& key);
  void expectCreates(const std::string& key, const std::set<std::string>& names);
  void expectDeletes(const std::string& key, const std::set<std::string>& podKeys);
  void forgetExpectations(const std::string& key);

  Result<std::vector<client::ObjectPtr>> claimPods(const client::Json& rs);
  Result<void> manageReplicas(const std::string& key, const client::Json& rs,
                              const std::vector<client::ObjectPtr>& pods);
  Result<void> updateStatus(const std::string& key, const client::Json& rs,
                            const std::vector<client::ObjectPtr>& pods);

  client::Informer& replicaSets_;
  client::Informer& pods_;
  std::mutex mu_;
  std::map<std::string, Pending> pending_;
};

}  // namespace sluice::controllers::workloads
