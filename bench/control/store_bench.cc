// SqliteStore microbenchmarks: fsync-bound write latency and throughput
// (with and without group commit), point reads, a 150,000-key prefix list,
// paginated lists, and watch fan-out against a no-watch baseline.
//
// Files go to a fresh directory under $SLUICE_BENCH_DIR, else $TMPDIR, else
// /tmp, removed at exit. Put it on the disk you mean to measure: on tmpfs
// fsync is free and the write figures mean nothing.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "control/store/sqlite_store.h"

namespace sluice::store {
namespace {

// A typical small Kubernetes object as protobuf (a Pod is 0.5-4 KiB).
constexpr size_t kValueBytes = 512;
const std::string kValue(kValueBytes, 'v');

// The scale the list benchmark is asked to handle: 150,000 objects of one
// resource under one prefix (Kubernetes' tested limit is 150,000 pods).
constexpr int kListKeys = 150'000;
const std::string kListPrefix = "/registry/pods/default/";

void die(const std::string& what) {
  std::fprintf(stderr, "store_bench: %s\n", what.c_str());
  std::exit(1);
}

// A directory removed when the object dies.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("SLUICE_BENCH_DIR");
    std::string tmpl =
        (base ? std::filesystem::path(base) : std::filesystem::temp_directory_path()) /
        "sluice-store-bench-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      die("mkdtemp " + tmpl);
    }
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string podKey(int i, const std::string& prefix = kListPrefix) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%spod-%06d", prefix.c_str(), i);
  return buf;
}

// Creates keys [0, n) under `prefix` with `threads` concurrent writers, so
// group commit puts many writes behind each fsync. Setup only, never timed.
void bulkLoad(SqliteStore& store, int n, int threads, const std::string& prefix = kListPrefix) {
  std::atomic<int> next{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (int i; (i = next.fetch_add(1)) < n;) {
        if (auto r = store.create(podKey(i, prefix), kValue); !r) {
          die(r.error().message);
        }
      }
    });
  }
  for (auto& w : workers) {
    w.join();
  }
}

// A fresh store in its own directory; the store closes before the files go.
// Write benchmarks start warm: until the WAL first wraps at a checkpoint
// (1,000 pages), every commit also grows the file, and that fdatasync
// carries a metadata journal commit, several times slower than the steady
// state of overwriting the WAL in place.
struct Fixture {
  explicit Fixture(SqliteStore::Options options = {}, bool warm = true) {
    auto opened = SqliteStore::open(dir.path() + "/state.db", options);
    if (!opened) {
      die(opened.error().message);
    }
    store = std::move(opened).value();
    if (warm) {
      bulkLoad(*store, 4000, 64, "/warmup/");
    }
  }
  TempDir dir;
  std::unique_ptr<SqliteStore> store;
};

// The 150,000-key store shared by the read benchmarks, loaded once.
SqliteStore& loadedStore() {
  static Fixture* fixture = [] {
    auto* f = new Fixture({}, /*warm=*/false);
    auto start = std::chrono::steady_clock::now();
    bulkLoad(*f->store, kListKeys, 256);
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    std::fprintf(stderr, "store_bench: loaded %d keys in %.1f s\n", kListKeys, took.count());
    std::atexit([] { delete fixture; });
    return f;
  }();
  return *fixture->store;
}

