// AffinityTable: sessionAffinity ClientIP state shared by every worker: which
// backend a client (address, service) last reached, and when. Shared rather
// than per lcore because a client's connections hash to different lcores
// (each source port is its own flow), yet must all reach one backend.
//
// Layout: 4-way buckets, each with its own spinlock, in a memory region that
// can be a shared-memory file (state.h), so affinity survives a restart of
// sluice-dpdk along with the flows. Only new flows of affinity services
// touch it; contention is between workers for one bucket, for a few dozen
// cycles; the control thread never takes a bucket lock.
//
// Full bucket: the least recently used way is replaced; an entry also ends
// when its service's timeout passes (checked by the reader, as Kubernetes
// and the eBPF mode measure it: from the last use).
//
// Threading: lookup/remember from any worker; adopt() with no worker running.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "dataplane/ip_address.h"
#include "dataplane/result.h"

namespace sluice::dpdk {

class AffinityTable {
 public:
  static constexpr size_t kWays = 4;

  static size_t regionBytes(uint32_t buckets);
  // `buckets`: a power of two; capacity is 4 x buckets clients.
  static Result<AffinityTable> createIn(std::span<std::byte> region, uint32_t buckets);
  // Re-attaches a region an earlier process formatted; every bucket lock is
  // reset (a process killed holding one would otherwise wedge them).
  static Result<AffinityTable> adopt(std::span<std::byte> region, uint32_t buckets);

  // The backend `client` last reached through `serviceId`, if used within
  // `timeoutNs` of `nowNs`; refreshes its last use.
  std::optional<uint32_t> lookup(const IpAddress& client, uint32_t serviceId, uint64_t timeoutNs,
                                 uint64_t nowNs);
  // Records (or moves) the client to `backendId`.
  void remember(const IpAddress& client, uint32_t serviceId, uint32_t backendId, uint64_t nowNs);
  // Forgets the client's entry for the service (its backend left the set).
  void forget(const IpAddress& client, uint32_t serviceId);

  size_t capacity() const { return (mask_ + 1) * kWays; }

 private:
  struct Entry {
    std::array<uint8_t, 16> address;
    uint8_t family;  // 0: empty way
    uint8_t pad[3];
    uint32_t serviceId;
    uint32_t backendId;
    uint32_t pad2;
    uint64_t lastUsedNs;
  };
  static_assert(sizeof(Entry) == 40);
  struct alignas(64) Bucket {
    std::atomic<uint32_t> lock;
    uint32_t pad;
    std::array<Entry, kWays> ways;
  };

  AffinityTable(Bucket* buckets, uint32_t count) : buckets_(buckets), mask_(count - 1) {}
  Bucket& bucketOf(const IpAddress& client, uint32_t serviceId) const;
  static bool matches(const Entry& e, const IpAddress& client, uint32_t serviceId);

  Bucket* buckets_;
  uint32_t mask_;
};

}  // namespace sluice::dpdk
