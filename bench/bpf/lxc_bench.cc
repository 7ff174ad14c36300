// bpf/lxc.bpf.c per-packet cost through BPF_PROG_TEST_RUN, against the
// pass-through tc program measured the same way in the same run, and the
// loader's programming time (full sync; single endpoint change).
//
// Per-packet times are the kernel's own measurement of one run
// (bpf_test_run_opts.duration, ns), fed to Google Benchmark as manual time:
// repeat > 1 would reuse one buffer, so a rewriting program would see its
// own output from the second run on (tests/bpf/bpf_test_run.h). The syscall
// around each run is therefore outside the figure. Needs root and a
// mountable bpffs; otherwise every benchmark reports SkipWithError.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "bpf/loader/ebpf_mode.h"
#include "dataplane/service_diff.h"
#include "pass.skel.h"
#include "tests/bpf/bpf_test_run.h"
#include "tests/bpf/bpffs.h"
#include "tests/bpf/packet_builder.h"

namespace sluice {
namespace {

using testing::buildPacket;
using testing::PacketSpec;

IpAddress ip(const std::string& text) { return IpAddress::parse(text).value(); }

Service makeService(uint32_t index, uint32_t backends) {
  Service s;
  s.key = {"bench", "svc-" + std::to_string(index), ""};
  s.protocol = Protocol::kTcp;
  Frontend f;
  f.address = IpAddress::v4FromHost(0x0a600000u + index);  // 10.96.0.0/12 onwards
  f.port = 80;
  s.frontends.push_back(f);
  for (uint32_t b = 0; b < backends; ++b) {
    Backend be;
    be.address = IpAddress::v4FromHost(0x0b000000u + index * 16 + b);  // 11.0.0.0/8
    be.port = 8080;
    s.backends.push_back(be);
  }
  return s;
}

PacketSpec syn(uint16_t sport, const char* dst, uint16_t dport) {
  PacketSpec s;
  s.src = ip("10.0.0.2");
  s.dst = ip(dst);
  s.sport = sport;
  s.dport = dport;
  return s;
}

// One loaded EbpfMode with a small table, shared by the per-packet benches.
struct Datapath {
  testing::ScopedBpffs fs;
  std::unique_ptr<EbpfMode> mode;
  std::string error;

