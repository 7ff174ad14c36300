#include "dataplane/dpdk/backend_registry.h"

#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace sluice::dpdk {
namespace {

constexpr uint64_t kMagic = 0x6b6e656b63616273ULL;  // "sbackenk": sluice backend registry
constexpr uint32_t kVersion = 1;

struct Header {
  uint64_t magic;
  uint32_t version;
  uint32_t capacity;
  uint64_t reserved[6];
};
static_assert(sizeof(Header) == 64);

}  // namespace

size_t BackendRegistry::regionBytes(uint32_t capacity) {
  return sizeof(Header) + size_t{capacity} * sizeof(Slot);
}

Result<BackendRegistry> BackendRegistry::createIn(std::span<std::byte> region, uint32_t capacity) {
  if (capacity == 0 || capacity > kMaxCapacity || !std::has_single_bit(capacity)) {
    return Error::invalid("backend registry: capacity " + std::to_string(capacity) +
                          ": must be a power of two up to " + std::to_string(kMaxCapacity));
  }
  if (region.size() < regionBytes(capacity))
    return Error::invalid("backend registry: region too small");
  const Header h{kMagic, kVersion, capacity, {}};
  std::memcpy(region.data(), &h, sizeof h);
  auto* slots = reinterpret_cast<Slot*>(region.data() + sizeof(Header));
  for (uint32_t i = 0; i < capacity; ++i) {
    new (&slots[i].id) std::atomic<uint32_t>(0);
    slots[i].generation = 0;
    slots[i].key = 0;
  }
  return BackendRegistry(slots, capacity);
}

Result<BackendRegistry> BackendRegistry::adopt(std::span<std::byte> region, uint32_t capacity) {
  if (region.size() < regionBytes(capacity))
    return Error::invalid("backend registry: region too small");
  Header h;
  std::memcpy(&h, region.data(), sizeof h);
  if (h.magic != kMagic || h.version != kVersion || h.capacity != capacity) {
    return Error{
        ErrorCode::kFailedPrecondition,
        "backend registry: region holds no registry of capacity " + std::to_string(capacity)};
  }
  BackendRegistry r(reinterpret_cast<Slot*>(region.data() + sizeof(Header)), capacity);
  for (uint32_t i = 0; i < capacity; ++i) {
    const uint32_t id = r.slots_[i].id.load(std::memory_order_relaxed);
    // An id whose index is not its slot is a torn write: free the slot.
    if (id != 0 && (id & r.mask_) != i) r.slots_[i].id.store(0, std::memory_order_relaxed);
    if (id != 0 && (id & r.mask_) == i) r.byKey_[r.slots_[i].key] = id;
  }
  return r;
}

uint64_t BackendRegistry::keyOf(const ServiceKey& key, const Backend& b, Protocol protocol) {
  // "ns/name:port|<16 address bytes><family><port, big endian><protocol>"
  std::string buf = key.toString();
  buf.push_back('|');
  std::array<uint8_t, 16> addr{};
  std::copy(b.address.bytes().begin(), b.address.bytes().end(), addr.begin());
  buf.append(reinterpret_cast<const char*>(addr.data()), addr.size());
  buf.push_back(static_cast<char>(b.address.family()));
  buf.push_back(static_cast<char>(b.port >> 8));
  buf.push_back(static_cast<char>(b.port & 0xff));
  buf.push_back(static_cast<char>(protocol));
  return XXH64(buf.data(), buf.size(), 0);
}

Result<uint32_t> BackendRegistry::acquire(uint64_t key) {
  if (auto it = byKey_.find(key); it != byKey_.end()) return it->second;
  const uint32_t n = mask_ + 1;
  for (uint32_t probe = 0; probe < n; ++probe) {
    const uint32_t i = (cursor_ + probe) & mask_;
    Slot& s = slots_[i];
    if (s.id.load(std::memory_order_relaxed) != 0) continue;
    // Generation 0 is never used, so no id is 0 (the "no backend" value).
    s.generation = (s.generation + 1) & ((uint32_t{1} << (32 - kIndexBits)) - 1);
    if (s.generation == 0) s.generation = 1;
    const uint32_t id = (s.generation << kIndexBits) | i;
    s.key = key;
    s.id.store(id, std::memory_order_relaxed);
    cursor_ = (i + 1) & mask_;
    byKey_[key] = id;
    return id;
  }
  return Error::exhausted("backend registry: all " + std::to_string(n) +
                          " backend ids are in use (--dpdk-max-backends)");
}

void BackendRegistry::release(uint32_t id) {
  if (!isLive(id)) return;
  Slot& s = slots_[id & mask_];
  byKey_.erase(s.key);
  s.id.store(0, std::memory_order_relaxed);
}

size_t BackendRegistry::retainOnly(std::span<const uint32_t> keep) {
  std::vector<uint32_t> gone;
  for (const auto& [key, id] : byKey_) {
    if (!std::binary_search(keep.begin(), keep.end(), id)) gone.push_back(id);
  }
  for (uint32_t id : gone) release(id);
  return gone.size();
}

}  // namespace sluice::dpdk
