#include "dataplane/dpdk/rcu.h"

#include <rte_rcu_qsbr.h>

#include <new>
#include <string>

namespace sluice::dpdk {

void Rcu::FreeAligned::operator()(rte_rcu_qsbr* p) const {
  ::operator delete (static_cast<void*>(p), std::align_val_t{RTE_CACHE_LINE_SIZE});
}

Result<std::unique_ptr<Rcu>> Rcu::create(uint32_t maxReaders) {
  const size_t bytes = rte_rcu_qsbr_get_memsize(maxReaders);
  if (maxReaders == 0 || bytes == 1 || bytes == 0) {
    return Error::invalid("rcu: " + std::to_string(maxReaders) + " readers");
  }
  // rte_rcu_qsbr wants cache-line-aligned memory; the heap will do (it needs
  // no DPDK memory, so tables can be tested without hugepages or EAL).
  void* mem = ::operator new (bytes, std::align_val_t{RTE_CACHE_LINE_SIZE});
  std::unique_ptr<Rcu> rcu(new Rcu());
  rcu->qsbr_.reset(static_cast<rte_rcu_qsbr*>(mem));
  if (rte_rcu_qsbr_init(rcu->qsbr_.get(), maxReaders) != 0) {
    return Error::internal("rte_rcu_qsbr_init failed");
  }
  return rcu;
}

Rcu::~Rcu() {
  // Whoever destroys the tables has stopped the readers: free the rest.
  for (Retired& r : retired_) r.free();
}

void Rcu::registerReader(uint32_t id) {
  rte_rcu_qsbr_thread_register(qsbr_.get(), id);
  rte_rcu_qsbr_thread_online(qsbr_.get(), id);
}

void Rcu::unregisterReader(uint32_t id) {
  rte_rcu_qsbr_thread_offline(qsbr_.get(), id);
  rte_rcu_qsbr_thread_unregister(qsbr_.get(), id);
}

void Rcu::online(uint32_t id) { rte_rcu_qsbr_thread_online(qsbr_.get(), id); }
void Rcu::offline(uint32_t id) { rte_rcu_qsbr_thread_offline(qsbr_.get(), id); }
void Rcu::quiescent(uint32_t id) { rte_rcu_qsbr_quiescent(qsbr_.get(), id); }

void Rcu::retire(std::function<void()> free) {
  // The token marks "now": a reader quiescent after it holds no pointer to
  // what was unpublished before retire() was called.
  retired_.push_back({rte_rcu_qsbr_start(qsbr_.get()), std::move(free)});
}

size_t Rcu::reclaim() {
  size_t n = 0;
  while (!retired_.empty() && rte_rcu_qsbr_check(qsbr_.get(), retired_.front().token, false) == 1) {
    Retired r = std::move(retired_.front());
    retired_.pop_front();
    r.free();
    ++n;
  }
  return n;
}

void Rcu::synchronize() {
  if (retired_.empty()) return;
  rte_rcu_qsbr_check(qsbr_.get(), retired_.back().token, true);
  reclaim();
}

}  // namespace sluice::dpdk
