// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016, section 3.4), with weights.
//
// A Maglev table is M slots (M prime); each slot names one backend. A flow goes
// to table[flowHash % M], so every node that builds the table from the same
// backends, size and seed sends a flow to the same backend, and a backend
// change moves few flows. Every dataplane mode (BPF, DPDK, userspace) uses the
// table built here; BPF and DPDK copy it into their own slot arrays and, on a
// change, rewrite only the slots rebuild() reports.
//
// Threading: MaglevBuilder is immutable after create(); build() and rebuild()
// are const and may run concurrently. A MaglevTable is a value; lookups on a
// const table are safe from any number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/result.h"
#include "dataplane/service.h"  // kDefaultMaglevTableSize

namespace sluice {

// Largest table create() accepts: 2^24 slots, 64 MiB of uint32 slots per
// table. The largest realistic backend set is a Service over a DaemonSet in
// a cluster at Kubernetes' 5,000-node limit: 5,000 backends, and the usual
// M >= 100 N rule makes that 500k slots. 2^24 leaves 30x headroom while
// keeping one bad maglevTableSize from costing gigabytes or a build of
// seconds (build time grows as M ln M: ~15 ms at 655373).
inline constexpr uint32_t kMaxMaglevTableSize = 1u << 24;

// One backend as Maglev sees it.
struct MaglevBackend {
  // Stable identity, e.g. "10.0.0.1:8080". The backend's slots follow from
  // this key alone (not its position in the input), so it must not change
  // while the backend lives. Must be non-empty and unique in one build.
  std::string key;
  // Relative share of slots; must be > 0. See build() for its accuracy.
  uint32_t weight = 1;
};

// Slot -> backend. Built by MaglevBuilder; immutable.
class MaglevTable {
 public:
  // Slot value when no backend exists: a table built from zero backends is
  // all kNoBackend, so lookups need no emptiness branch; the caller maps it
  // to its "no backend" drop reason.
  static constexpr uint32_t kNoBackend = std::numeric_limits<uint32_t>::max();

  // The backend index (into the span the table was built from) for a flow, or
  // kNoBackend. flowHash should be a hash of the flow's 5-tuple; only its
  // value mod size() matters.
  uint32_t backendFor(uint64_t flowHash) const { return slots_[flowHash % slots_.size()]; }

  // M, the number of slots (prime).
  uint32_t size() const { return static_cast<uint32_t>(slots_.size()); }
  // slots()[s] = backend index of slot s, or kNoBackend.
  std::span<const uint32_t> slots() const { return slots_; }
  // backendKeys()[i] = key of backend index i, as given to build().
  std::span<const std::string> backendKeys() const { return keys_; }
  // Key owning slot s, or nullptr for kNoBackend. s < size().
  const std::string* keyAt(uint32_t slot) const {
    uint32_t backend = slots_[slot];
    return backend == kNoBackend ? nullptr : &keys_[backend];
  }

  // Heap bytes held: the slot array plus the key copies.
  size_t memoryBytes() const;

  // XXH64 (seed 0) of the slot array as little-endian uint32s: equal on every
  // machine for the same backends in the same order, size and seed. For logs
  // and cross-node checks; it covers backend indices, not keys.
  uint64_t digest() const;

 private:
  friend class MaglevBuilder;
  MaglevTable(std::vector<uint32_t> slots, std::vector<std::string> keys)
      : slots_(std::move(slots)), keys_(std::move(keys)) {}

  std::vector<uint32_t> slots_;
  std::vector<std::string> keys_;
};

// A rebuilt table and the slots a dataplane must rewrite to get from the
// previous table to it.
struct MaglevUpdate {
  MaglevTable table;
  // Slots whose backend *key* differs between the previous table and `table`,
  // ascending. A backend that merely moved index (one before it was removed)
  // keeps its slots out of this list.
  std::vector<uint32_t> changedSlots;
};

// Slots whose owning key differs between two tables of the same size,
// ascending. Fails if the sizes differ: every slot then changes and the
// dataplane must replace the table, not patch it.
Result<std::vector<uint32_t>> changedSlots(const MaglevTable& before, const MaglevTable& after);

// Builds Maglev tables of one size and hash seed.
class MaglevBuilder {
 public:
  // tableSize must be prime (Maglev's permutations cover every slot only
  // when M is prime) and 2..kMaxMaglevTableSize. Nodes that must agree on
  // flow placement must use the same size and seed.
  static Result<MaglevBuilder> create(uint32_t tableSize = kDefaultMaglevTableSize,
                                      uint64_t seed = 0);

  // Fills every slot. Backend order in the input does not affect which key
  // owns which slot. Unweighted (all weights equal), each backend owns
  // floor(M/N) or ceil(M/N) slots. Weighted, backend i owns its share
  // M * w_i / sum(w) to within 1 + N * w_i / sum(w) slots, so every share is
  // within (N + 1) / M of M: under 1% once M >= 100 (N + 1). Zero backends
  // give an all-kNoBackend table. Fails on an empty or duplicate key,
  // weight 0, or more backends than slots.
  // Disruption (measured, maglev_test): adding or removing one backend
  // moves its own slots plus <= 0.7% of the others at M=65537 for N up to
  // 1000, 0.34% at M=655373, N=1000. Small tables move more even at
  // M = 100 N (3% at M=1009, N=10): it falls with M, not with M/N.
  // Cost: O(M ln M) slot probes, plus O(M * min(maxWeight / meanWeight,
  // log N)) scheduling. Measured: ~15 ms at M=655373, N=1000, equal
  // weights; ~25 ms when one backend of 1000 has weight 65535, the rest 1.
  Result<MaglevTable> build(std::span<const MaglevBackend> backends) const;

  // build() plus changedSlots(previous, new). Fails as build() does, or if
  // previous has another size.
  Result<MaglevUpdate> rebuild(const MaglevTable& previous,
                               std::span<const MaglevBackend> backends) const;

  uint32_t tableSize() const { return tableSize_; }
  uint64_t seed() const { return seed_; }

 private:
  MaglevBuilder(uint32_t tableSize, uint64_t seed) : tableSize_(tableSize), seed_(seed) {}

  uint32_t tableSize_;
  uint64_t seed_;
};

}  // namespace sluice
