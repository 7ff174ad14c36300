// Maglev table build, rebuild-after-removal and lookup. Backends and previous
// tables are made before the timed loop; counters report slots/s, the
// table's heap bytes and, for rebuilds, how many slots a dataplane rewrites.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "dataplane/maglev.h"

namespace sluice {
namespace {

std::vector<MaglevBackend> makeBackends(uint32_t n) {
  std::vector<MaglevBackend> backends;
  backends.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    backends.push_back(
        {"10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":8080", 1});
  }
  return backends;
}

MaglevBuilder builderOf(benchmark::State& state) {
  return MaglevBuilder::create(static_cast<uint32_t>(state.range(0))).value();
}

// Full build, equal weights. Args: M, N.
void BM_MaglevBuild(benchmark::State& state) {
  MaglevBuilder builder = builderOf(state);
  std::vector<MaglevBackend> backends = makeBackends(static_cast<uint32_t>(state.range(1)));
  size_t bytes = 0;
  for (auto _ : state) {
    Result<MaglevTable> table = builder.build(backends);
    benchmark::DoNotOptimize(table);
    bytes = table->memoryBytes();
  }
  state.counters["slots/s"] = benchmark::Counter(static_cast<double>(state.range(0)),
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.counters["table_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_MaglevBuild)
    ->ArgNames({"M", "N"})
    ->Args({65537, 10})
    ->Args({65537, 100})
    ->Args({65537, 1000})
    ->Args({655373, 1000})
    ->Unit(benchmark::kMillisecond);

// Worst case for the weight schedule: one backend of weight 65535 (the
// uint16 maximum of Backend::weight) among N-1 of weight 1. Args: M, N.
void BM_MaglevBuildSkewedWeights(benchmark::State& state) {
  MaglevBuilder builder = builderOf(state);
  std::vector<MaglevBackend> backends = makeBackends(static_cast<uint32_t>(state.range(1)));
  backends[0].weight = 65535;
  for (auto _ : state) {
    Result<MaglevTable> table = builder.build(backends);
    benchmark::DoNotOptimize(table);
  }
  state.counters["slots/s"] = benchmark::Counter(static_cast<double>(state.range(0)),
                                                 benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_MaglevBuildSkewedWeights)
    ->ArgNames({"M", "N"})
    ->Args({65537, 1000})
    ->Args({655373, 1000})
    ->Unit(benchmark::kMillisecond);

// rebuild() after removing the middle backend (so later indices shift):
// build plus slot diff by key. Args: M, N.
void BM_MaglevRebuildRemoveOne(benchmark::State& state) {
  MaglevBuilder builder = builderOf(state);
  const auto m = static_cast<uint32_t>(state.range(0));
  const auto n = static_cast<uint32_t>(state.range(1));
  std::vector<MaglevBackend> backends = makeBackends(n);
  MaglevTable previous = builder.build(backends).value();
  const uint32_t victim = n / 2;
  backends.erase(backends.begin() + victim);
  size_t changed = 0;
  for (auto _ : state) {
    Result<MaglevUpdate> update = builder.rebuild(previous, backends);
    benchmark::DoNotOptimize(update);
    changed = update->changedSlots.size();
  }
  uint32_t victimSlots = 0;
  for (uint32_t backend : previous.slots()) {
    victimSlots += backend == victim;
  }
  state.counters["slots/s"] =
      benchmark::Counter(static_cast<double>(m), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["changed_slots"] = static_cast<double>(changed);
  state.counters["remap_pct"] = 100.0 * static_cast<double>(changed) / m;
  // The part beyond the removed backend's own slots: Maglev's disruption.
  state.counters["others_moved_pct"] =
      100.0 * static_cast<double>(changed - victimSlots) / (m - victimSlots);
}
BENCHMARK(BM_MaglevRebuildRemoveOne)
    ->ArgNames({"M", "N"})
    ->Args({65537, 10})
    ->Args({65537, 100})
    ->Args({65537, 1000})
    ->Args({655373, 1000})
    ->Unit(benchmark::kMillisecond);

// backendFor() over precomputed random flow hashes. Arg: M (N = 100).
void BM_MaglevLookup(benchmark::State& state) {
  MaglevBuilder builder = builderOf(state);
  MaglevTable table = builder.build(makeBackends(100)).value();
  // 4096 hashes (32 KiB) stay in L1/L2, so this times the modulo and the
  // table load, not hash generation.
  std::vector<uint64_t> hashes(4096);
  std::mt19937_64 rng(1);
  for (uint64_t& hash : hashes) {
    hash = rng();
  }
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(table.backendFor(hashes[i++ & (hashes.size() - 1)]));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
  state.counters["table_bytes"] = static_cast<double>(table.memoryBytes());
}
BENCHMARK(BM_MaglevLookup)->ArgName("M")->Arg(65537)->Arg(655373);

}  // namespace
}  // namespace sluice

BENCHMARK_MAIN();
