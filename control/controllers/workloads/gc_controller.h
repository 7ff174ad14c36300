// The garbage collector (kube-controller-manager's garbagecollector) over
// the namespaced kinds the server serves: pods, replicasets, deployments,
// services, endpointslices.
//
// - A dependent all of whose owners are gone (by uid, confirmed with a live
//   GET, never from a possibly lagging cache alone) is deleted in the
//   background; dangling references next to a live owner are removed.
// - An owner being deleted in the foreground (deletionTimestamp and the
//   "foregroundDeletion" finalizer) has its dependents deleted — themselves in
//   the foreground when they have dependents, so Deployment → ReplicaSet →
//   pods unwinds bottom-up — and loses the finalizer once no dependent with
//   blockOwnerDeletion remains, so the server removes it.
// - Orphan propagation is done by the server inline, the owner carrying the
//   "orphan" finalizer until every dependent has lost its reference; an
//   owner deleting with that finalizer is the server's, not collected here.
//
// The owner → dependents index is rebuilt from the informers on start, and
// every object is checked once then, so a restart converges from the store.
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "control/controllers/controller.h"

namespace sluice::controllers::workloads {

class GarbageCollector final : public QueueController {
 public:
  explicit GarbageCollector(const ControllerContext& ctx);

 protected:
  // Keys are "<kind index>|ns/name".
  Result<void> reconcile(const std::string& key) override;

 private:
  struct Kind {
    const client::Resource* resource;
    std::string apiVersion;
    std::string kind;
    client::Informer* informer;
  };
  struct OwnerState {
    // kWaiting: the owner is being deleted in the foreground.
    enum class State { kSolid, kDangling, kWaiting };
  };

  void index(size_t kind, const client::ObjectPtr& old, const client::ObjectPtr& cur);
  std::string keyFor(size_t kind, const client::Json& obj) const;
  const Kind* kindOf(const std::string& apiVersion, const std::string& kind) const;
  std::vector<std::pair<size_t, client::ObjectPtr>> dependentsOf(const std::string& uid);

  Result<OwnerState::State> ownerState(const std::string& ns, const client::Json& ref);
  Result<void> processDeletingDependents(size_t kind, const client::Json& obj);
  Result<void> attemptToDelete(size_t kind, const client::Json& obj);
  Result<void> removeFinalizer(size_t kind, const client::Json& obj);
  Result<void> deleteObject(size_t kind, const client::Json& obj, const std::string& policy);

  std::vector<Kind> kinds_;
  std::mutex mu_;
  // owner uid -> dependents' keys
  std::unordered_map<std::string, std::set<std::string>> dependents_;
  // Owner uids confirmed absent with a live GET (uids are never reused).
  std::set<std::string> absent_;
};

}  // namespace sluice::controllers::workloads
