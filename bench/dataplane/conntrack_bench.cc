// Conntrack at 1M entries: insert (filling, and at capacity where every
// insert evicts), lookup hit / miss one at a time and in 32-packet bursts,
// and the per-packet lookup+update.
// Baseline in the same run: a std::unordered_map<FlowTuple, uint32_t> index
// over the same tuples (two keys per flow, as Conntrack holds), which is
// what Conntrack's own bucketed index replaces.
//
// Argument: address family (4 or 6). Counters: items_per_second is ops/s;
// bytes_per_entry and memory_MiB are what the table allocated (all at
// create), divided by its capacity.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <memory>
#include <numeric>
#include <random>
#include <unordered_map>
#include <vector>

#include "dataplane/conntrack.h"

namespace sluice {
namespace {

// 2^20: "1M entries".
constexpr uint32_t kEntries = uint32_t{1} << 20;
constexpr uint64_t kNow = 1'000 * kNsPerSecond;

IpAddress v6FromIndex(uint8_t prefix, uint32_t i) {
  std::array<uint8_t, 16> b{0xfd, prefix};
  b[12] = static_cast<uint8_t>(i >> 24);
  b[13] = static_cast<uint8_t>(i >> 16);
  b[14] = static_cast<uint8_t>(i >> 8);
  b[15] = static_cast<uint8_t>(i);
  return IpAddress::v6(b);
}

// 2 * kEntries distinct client flows to one frontend, spread over 1000
// backends. Flows [0, kEntries) are the table's contents; [kEntries, 2 *
// kEntries) are never inserted by the lookup benchmarks (misses) and feed
// the at-capacity insert benchmark. Lookup keys are laid out in the order
// they are looked up, a random order over the flows: the table is hit at
// random, as real traffic does, while the key itself streams from memory,
// as a just-received packet's headers sit in cache.
struct Dataset {
  std::vector<ConntrackFlow> flows;
  std::vector<FlowTuple> hitKeys;   // kEntries: original and reply tuples alternating
  std::vector<FlowTuple> missKeys;  // kEntries: originals of untracked flows
};

const Dataset& dataset(int family) {
  static std::unique_ptr<Dataset> cache[2];
  auto& slot = cache[family == 6];
  if (slot) return *slot;
  slot = std::make_unique<Dataset>();
  Dataset& d = *slot;
  const bool v6 = family == 6;
  const IpAddress frontend = v6 ? v6FromIndex(0x96, 10) : IpAddress::v4FromHost(0x0a60000a);
  for (uint32_t i = 0; i < 2 * kEntries; ++i) {
    ConntrackFlow f;
    const uint32_t backend = i % 1000;
    f.original = {v6 ? v6FromIndex(0x00, i) : IpAddress::v4FromHost(0x0a000000 + i), frontend,
                  static_cast<uint16_t>(1024 + i % 60000), 80, Protocol::kTcp};
    f.nat.backend = {v6 ? v6FromIndex(0x44, backend) : IpAddress::v4FromHost(0x0af40000 + backend),
                     8080};
    f.backendId = backend;
    d.flows.push_back(f);
  }
  std::vector<uint32_t> order(kEntries);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(1));
  for (uint32_t k = 0; k < kEntries; ++k) {
    const ConntrackFlow& f = d.flows[order[k]];
    d.hitKeys.push_back(k % 2 == 0 ? f.original
                                   : FlowTuple{f.nat.backend.address, f.original.src, 8080,
                                               f.original.srcPort, Protocol::kTcp});
    d.missKeys.push_back(d.flows[kEntries + order[k]].original);
  }
  return d;
}

Conntrack makeFull(const Dataset& d) {
  Conntrack ct = Conntrack::create({kEntries, {}}).value();
  for (uint32_t i = 0; i < kEntries; ++i) (void)ct.insert(d.flows[i], kTcpFlagSyn, 60, kNow);
  return ct;
}

void memoryCounters(benchmark::State& state, size_t bytes, size_t entries) {
  state.counters["entries"] = static_cast<double>(entries);
  state.counters["bytes_per_entry"] = static_cast<double>(bytes) / kEntries;
  state.counters["memory_MiB"] = static_cast<double>(bytes) / (1 << 20);
}

// Fills an empty 1M table; each iteration is one whole fill (create untimed).
void BM_InsertFill(benchmark::State& state) {
  const Dataset& d = dataset(static_cast<int>(state.range(0)));
  size_t memory = 0;
  for (auto _ : state) {
    state.PauseTiming();
    Conntrack ct = Conntrack::create({kEntries, {}}).value();
    state.ResumeTiming();
    for (uint32_t i = 0; i < kEntries; ++i) {
      benchmark::DoNotOptimize(ct.insert(d.flows[i], kTcpFlagSyn, 60, kNow));
    }
    state.PauseTiming();
    memory = ct.memoryBytes();
    ct = Conntrack::create({1, {}}).value();  // free the 1M table untimed
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kEntries);
  memoryCounters(state, memory, kEntries);
}
BENCHMARK(BM_InsertFill)->Arg(4)->Arg(6)->Unit(benchmark::kMillisecond);

// A full table taking new flows: every insert evicts the LRU entry.
void BM_InsertAtCapacity(benchmark::State& state) {
  const Dataset& d = dataset(static_cast<int>(state.range(0)));
  Conntrack ct = makeFull(d);
  uint32_t next = kEntries;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ct.insert(d.flows[next], kTcpFlagSyn, 60, kNow));
    // Flows [0, 2M) cycle: by the time one comes round again it was evicted.
    next = next + 1 == 2 * kEntries ? 0 : next + 1;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["evictions"] = static_cast<double>(ct.stats().evictions);
  memoryCounters(state, ct.memoryBytes(), ct.size());
}
BENCHMARK(BM_InsertAtCapacity)->Arg(4)->Arg(6);

