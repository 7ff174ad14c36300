// BackendRegistry: the ids backends carry in conntrack entries, and whether
// each id is still live, kept in a memory region that can outlive the
// process (a shared-memory file: state.h) so that the flows a restarted
// sluice-dpdk re-adopts still name their backends.
//
// An id is (generation << kIndexBits) | index. A backend is identified by a
// 64-bit key hash (its service, address, port, protocol: keyOf()); while it
// exists it keeps one id. Released, its slot's generation moves on, so
// isLive() of every flow still naming the old id turns false and those
// flows choose again (eBPF's svc_reselect), even if the slot is reused.
//
// Threading: isLive() from any thread (a relaxed load; workers per packet);
// everything else from the writer (control) thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "dataplane/ip_address.h"
#include "dataplane/result.h"
#include "dataplane/service.h"

namespace sluice::dpdk {

class BackendRegistry {
 public:
  // 2^20 backends: a Service over a DaemonSet at Kubernetes' 5,000-node
  // limit has 5,000; 100,000 services of ~10 endpoints fit as well. The
  // other 12 bits count reuses of a slot (next-fit allocation makes a
  // reuse of one slot rare: every other free slot goes first).
  static constexpr uint32_t kIndexBits = 20;
  static constexpr uint32_t kMaxCapacity = uint32_t{1} << kIndexBits;

  static size_t regionBytes(uint32_t capacity);
  // Formats `region` (regionBytes, 64-byte aligned) for `capacity` (a power
  // of two up to kMaxCapacity) backends, all free.
  static Result<BackendRegistry> createIn(std::span<std::byte> region, uint32_t capacity);
  // Re-attaches a region an earlier process formatted: its ids stay live
  // until retainOnly() says otherwise. kFailedPrecondition if the region
  // holds no registry of this capacity.
  static Result<BackendRegistry> adopt(std::span<std::byte> region, uint32_t capacity);

  // The key of backend `b` of the service `key` (XXH64, stable across
  // processes and builds).
  static uint64_t keyOf(const ServiceKey& key, const Backend& b, Protocol protocol);

  // Whether `id` names a backend that still exists.
  bool isLive(uint32_t id) const {
    return id != 0 && slots_[id & mask_].id.load(std::memory_order_relaxed) == id;
  }

  // The id of `key`: its current one, or a new one. kResourceExhausted
  // when every slot is taken.
  Result<uint32_t> acquire(uint64_t key);
  // `id` no longer exists (a no-op for an id that is not live).
  void release(uint32_t id);
  // Releases every live id not in `keep` (sorted): after a full sync, what
  // an earlier process left and nobody wants any more.
  size_t retainOnly(std::span<const uint32_t> keep);

  size_t live() const { return byKey_.size(); }
  uint32_t capacity() const { return mask_ + 1; }

 private:
  struct Slot {
    std::atomic<uint32_t> id;  // 0: free
    uint32_t generation;       // of the last id handed out here
    uint64_t key;
  };
  static_assert(sizeof(Slot) == 16);

  BackendRegistry(Slot* slots, uint32_t capacity) : slots_(slots), mask_(capacity - 1) {}

  Slot* slots_;
  uint32_t mask_;
  uint32_t cursor_ = 0;                           // next-fit search start
  std::unordered_map<uint64_t, uint32_t> byKey_;  // key -> id, the writer's index
};

}  // namespace sluice::dpdk
