#include "dataplane/maglev.h"

#include <xxhash.h>

#include <algorithm>
#include <numeric>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace sluice {
namespace {

// Seeds for a backend's two hashes. Maglev needs offset and skip to be
// independent functions of the key; XXH64 under two seeds gives that. The
// skip seed is the user seed XORed with 2^64/phi rather than seed + 1, so that
// seed s's skip hash is never seed s+1's offset hash.
constexpr uint64_t kSkipSeedMix = 0x9E3779B97F4A7C15ull;

bool isPrime(uint32_t n) {
  if (n < 2) {
    return false;
  }
  // Trial division: n <= 2^24 means at most 2^12 divisors, microseconds.
  for (uint32_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) {
      return false;
    }
  }
  return true;
}

uint64_t hashKey(const std::string& key, uint64_t seed) {
  return XXH64(key.data(), key.size(), seed);
}

// One backend's walk through its permutation of slots: the j-th preferred
// slot is (offset + j * skip) mod M. Since M is prime and 1 <= skip < M, the
// walk visits every slot once before repeating, so a probe always finds a
// free slot while the table is not full.
struct Cursor {
  uint32_t next;     // slot to try next, < M
  uint32_t skip;     // 1..M-1
  uint32_t weight;   // > 0
  uint32_t backend;  // index into the caller's span
  uint64_t credit;   // weight accumulated towards the next claim, < maxWeight
};

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

}  // namespace

size_t MaglevTable::memoryBytes() const {
  size_t bytes = slots_.capacity() * sizeof(uint32_t) + keys_.capacity() * sizeof(std::string);
  for (const std::string& key : keys_) {
    // Keys within the small-string buffer own no heap memory.
    if (key.capacity() > std::string().capacity()) {
      bytes += key.capacity() + 1;
    }
  }
  return bytes;
}

uint64_t MaglevTable::digest() const {
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, 0);
  // Serialise as little-endian in chunks so the digest does not depend on
  // host byte order; 1 KiB of stack per chunk.
  unsigned char buf[1024];
  size_t used = 0;
  for (uint32_t v : slots_) {
    for (int b = 0; b < 4; ++b) {
      buf[used++] = static_cast<unsigned char>(v >> (8 * b));
    }
    if (used == sizeof(buf)) {
      XXH64_update(state, buf, used);
      used = 0;
    }
  }
  XXH64_update(state, buf, used);
  uint64_t result = XXH64_digest(state);
  XXH64_freeState(state);
  return result;
}

Result<std::vector<uint32_t>> changedSlots(const MaglevTable& before, const MaglevTable& after) {
  if (before.size() != after.size()) {
    return Error::invalid("maglev: previous table has " + std::to_string(before.size()) +
                          " slots, new table " + std::to_string(after.size()) +
                          ": a size change replaces the whole table");
  }
  // Backend indices are positions in each build's input, so a backend keeps
  // its key but may change index; compare by key through an index map.
  // kRemoved differs from kNoBackend so that a removed backend's slot still
  // counts as changed when the new table is empty.
  constexpr uint32_t kRemoved = MaglevTable::kNoBackend - 1;
  std::unordered_map<std::string_view, uint32_t> afterIndex;
  afterIndex.reserve(after.backendKeys().size());
  for (size_t i = 0; i < after.backendKeys().size(); ++i) {
    afterIndex.emplace(after.backendKeys()[i], static_cast<uint32_t>(i));
  }
  std::vector<uint32_t> beforeToAfter(before.backendKeys().size(), kRemoved);
  for (size_t i = 0; i < before.backendKeys().size(); ++i) {
    auto it = afterIndex.find(before.backendKeys()[i]);
    if (it != afterIndex.end()) {
      beforeToAfter[i] = it->second;
    }
  }

  std::vector<uint32_t> changed;
  std::span<const uint32_t> was = before.slots();
  std::span<const uint32_t> now = after.slots();
  for (uint32_t s = 0; s < was.size(); ++s) {
    uint32_t mapped = was[s] == MaglevTable::kNoBackend ? MaglevTable::kNoBackend
                                                        : beforeToAfter[was[s]];
    if (mapped != now[s]) {
      changed.push_back(s);
    }
  }
  return changed;
}

