// The Deployment controller (kube-controller-manager's deployment): owns
// ReplicaSets named "<deployment>-<pod-template-hash>" (the hash label on
// their selector and template), rolls from old to new with RollingUpdate
// (maxSurge/maxUnavailable) or Recreate, scales proportionally while a
// rollout is in flight or paused, numbers revisions
// (deployment.kubernetes.io/revision, reused ReplicaSets on rollback), keeps
// revisionHistoryLimit old ReplicaSets, and reports Progressing/Available
// conditions with progressDeadlineSeconds on the injected clock. kubectl's
// rollout status/history/undo/pause/resume work client-side against this.
//
// Each reconcile starts from the informers' state (re-read after its own
// writes), so a restart mid-rollout continues to the same end state.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "control/controllers/controller.h"

namespace sluice::controllers::workloads {

class DeploymentController final : public QueueController {
 public:
  explicit DeploymentController(const ControllerContext& ctx);

 protected:
  Result<void> reconcile(const std::string& key) override;

 private:
  // One reconcile's view: the deployment and its ReplicaSets as last
  // written or read.
  struct State {
    client::Json d;
    std::vector<client::Json> rss;
    std::optional<size_t> newRS;
    std::vector<const client::Json*> all() const;
    std::vector<const client::Json*> olds() const;
    std::vector<size_t> oldIndexes() const;
    const client::Json* newPtr() const { return newRS ? &rss[*newRS] : nullptr; }
  };

  void enqueueOwner(const client::Json& rs);
  void enqueueMatching(const client::Json& rs);

  Result<std::vector<client::Json>> claimReplicaSets(const client::Json& d);
  Result<void> syncRevision(State& s, bool createIfMissing);
  Result<void> createNewReplicaSet(State& s, int64_t newRevision);
  Result<bool> scaleReplicaSet(State& s, size_t idx, int32_t replicas);
  Result<void> scale(State& s);
  Result<void> cleanup(State& s);
  Result<bool> isScalingEvent(State& s);
  Result<void> sync(State& s);
  Result<void> rolloutRolling(State& s);
  Result<void> rolloutRecreate(State& s);
  Result<bool> reconcileOldReplicaSets(State& s);
  Result<void> checkPausedConditions(State& s);
  Result<void> syncRolloutStatus(State& s);
  Result<void> syncStatusOnly(State& s);
  Result<void> writeStatus(State& s, const client::Json& status);
  Result<void> setDeploymentRevision(State& s, const std::string& revision);
  bool oldPodsRunning(const State& s);

  client::Informer& deployments_;
  client::Informer& replicaSets_;
  client::Informer& pods_;
};

}  // namespace sluice::controllers::workloads