// Random tracked flows, alternating original and reply tuples.
void BM_LookupHit(benchmark::State& state) {
  const Dataset& d = dataset(static_cast<int>(state.range(0)));
  Conntrack ct = makeFull(d);
  uint32_t k = 0;
  for (auto _ : state) {
    auto m = ct.lookup(d.hitKeys[k & (kEntries - 1)], kNow);
    benchmark::DoNotOptimize(m);
    ++k;
  }
  if (ct.stats().lookupMisses != 0) state.SkipWithError("a lookup that should hit missed");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  memoryCounters(state, ct.memoryBytes(), ct.size());
}
BENCHMARK(BM_LookupHit)->Arg(4)->Arg(6);

// The fast path's per-packet work: lookup, then update state and counters.
void BM_LookupUpdate(benchmark::State& state) {
  const Dataset& d = dataset(static_cast<int>(state.range(0)));
  Conntrack ct = makeFull(d);
  uint32_t k = 0;
  for (auto _ : state) {
    auto m = ct.lookup(d.hitKeys[k & (kEntries - 1)], kNow + k);
    if (m) {
      const bool reply = m.direction == ConntrackDirection::kReply;
      ct.update(m, reply ? kTcpFlagSyn | kTcpFlagAck : kTcpFlagAck, 1500, kNow + k);
    }
    ++k;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  memoryCounters(state, ct.memoryBytes(), ct.size());
}
BENCHMARK(BM_LookupUpdate)->Arg(4)->Arg(6);

// Untracked flows against a full table (a new connection's first packet).
void BM_LookupMiss(benchmark::State& state) {
  const Dataset& d = dataset(static_cast<int>(state.range(0)));
  Conntrack ct = makeFull(d);
  uint32_t k = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ct.lookup(d.missKeys[k & (kEntries - 1)], kNow));
    ++k;
  }
  if (ct.stats().lookupHits != 0) state.SkipWithError("a lookup that should miss hit");
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  memoryCounters(state, ct.memoryBytes(), ct.size());
}
BENCHMARK(BM_LookupMiss)->Arg(4)->Arg(6);

// BM_LookupHit / BM_LookupMiss in bursts of 32 (a DPDK rx burst) through
// lookupBurst(), which overlaps the burst's cache misses. Items are lookups.
void lookupBurst(benchmark::State& state, const std::vector<FlowTuple>& keys, Conntrack& ct) {
  constexpr size_t kBurst = 32;
  std::array<ConntrackMatch, kBurst> out;
  size_t k = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ct.lookupBurst({&keys[k], kBurst}, out, kNow));
    k = (k + kBurst) & (kEntries - 1);  // kEntries is a multiple of kBurst
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kBurst));
  memoryCounters(state, ct.memoryBytes(), ct.size());
}