Result<MaglevBuilder> MaglevBuilder::create(uint32_t tableSize, uint64_t seed) {
  if (tableSize < 2 || tableSize > kMaxMaglevTableSize) {
    return Error::invalid("maglev: tableSize: " + std::to_string(tableSize) + " must be 2.." +
                          std::to_string(kMaxMaglevTableSize));
  }
  if (!isPrime(tableSize)) {
    return Error::invalid("maglev: tableSize: " + std::to_string(tableSize) +
                          " is not prime (e.g. 65537, 655373)");
  }
  return MaglevBuilder(tableSize, seed);
}

Result<MaglevTable> MaglevBuilder::build(std::span<const MaglevBackend> backends) const {
  const uint32_t m = tableSize_;
  if (backends.size() > m) {
    return Error::invalid("maglev: backends: " + std::to_string(backends.size()) +
                          " backends exceed tableSize " + std::to_string(m) +
                          "; use a prime tableSize >= 100x the backends");
  }
  const auto n = static_cast<uint32_t>(backends.size());

  // Population order is by key, not input order: the same backend set gives
  // the same slot owners however the caller (e.g. an EndpointSlice watch)
  // happens to order it. Sorting also puts duplicate keys side by side.
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return backends[a].key < backends[b].key; });

  uint32_t maxWeight = 0;
  std::vector<Cursor> cursors;
  cursors.reserve(n);
  for (uint32_t k = 0; k < n; ++k) {
    uint32_t i = order[k];
    const MaglevBackend& backend = backends[i];
    std::string field = "maglev: backends[" + std::to_string(i) + "]";
    if (backend.key.empty()) {
      return Error::invalid(field + ".key: must not be empty");
    }
    if (k > 0 && backends[order[k - 1]].key == backend.key) {
      return Error::invalid(field + ".key: " + quoted(backend.key) + " duplicates backends[" +
                            std::to_string(order[k - 1]) + "]");
    }
    if (backend.weight == 0) {
      return Error::invalid(field + ".weight: must be > 0 (key " + quoted(backend.key) + ")");
    }
    maxWeight = std::max(maxWeight, backend.weight);
    auto offset = static_cast<uint32_t>(hashKey(backend.key, seed_) % m);
    // m == 2 gives skip 1; % (m - 1) never divides by zero since m >= 2.
    auto skip = static_cast<uint32_t>(hashKey(backend.key, seed_ ^ kSkipSeedMix) % (m - 1) + 1);
    cursors.push_back({offset, skip, backend.weight, i, 0});
  }

  std::vector<uint32_t> slots(m, MaglevTable::kNoBackend);
  std::vector<std::string> keys;
  keys.reserve(n);
  for (const MaglevBackend& backend : backends) {
    keys.push_back(backend.key);
  }
  if (n == 0) {
    return MaglevTable(std::move(slots), std::move(keys));
  }

  // Rounds: every backend earns its weight in credit; each maxWeight of
  // credit buys its next preferred free slot (Envoy's weighted Maglev, in
  // integers so every machine agrees). After r rounds backend i has claimed
  // floor(r * w_i / maxWeight) slots, so shares track weights to within one
  // slot, and equal weights claim once per round (floor/ceil of M/N). The
  // weight test costs N steps per round and there are about
  // M * maxWeight / sum(w) rounds: cheap unless weights are very skewed.
  uint32_t filled = 0;
  while (true) {
    for (Cursor& c : cursors) {
      c.credit += c.weight;
      if (c.credit < maxWeight) {
        continue;
      }
      c.credit -= maxWeight;
      uint32_t pos = c.next;
      while (slots[pos] != MaglevTable::kNoBackend) {
        pos += c.skip;  // < 2m <= 2^25: no overflow
        if (pos >= m) {
          pos -= m;
        }
      }
      slots[pos] = c.backend;
      pos += c.skip;
      if (pos >= m) {
        pos -= m;
      }
      c.next = pos;
      if (++filled == m) {
        return MaglevTable(std::move(slots), std::move(keys));
      }
    }
  }
}

Result<MaglevUpdate> MaglevBuilder::rebuild(const MaglevTable& previous,
                                            std::span<const MaglevBackend> backends) const {
  if (previous.size() != tableSize_) {
    return Error::invalid("maglev: previous table has " + std::to_string(previous.size()) +
                          " slots, builder " + std::to_string(tableSize_) +
                          ": a size change replaces the whole table");
  }
  Result<MaglevTable> table = build(backends);
  if (!table) {
    return table.error();
  }
  Result<std::vector<uint32_t>> changed = changedSlots(previous, *table);
  if (!changed) {
    return changed.error();
  }
  return MaglevUpdate{std::move(table).value(), std::move(changed).value()};
}

}  // namespace sluice
