#include "dataplane/dpdk/affinity.h"

#include <rte_pause.h>

#include <bit>
#include <cstring>
#include <new>
#include <string>

#include "dataplane/dpdk/service_tables.h"

namespace sluice::dpdk {
namespace {

constexpr uint64_t kMagic = 0x797469696e696661ULL;  // "afinitiy": sluice affinity
constexpr uint32_t kVersion = 1;

struct Header {
  uint64_t magic;
  uint32_t version;
  uint32_t buckets;
  uint64_t reserved[6];
};
static_assert(sizeof(Header) == 64);

class BucketLock {
 public:
  explicit BucketLock(std::atomic<uint32_t>& l) : l_(l) {
    while (l_.exchange(1, std::memory_order_acquire) != 0) {
      while (l_.load(std::memory_order_relaxed) != 0) rte_pause();
    }
  }
  ~BucketLock() { l_.store(0, std::memory_order_release); }
  BucketLock(const BucketLock&) = delete;
  BucketLock& operator=(const BucketLock&) = delete;

 private:
  std::atomic<uint32_t>& l_;
};

}  // namespace

size_t AffinityTable::regionBytes(uint32_t buckets) {
  return sizeof(Header) + size_t{buckets} * sizeof(Bucket);
}

Result<AffinityTable> AffinityTable::createIn(std::span<std::byte> region, uint32_t buckets) {
  if (buckets == 0 || !std::has_single_bit(buckets)) {
    return Error::invalid("affinity: " + std::to_string(buckets) +
                          " buckets: must be a power of two");
  }
  if (region.size() < regionBytes(buckets)) return Error::invalid("affinity: region too small");
  const Header h{kMagic, kVersion, buckets, {}};
  std::memcpy(region.data(), &h, sizeof h);
  auto* b = reinterpret_cast<Bucket*>(region.data() + sizeof(Header));
  for (uint32_t i = 0; i < buckets; ++i) {
    new (&b[i].lock) std::atomic<uint32_t>(0);
    std::memset(b[i].ways.data(), 0, sizeof b[i].ways);
  }
  return AffinityTable(b, buckets);
}

Result<AffinityTable> AffinityTable::adopt(std::span<std::byte> region, uint32_t buckets) {
  if (region.size() < regionBytes(buckets)) return Error::invalid("affinity: region too small");
  Header h;
  std::memcpy(&h, region.data(), sizeof h);
  if (h.magic != kMagic || h.version != kVersion || h.buckets != buckets) {
    return Error{ErrorCode::kFailedPrecondition,
                 "affinity: region holds no table of " + std::to_string(buckets) + " buckets"};
  }
  auto* b = reinterpret_cast<Bucket*>(region.data() + sizeof(Header));
  for (uint32_t i = 0; i < buckets; ++i) b[i].lock.store(0, std::memory_order_relaxed);
  return AffinityTable(b, buckets);
}

AffinityTable::Bucket& AffinityTable::bucketOf(const IpAddress& client, uint32_t serviceId) const {
  std::array<uint8_t, 16> a{};
  std::memcpy(a.data(), client.bytes().data(), client.bytes().size());
  const uint32_t h = crc32c(a.data(), a.size(), serviceId);
  return buckets_[h & mask_];
}

bool AffinityTable::matches(const Entry& e, const IpAddress& client, uint32_t serviceId) {
  return e.family == static_cast<uint8_t>(client.family()) && e.serviceId == serviceId &&
         std::memcmp(e.address.data(), client.bytes().data(), client.bytes().size()) == 0;
}

std::optional<uint32_t> AffinityTable::lookup(const IpAddress& client, uint32_t serviceId,
                                              uint64_t timeoutNs, uint64_t nowNs) {
  Bucket& b = bucketOf(client, serviceId);
  BucketLock lock(b.lock);
  for (Entry& e : b.ways) {
    if (!matches(e, client, serviceId)) continue;
    if (nowNs >= e.lastUsedNs && nowNs - e.lastUsedNs >= timeoutNs) {
      e.family = 0;  // expired: as if never there
      return std::nullopt;
    }
    if (nowNs > e.lastUsedNs) e.lastUsedNs = nowNs;
    return e.backendId;
  }
  return std::nullopt;
}

void AffinityTable::remember(const IpAddress& client, uint32_t serviceId, uint32_t backendId,
                             uint64_t nowNs) {
  Bucket& b = bucketOf(client, serviceId);
  BucketLock lock(b.lock);
  // The client's own way, else an empty one, else the least recently used.
  Entry* victim = nullptr;
  for (Entry& e : b.ways) {
    if (matches(e, client, serviceId)) victim = &e;
  }
  for (Entry& e : b.ways) {
    if (victim != nullptr) break;
    if (e.family == 0) victim = &e;
  }
  if (victim == nullptr) {
    victim = &b.ways[0];
    for (Entry& e : b.ways) {
      if (e.lastUsedNs < victim->lastUsedNs) victim = &e;
    }
  }
  std::memset(victim->address.data(), 0, victim->address.size());
  std::memcpy(victim->address.data(), client.bytes().data(), client.bytes().size());
  victim->family = static_cast<uint8_t>(client.family());
  victim->serviceId = serviceId;
  victim->backendId = backendId;
  victim->lastUsedNs = nowNs;
}

void AffinityTable::forget(const IpAddress& client, uint32_t serviceId) {
  Bucket& b = bucketOf(client, serviceId);
  BucketLock lock(b.lock);
  for (Entry& e : b.ways) {
    if (matches(e, client, serviceId)) e.family = 0;
  }
}

}  // namespace sluice::dpdk
