// Conntrack's hash index: two-choice buckets of 8 slots (conntrack.h,
// "The index"), their overflow counts and the check of their invariants.
// The entry pool, the LRU order, evictions (insertRefEvicting's too) and
// the lookups that use the index are in conntrack.cc.
#include <bit>
#include <cassert>
#include <string>
#include <vector>

#include "dataplane/conntrack.h"
#include "dataplane/conntrack_index.h"

namespace sluice {

using conntrack_index::hash32;
using conntrack_index::matchMask8;
using conntrack_index::tagOf;

void Conntrack::clearIndex() {
  Bucket empty{};
  empty.ref.fill(kEmptyRef);
  std::fill_n(buckets_, bucketMask_ + 1, empty);
}

uint32_t Conntrack::findIn(const Bucket& k, const FlowTuple& tuple, uint16_t tag) const {
  for (uint32_t m = matchMask8(k.tag, tag); m != 0; m &= m - 1) {
    const uint32_t ref = k.ref[static_cast<size_t>(std::countr_zero(m))];
    if (ref == kEmptyRef) continue;
    const ConntrackEntry& e = entries_[ref >> 1];
    if ((ref & 1 ? e.reply : e.original) == tuple) return ref;
  }
  return kEmptyRef;
}

uint32_t Conntrack::findRef(const FlowTuple& tuple, uint32_t hash) const {
  const uint16_t tag = tagOf(hash);
  const Bucket& home = buckets_[primaryBucket(hash)];
  if (const uint32_t ref = findIn(home, tuple, tag); ref != kEmptyRef || home.overflow == 0) {
    return ref;
  }
  return findIn(buckets_[secondaryBucket(hash)], tuple, tag);
}

uint32_t Conntrack::hashOfRef(uint32_t ref) const { return nodes_[ref >> 1].hash[ref & 1]; }


bool Conntrack::placeIn(size_t bucket, uint32_t hash, uint32_t ref) {
  Bucket& k = buckets_[bucket];
  const uint32_t free = matchMask8(k.ref, kEmptyRef);
  if (free == 0) return false;
  const auto i = static_cast<size_t>(std::countr_zero(free));
  k.tag[i] = tagOf(hash);
  k.ref[i] = ref;
  if (bucket != primaryBucket(hash)) ++buckets_[primaryBucket(hash)].overflow;
  return true;
}

bool Conntrack::insertRef(uint32_t hash, uint32_t ref) {
  const size_t home = primaryBucket(hash);
  const size_t alt = secondaryBucket(hash);
  if (placeIn(home, hash, ref) || placeIn(alt, hash, ref)) return true;
  for (const size_t b : {home, alt}) {
    Bucket& k = buckets_[b];
    for (size_t i = 0; i < kBucketSlots; ++i) {
      // Tags are too short to name buckets: the resident's hash is its node's.
      const uint32_t h = hashOfRef(k.ref[i]);
      const bool wasHome = primaryBucket(h) == b;
      if (placeIn(wasHome ? secondaryBucket(h) : primaryBucket(h), h, k.ref[i])) {
        // placeIn counted a move out of its home; a move back home ends one.
        if (!wasHome) --buckets_[primaryBucket(h)].overflow;
        k.tag[i] = tagOf(hash);
        k.ref[i] = ref;
        if (b != home) ++buckets_[home].overflow;
        return true;
      }
    }
  }
  return false;
}

void Conntrack::eraseRef(uint32_t hash, uint32_t ref) {
  Bucket& home = buckets_[primaryBucket(hash)];
  if (const uint32_t m = matchMask8(home.ref, ref); m != 0) {
    home.ref[static_cast<size_t>(std::countr_zero(m))] = kEmptyRef;
    return;
  }
  Bucket& alt = buckets_[secondaryBucket(hash)];
  const uint32_t m = matchMask8(alt.ref, ref);
  assert(m != 0 && "conntrack: erasing a ref the index does not hold");
  if (m == 0) return;
  alt.ref[static_cast<size_t>(std::countr_zero(m))] = kEmptyRef;
  --home.overflow;
}

uint32_t Conntrack::prefetch(const FlowTuple& tuple) const {
  // The secondary bucket is read only when the primary has refs that
  // overflowed into theirs: rarely at the index's load.
  const uint32_t h = hash32(tuple);
  __builtin_prefetch(&buckets_[primaryBucket(h)]);
  return h;
}

std::string Conntrack::indexFault() const {
  const size_t buckets = bucketMask_ + 1;
  std::vector<uint32_t> overflow(buckets, 0);
  std::vector<uint8_t> seen(size_t{capacity_} * 2, 0);
  for (size_t b = 0; b < buckets; ++b) {
    const Bucket& k = buckets_[b];
    for (size_t i = 0; i < kBucketSlots; ++i) {
      const uint32_t ref = k.ref[i];
      if (ref == kEmptyRef) continue;
      const std::string where = "bucket " + std::to_string(b) + " slot " + std::to_string(i);
      if ((ref >> 1) >= capacity_ || nodes_[ref >> 1].prev == kFreeMark) {
        return where + ": ref " + std::to_string(ref) + " of no live entry";
      }
      const ConntrackEntry& e = entries_[ref >> 1];
      const uint32_t h = hash32(ref & 1 ? e.reply : e.original);
      if (hashOfRef(ref) != h) return where + ": node hash is not the tuple's";
      if (k.tag[i] != tagOf(h)) return where + ": tag is not the hash's";
      if (b != primaryBucket(h) && b != secondaryBucket(h)) return where + ": in neither bucket";
      if (b != primaryBucket(h)) ++overflow[primaryBucket(h)];
      if (seen[ref]++ != 0) return where + ": ref " + std::to_string(ref) + " indexed twice";
    }
  }
  for (uint32_t i = 0; i < capacity_; ++i) {
    if (((entries_[i].useMark & kBatchBits) != 0) != (nodes_[i].prev != kFreeMark)) {
      return "entry " + std::to_string(i) + ": its use mark and its links disagree on liveness";
    }
    if (nodes_[i].prev == kFreeMark) continue;
    if (seen[size_t{i} << 1] == 0 || seen[(size_t{i} << 1) | 1] == 0) {
      return "entry " + std::to_string(i) + " not indexed in both directions";
    }
  }
  for (size_t b = 0; b < buckets; ++b) {
    if (buckets_[b].overflow != overflow[b]) {
      return "bucket " + std::to_string(b) + ": overflow " +
             std::to_string(buckets_[b].overflow) + ", counted " + std::to_string(overflow[b]);
    }
  }
  return "";
}

}  // namespace sluice
