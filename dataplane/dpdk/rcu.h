// Quiescent-state-based RCU for the tables the control thread publishes to
// the workers (rte_rcu_qsbr). A worker reads published tables without locks
// and reports a quiescent state between bursts, when it holds no pointer
// into them; the control thread unpublishes an object (a pointer swap),
// retires it here, and frees it only once every worker has reported since.
// A worker never waits for the control thread; the control thread never
// waits for a worker either: reclaim() frees what is due and returns.
//
// A worker that sleeps (adaptive polling on an idle port) goes offline()
// first, so its silence does not hold memory back, and online() before it
// touches a table again.
//
// Threading: reader calls come from the reader thread of that id only;
// retire/reclaim/synchronize from one writer thread.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>

#include "dataplane/result.h"

struct rte_rcu_qsbr;

namespace sluice::dpdk {

class Rcu {
 public:
  // Readers are numbered 0..maxReaders-1 (workers, plus test threads).
  static Result<std::unique_ptr<Rcu>> create(uint32_t maxReaders);
  ~Rcu();
  Rcu(const Rcu&) = delete;
  Rcu& operator=(const Rcu&) = delete;

  // Reader side. register() also brings the reader online.
  void registerReader(uint32_t id);
  void unregisterReader(uint32_t id);
  void online(uint32_t id);
  void offline(uint32_t id);
  void quiescent(uint32_t id);

  // Writer side. `free` runs on the writer thread from a later reclaim()
  // (or synchronize()), after every reader online now has been quiescent.
  void retire(std::function<void()> free);
  // Frees what is due, in retirement order; returns how many. Never blocks.
  size_t reclaim();
  // Waits for a grace period and frees everything retired (shutdown, tests).
  void synchronize();
  size_t pending() const { return retired_.size(); }

 private:
  Rcu() = default;

  struct Retired {
    uint64_t token;
    std::function<void()> free;
  };
  struct FreeAligned {
    void operator()(rte_rcu_qsbr* p) const;
  };
  std::unique_ptr<rte_rcu_qsbr, FreeAligned> qsbr_;
  std::deque<Retired> retired_;
};

}  // namespace sluice::dpdk