void BM_LookupHitBurst32(benchmark::State& state) {
  const Dataset& d = dataset(static_cast<int>(state.range(0)));
  Conntrack ct = makeFull(d);
  lookupBurst(state, d.hitKeys, ct);
  if (ct.stats().lookupMisses != 0) state.SkipWithError("a lookup that should hit missed");
}
BENCHMARK(BM_LookupHitBurst32)->Arg(4)->Arg(6);

void BM_LookupMissBurst32(benchmark::State& state) {
  const Dataset& d = dataset(static_cast<int>(state.range(0)));
  Conntrack ct = makeFull(d);
  lookupBurst(state, d.missKeys, ct);
  if (ct.stats().lookupHits != 0) state.SkipWithError("a lookup that should miss hit");
}
BENCHMARK(BM_LookupMissBurst32)->Arg(4)->Arg(6);

// --- baseline: std::unordered_map as the index ------------------------------

// Counts what the map asks its allocator for (not malloc's own per-block
// header, which adds ~8-16 B per node on glibc).
size_t gBaselineBytes = 0;

template <typename T>
struct CountingAllocator {
  using value_type = T;
  CountingAllocator() = default;
  template <typename U>
  CountingAllocator(const CountingAllocator<U>&) {}  // NOLINT(google-explicit-constructor)
  T* allocate(size_t n) {
    gBaselineBytes += n * sizeof(T);
    return std::allocator<T>{}.allocate(n);
  }
  void deallocate(T* p, size_t n) {
    gBaselineBytes -= n * sizeof(T);
    std::allocator<T>{}.deallocate(p, n);
  }
  friend bool operator==(const CountingAllocator&, const CountingAllocator&) { return true; }
};

// Tuple -> entry index << 1 | direction, as Conntrack's slots hold.
using BaselineIndex =
    std::unordered_map<FlowTuple, uint32_t, FlowTupleHash, std::equal_to<>,
                       CountingAllocator<std::pair<const FlowTuple, uint32_t>>>;

void fillBaseline(BaselineIndex& index, const Dataset& d) {
  index.reserve(2 * kEntries);
  for (uint32_t i = 0; i < kEntries; ++i) {
    const ConntrackFlow& f = d.flows[i];
    index.emplace(f.original, i << 1);
    index.emplace(FlowTuple{f.nat.backend.address, f.original.src, 8080, f.original.srcPort,
                            Protocol::kTcp},
                  (i << 1) | 1);
  }
}

// Filling the baseline index with both tuples of 1M flows (no entries, no LRU).
void BM_BaselineUnorderedMapFill(benchmark::State& state) {
  const Dataset& d = dataset(static_cast<int>(state.range(0)));
  size_t memory = 0;
  for (auto _ : state) {
    BaselineIndex index;
    fillBaseline(index, d);
    state.PauseTiming();
    memory = gBaselineBytes;
    index = BaselineIndex();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kEntries);
  memoryCounters(state, memory, kEntries);
}
BENCHMARK(BM_BaselineUnorderedMapFill)->Arg(4)->Arg(6)->Unit(benchmark::kMillisecond);

// Same access pattern as BM_LookupHit, index only.
void BM_BaselineUnorderedMapLookupHit(benchmark::State& state) {
  const Dataset& d = dataset(static_cast<int>(state.range(0)));
  BaselineIndex index;
  fillBaseline(index, d);
  uint32_t k = 0;
  for (auto _ : state) {
    auto it = index.find(d.hitKeys[k & (kEntries - 1)]);
    benchmark::DoNotOptimize(it);
    ++k;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  memoryCounters(state, gBaselineBytes, index.size() / 2);
}
BENCHMARK(BM_BaselineUnorderedMapLookupHit)->Arg(4)->Arg(6);

// Same access pattern as BM_LookupMiss, index only.
void BM_BaselineUnorderedMapLookupMiss(benchmark::State& state) {
  const Dataset& d = dataset(static_cast<int>(state.range(0)));
  BaselineIndex index;
  fillBaseline(index, d);
  uint32_t k = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(index.find(d.missKeys[k & (kEntries - 1)]));
    ++k;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  memoryCounters(state, gBaselineBytes, index.size() / 2);
}
BENCHMARK(BM_BaselineUnorderedMapLookupMiss)->Arg(4)->Arg(6);

}  // namespace
}  // namespace sluice

BENCHMARK_MAIN();