  Datapath() {
    if (geteuid() != 0) {
      error = "needs root";
      return;
    }
    if (!fs.ok()) {
      error = fs.error();
      return;
    }
    EbpfOptions o;
    o.pinDir = fs.pinDir();
    auto m = EbpfMode::create(o);
    if (!m.ok()) {
      error = m.error().message;
      return;
    }
    mode = std::move(*m);
    ServiceTable t;
    (void)t.upsert(makeService(10, 10));  // 10.96.0.10:80, 10 backends
    if (auto r = mode->sync(t); !r.ok()) error = r.error().message;
  }
};

Datapath& datapath() {
  static Datapath d;
  return d;
}

// Runs `frames[i % n]` once per iteration and reports the kernel's time.
void runFrames(benchmark::State& state, int progFd, const std::vector<std::vector<uint8_t>>& frames,
               uint32_t wantVerdict) {
  size_t i = 0;
  for (auto _ : state) {
    auto r = testing::testRun(progFd, frames[i++ % frames.size()]);
    if (r.err != 0 || r.retval != wantVerdict) {
      state.SkipWithError("unexpected test-run result");
      return;
    }
    state.SetIterationTime(static_cast<double>(r.durationNs) * 1e-9);
  }
  state.counters["packets"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_PassTcBaseline(benchmark::State& state) {
  struct Deleter {
    void operator()(pass_bpf* s) const { pass_bpf__destroy(s); }
  };
  std::unique_ptr<pass_bpf, Deleter> skel(pass_bpf__open_and_load());
  if (!skel) return state.SkipWithError("pass.bpf.o does not load here");
  runFrames(state, bpf_program__fd(skel->progs.pass_tc),
            {buildPacket(syn(40000, "10.96.0.10", 80))}, 0);
}
BENCHMARK(BM_PassTcBaseline)->UseManualTime();

void BM_LxcNonService(benchmark::State& state) {
  Datapath& d = datapath();
  if (!d.mode) return state.SkipWithError(d.error.c_str());
  runFrames(state, d.mode->lxcIngressFd(), {buildPacket(syn(40000, "10.0.0.3", 80))}, 0);
}
BENCHMARK(BM_LxcNonService)->UseManualTime();

// A new flow each run: frontend lookup, backend pick, two ct inserts, DNAT.
void BM_LxcFirstPacket(benchmark::State& state) {
  Datapath& d = datapath();
  if (!d.mode) return state.SkipWithError(d.error.c_str());
  std::vector<std::vector<uint8_t>> frames;
  for (uint32_t i = 0; i < 50000; ++i) {
    PacketSpec s = syn(static_cast<uint16_t>(1024 + i % 60000), "10.96.0.10", 80);
    s.src = IpAddress::v4FromHost(0x0a010000u + i / 60000 + state.thread_index() * 16);
    frames.push_back(buildPacket(s));
  }
  runFrames(state, d.mode->lxcIngressFd(), frames, 0);
}
BENCHMARK(BM_LxcFirstPacket)->UseManualTime()->Iterations(50000);

// The same flow again: frontend lookup, ct hit, backend lookup, DNAT.
void BM_LxcEstablished(benchmark::State& state) {
  Datapath& d = datapath();
  if (!d.mode) return state.SkipWithError(d.error.c_str());
  PacketSpec s = syn(50000, "10.96.0.10", 80);
  const auto first = buildPacket(s);
  (void)testing::testRun(d.mode->lxcIngressFd(), first);
  s.tcpFlags = testing::kTcpAck;
  runFrames(state, d.mode->lxcIngressFd(), {buildPacket(s)}, 0);
}
BENCHMARK(BM_LxcEstablished)->UseManualTime();

// Full sync of N services x 10 backends into empty maps.
void BM_FullSync(benchmark::State& state) {
  if (geteuid() != 0) return state.SkipWithError("needs root");
  const uint32_t n = static_cast<uint32_t>(state.range(0));
  ServiceTable table;
  for (uint32_t i = 0; i < n; ++i) (void)table.upsert(makeService(i, 10));
  for (auto _ : state) {
    state.PauseTiming();
    auto fs = std::make_unique<testing::ScopedBpffs>();
    EbpfOptions o;
    o.pinDir = fs->pinDir();
    o.maxFrontends = o.maxBackends = o.maxSlots = std::max(65536u, n * 11);
    auto m = EbpfMode::create(o);
    if (!m.ok()) return state.SkipWithError(m.error().message.c_str());
    state.ResumeTiming();
    if (auto r = (*m)->sync(table); !r.ok()) return state.SkipWithError(r.error().message.c_str());
    state.PauseTiming();
    state.counters["map_writes"] = static_cast<double>((*m)->stats().counters["map.writes"]);
    m->reset();
    fs.reset();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_FullSync)
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(100000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

// One endpoint added to one service of N (then removed again): what apply()
// costs for the change the design makes incremental. Each apply is timed on
// its own, so p50/p99 are of single changes, not of averages.
void BM_SingleEndpointChange(benchmark::State& state) {
  if (geteuid() != 0) return state.SkipWithError("needs root");
  const uint32_t n = static_cast<uint32_t>(state.range(0));
  testing::ScopedBpffs fs;
  EbpfOptions o;
  o.pinDir = fs.pinDir();
  o.maxFrontends = o.maxBackends = o.maxSlots = std::max(65536u, n * 11);
  auto m = EbpfMode::create(o);
  if (!m.ok()) return state.SkipWithError(m.error().message.c_str());
  ServiceTable table;
  for (uint32_t i = 0; i < n; ++i) (void)table.upsert(makeService(i, 10));
  if (auto r = (*m)->sync(table); !r.ok()) return state.SkipWithError(r.error().message.c_str());
  ServiceTable with = table;
  (void)with.upsert(makeService(n / 2, 11));
  const ServiceDiff add = ServiceDiff::between(table, with);
  const ServiceDiff remove = ServiceDiff::between(with, table);
  std::vector<double> micros;
  bool adding = true;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    if (auto r = (*m)->apply(adding ? add : remove); !r.ok()) {
      return state.SkipWithError(r.error().message.c_str());
    }
    micros.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
    adding = !adding;
  }
  std::sort(micros.begin(), micros.end());
  state.counters["p50_us"] = micros[micros.size() / 2];
  state.counters["p99_us"] = micros[std::min(micros.size() - 1, micros.size() * 99 / 100)];
}
BENCHMARK(BM_SingleEndpointChange)
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(100000)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace sluice

BENCHMARK_MAIN();
