#include "dataplane/maglev.h"

#include <xxhash.h>

#include <algorithm>
#include <bit>
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

// Takes the cursor's next preferred slot that is still free.
inline void claimNextFree(Cursor& c, std::vector<uint32_t>& slots) {
  const auto m = static_cast<uint32_t>(slots.size());
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
}

// Above this many weight tests per claimed slot (maxWeight * N / sum(w)),
// fillByNextClaimRound's heap beats fillByScanningRounds's scan. Both give
// the same table; only speed differs. Measured at M=65537..655373,
// N=10..1000: the scan is 1.5-7x faster at <= 10 tests per claim (equal
// weights: 1), the heap 1.4-17x faster at >= 100; 32 sits between.
constexpr uint64_t kMaxScanStepsPerClaim = 32;

// The round schedule run literally: N weight tests per round, about
// M * maxWeight / sum(w) rounds. Fastest when weights are near equal.
void fillByScanningRounds(std::vector<Cursor>& cursors, uint32_t maxWeight,
                          std::vector<uint32_t>& slots) {
  const auto m = static_cast<uint32_t>(slots.size());
  uint32_t filled = 0;
  while (true) {
    for (Cursor& c : cursors) {
      c.credit += c.weight;
      if (c.credit < maxWeight) {
        continue;
      }
      c.credit -= maxWeight;
      claimNextFree(c, slots);
      if (++filled == m) {
        return;
      }
    }
  }
}

// The same schedule, jumping straight to each claim: backend i's k-th claim
// falls in round ceil(k * maxWeight / w_i), and claims run in (round, key
// order), so a min-heap on that pair replays fillByScanningRounds exactly
// in O(M log N), whatever the weights.
void fillByNextClaimRound(std::vector<Cursor>& cursors, uint32_t maxWeight,
                          std::vector<uint32_t>& slots) {
  struct Due {
    uint64_t round;   // k * maxWeight < 2^24 * 2^32: fits
    uint32_t cursor;  // position in key order; breaks ties within a round
    uint32_t claims;  // k - 1, claims made so far
  };
  auto later = [](const Due& a, const Due& b) {
    return a.round != b.round ? a.round > b.round : a.cursor > b.cursor;
  };
  auto roundOfClaim = [&](uint32_t k, uint32_t weight) {
    return (uint64_t{k} * maxWeight + weight - 1) / weight;
  };
  std::vector<Due> heap;
  heap.reserve(cursors.size());
  for (uint32_t i = 0; i < cursors.size(); ++i) {
    heap.push_back({roundOfClaim(1, cursors[i].weight), i, 0});
  }
  std::make_heap(heap.begin(), heap.end(), later);
  const auto m = static_cast<uint32_t>(slots.size());
  for (uint32_t filled = 0; filled < m; ++filled) {
    std::pop_heap(heap.begin(), heap.end(), later);
    Due& due = heap.back();
    Cursor& c = cursors[due.cursor];
    claimNextFree(c, slots);
    ++due.claims;
    due.round = roundOfClaim(due.claims + 1, c.weight);
    std::push_heap(heap.begin(), heap.end(), later);
  }
}

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
  // Hash little-endian bytes whatever the host order, so the digest is the
  // same on every machine.
  if constexpr (std::endian::native == std::endian::little) {
    return XXH64(slots_.data(), slots_.size() * sizeof(uint32_t), 0);
  } else {
    std::vector<unsigned char> bytes;
    bytes.reserve(slots_.size() * sizeof(uint32_t));
    for (uint32_t v : slots_) {
      for (int b = 0; b < 4; ++b) {
        bytes.push_back(static_cast<unsigned char>(v >> (8 * b)));
      }
    }
    return XXH64(bytes.data(), bytes.size(), 0);
  }
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
    uint32_t mapped =
        was[s] == MaglevTable::kNoBackend ? MaglevTable::kNoBackend : beforeToAfter[was[s]];
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
  uint64_t weightSum = 0;
  std::vector<Cursor> cursors;
  cursors.reserve(n);
  for (uint32_t k = 0; k < n; ++k) {
    uint32_t i = order[k];
    const MaglevBackend& backend = backends[i];
    auto field = [i] { return "maglev: backends[" + std::to_string(i) + "]"; };
    if (backend.key.empty()) {
      return Error::invalid(field() + ".key: must not be empty");
    }
    if (k > 0 && backends[order[k - 1]].key == backend.key) {
      return Error::invalid(field() + ".key: " + quoted(backend.key) + " duplicates backends[" +
                            std::to_string(order[k - 1]) + "]");
    }
    if (backend.weight == 0) {
      return Error::invalid(field() + ".weight: must be > 0 (key " + quoted(backend.key) + ")");
    }
    maxWeight = std::max(maxWeight, backend.weight);
    weightSum += backend.weight;
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

  // Rounds: in round r (1-based) every backend earns its weight in credit,
  // and each maxWeight of credit buys its next preferred free slot, in key
  // order within the round (Envoy's weighted Maglev, in integers so every
  // machine agrees). After r rounds backend i has claimed
  // floor(r * w_i / maxWeight) slots, so shares track weights, and equal
  // weights claim once per round (floor/ceil of M/N).
  if (uint64_t{maxWeight} * n <= kMaxScanStepsPerClaim * weightSum) {
    fillByScanningRounds(cursors, maxWeight, slots);
  } else {
    fillByNextClaimRound(cursors, maxWeight, slots);
  }
  return MaglevTable(std::move(slots), std::move(keys));
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