// One writer, one create after another: per-op latency including the fsync.
void BM_CreateSequential(benchmark::State& state) {
  Fixture f;
  std::vector<double> micros;
  int i = 0;
  for (auto _ : state) {
    auto start = std::chrono::steady_clock::now();
    auto r = f.store->create("/bench/" + std::to_string(i++), kValue);
    micros.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
    if (!r) {
      state.SkipWithError(r.error().message.c_str());
      break;
    }
  }
  std::sort(micros.begin(), micros.end());
  if (!micros.empty()) {
    state.counters["p50_us"] = micros[micros.size() / 2];
    state.counters["p99_us"] = micros[micros.size() * 99 / 100];
  }
  state.counters["revisions/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CreateSequential)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Concurrent writers sharing one store; arg 0 = group commit off/on. The
// store lives across the benchmark's threads, set up outside the timing.
Fixture* gShared = nullptr;
void setupShared(const benchmark::State& state) {
  SqliteStore::Options options;
  options.groupCommit = state.range(0) != 0;
  gShared = new Fixture(options);
}
void teardownShared(const benchmark::State&) {
  delete gShared;
  gShared = nullptr;
}

void BM_CreateConcurrent(benchmark::State& state) {
  SqliteStore& store = *gShared->store;
  std::string prefix = "/bench/" + std::to_string(state.thread_index()) + "/";
  int i = 0;
  for (auto _ : state) {
    if (auto r = store.create(prefix + std::to_string(i++), kValue); !r) {
      state.SkipWithError(r.error().message.c_str());
      break;
    }
  }
  // Summed over threads, divided by wall time: the store's write rate.
  state.counters["revisions/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CreateConcurrent)
    ->ArgName("group_commit")
    ->Arg(0)
    ->Arg(1)
    ->Threads(1)
    ->Threads(8)
    ->Threads(32)
    ->Setup(setupShared)
    ->Teardown(teardownShared)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Point read of a random key among 150,000.
void BM_Get(benchmark::State& state) {
  SqliteStore& store = loadedStore();
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> pick(0, kListKeys - 1);
  for (auto _ : state) {
    auto r = store.get(podKey(pick(rng)));
    if (!r || !r->has_value()) {
      state.SkipWithError("get failed");
      break;
    }
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Get)->Unit(benchmark::kMicrosecond);

// Every key under one prefix, one snapshot: an informer's initial list.
void BM_List150k(benchmark::State& state) {
  SqliteStore& store = loadedStore();
  size_t keys = 0;
  for (auto _ : state) {
    auto r = store.list(kListPrefix);
    if (!r || r->kvs.size() != static_cast<size_t>(kListKeys)) {
      state.SkipWithError("list returned the wrong number of keys");
      break;
    }
    keys += r->kvs.size();
    benchmark::DoNotOptimize(r);
  }
  state.counters["keys/s"] =
      benchmark::Counter(static_cast<double>(keys), benchmark::Counter::kIsRate);
  state.counters["bytes/s"] =
      benchmark::Counter(static_cast<double>(keys * kValueBytes), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_List150k)->Unit(benchmark::kMillisecond)->UseRealTime();

// One 500-key page from a random point (kubectl/informer pagination): the
// startAfter seek must cost O(log n), not the keys skipped.
void BM_ListPage500(benchmark::State& state) {
  SqliteStore& store = loadedStore();
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> pick(0, kListKeys - 1000);
  size_t keys = 0;
  for (auto _ : state) {
    auto r = store.list(kListPrefix, 500, podKey(pick(rng)));
    if (!r || r->kvs.size() != 500) {
      state.SkipWithError("page returned the wrong number of keys");
      break;
    }
    keys += r->kvs.size();
  }
  state.counters["keys/s"] =
      benchmark::Counter(static_cast<double>(keys), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ListPage500)->Unit(benchmark::kMicrosecond);

// Watch fan-out: arg 0 watches, each with its own consumer thread. One
// iteration = 8 writer threads create 256 keys (group commit), then wait
// until every watch has received all 256 events. Arg 0 is the baseline.
void BM_WatchFanout(benchmark::State& state) {
  constexpr int kWriters = 8;
  constexpr int kPerWriter = 32;
  constexpr int kPerIteration = kWriters * kPerWriter;
  const auto watches = static_cast<int>(state.range(0));

  Fixture f;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> delivered{0};
  std::vector<std::thread> consumers;
  for (int w = 0; w < watches; ++w) {
    auto watch = f.store->watch("/fan/", 0);
    if (!watch) {
      state.SkipWithError(watch.error().message.c_str());
      return;
    }
    consumers.emplace_back([&, watch = std::move(watch).value()] {
      std::vector<Event> events;
      while (!stop.load()) {
        events.clear();
        if (!watch->next(events, std::chrono::milliseconds(20))) {
          stop = true;  // overflow would show as a shortfall below
          return;
        }
        delivered.fetch_add(static_cast<int64_t>(events.size()));
      }
    });
  }

  int64_t written = 0;
  for (auto _ : state) {
    std::vector<std::thread> writers;
    for (int t = 0; t < kWriters; ++t) {
      writers.emplace_back([&, t, base = written] {
        for (int i = 0; i < kPerWriter; ++i) {
          auto key = "/fan/" + std::to_string(base + t * kPerWriter + i);
          if (!f.store->create(key, kValue)) {
            stop = true;
          }
        }
      });
    }
    for (auto& w : writers) {
      w.join();
    }
    written += kPerIteration;
    while (delivered.load() < written * watches && !stop.load()) {
      std::this_thread::yield();
    }
  }
  stop = true;
  for (auto& c : consumers) {
    c.join();
  }
  if (delivered.load() != written * watches) {
    state.SkipWithError("a watch missed events or ended");
  }
  state.counters["writes/s"] =
      benchmark::Counter(static_cast<double>(written), benchmark::Counter::kIsRate);
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(written * watches), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_WatchFanout)
    ->ArgName("watches")
    ->Arg(0)
    ->Arg(100)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sluice::store

BENCHMARK_MAIN();
