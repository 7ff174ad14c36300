// ServiceDiff: what changed between two ServiceTables, per service. A changed
// endpoint of one service yields a diff of exactly that one service, which is
// what lets every ProxyMode apply changes incrementally.
#pragma once

#include <map>
#include <optional>
#include <vector>

#include "dataplane/service.h"

namespace sluice {

struct ServiceChange {
  // Added: before empty. Removed: after empty. Updated: both set and different.
  std::optional<Service> before;
  std::optional<Service> after;

  bool added() const { return !before && after; }
  bool removed() const { return before && !after; }
  bool updated() const { return before && after; }
  const ServiceKey& key() const { return after ? after->key : before->key; }
};

struct ServiceDiff {
  // Ordered by key; removals and additions may be applied in this order
  // because a frontend moving between services appears as one removal and
  // one addition, and the table was valid before and after.
  std::vector<ServiceChange> changes;

  bool empty() const { return changes.empty(); }
  size_t size() const { return changes.size(); }

  // Services present and unequal in `from` and `to`.
  static ServiceDiff between(const ServiceTable& from, const ServiceTable& to);
  // The same over part of a table: the services of some keys before (as
  // held in a table) and after (recomputed), e.g. the agent's dirty ones.
  static ServiceDiff between(const std::map<ServiceKey, const Service*>& from,
                             const std::map<ServiceKey, Service>& to);
  // Every service of `table` as an addition: the start-up full sync.
  static ServiceDiff fullSync(const ServiceTable& table);
};

// Applies `diff` to `table`: removals first, then additions and updates, so a
// frontend that moved between services never collides. Fails without partial
// change if the result would be invalid.
Result<void> applyDiff(ServiceTable& table, const ServiceDiff& diff);

// Finer-grained view of one service's backend change, for modes that keep
// per-backend state (BPF backend ids, IPVS real servers, Maglev slots).
struct BackendDelta {
  std::vector<Backend> added;    // in after, not before (by address+port)
  std::vector<Backend> removed;  // in before, not after
  std::vector<Backend> changed;  // same address+port, other weight/state/locality (after's value)
};
BackendDelta diffBackends(const Service& before, const Service& after);

struct FrontendDelta {
  std::vector<Frontend> added;
  std::vector<Frontend> removed;
};
FrontendDelta diffFrontends(const Service& before, const Service& after);

}  // namespace sluice
