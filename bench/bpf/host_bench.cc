// bpf/host.bpf.c (tc ingress of the node's uplink) and bpf/xdp.bpf.c (XDP
// on it) per-packet cost through BPF_PROG_TEST_RUN, each path reported
// minus the pass-through program of the same hook (bpf/pass.bpf.c pass_tc,
// pass_xdp) measured the same way in the same benchmark.
//
// Method: repeat=1 per run (the kernel's repeat reuses one buffer, so a
// rewriting program would see its own output), a fresh copy of the frame
// each time, the kernel-reported duration averaged over the runs; the
// syscall around each run is outside the figure. Counters:
//   ns_per_packet  the program's mean
//   pass_ns        pass_tc's mean over as many runs of the same frames
//   minus_pass_ns  the difference: what the program itself costs
// Under test run the forwarding step's bpf_fib_lookup() finds no ingress
// device and the packet is handed to the stack (TC_ACT_OK): the lookup's
// cost is included, bpf_redirect_neigh()'s is not.
//
// Needs root and a mountable bpffs; otherwise every benchmark reports
// SkipWithError. Run: build/bench/bpf/host_bench
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "bpf/loader/ebpf_mode.h"
#include "pass.skel.h"
#include "tests/bpf/bpf_test_run.h"
#include "tests/bpf/bpffs.h"
#include "tests/bpf/packet_builder.h"

namespace sluice {
namespace {

using testing::buildPacket;
using testing::PacketSpec;

constexpr const char* kNode = "192.168.1.10";

IpAddress ip(const std::string& text) { return IpAddress::parse(text).value(); }

Service nodePortService(const std::string& name, uint16_t port, TrafficPolicy policy) {
  Service s;
  s.key = {"bench", name, ""};
  s.protocol = Protocol::kTcp;
  s.externalPolicy = policy;
  Frontend f;
  f.address = ip(kNode);
  f.port = port;
  f.scope = FrontendScope::kNodePort;
  s.frontends.push_back(f);
  for (uint32_t b = 0; b < 10; ++b) {
    Backend be;
    be.address = IpAddress::v4FromHost(0x0a000100u + b);  // 10.0.1.0/24
    be.port = 8080;
    be.nodeLocal = true;
    s.backends.push_back(be);
  }
  return s;
}

PacketSpec tcpSpec(const IpAddress& src, uint16_t sport, const IpAddress& dst, uint16_t dport,
                   uint8_t flags) {
  PacketSpec s;
  s.src = src;
  s.dst = dst;
  s.sport = sport;
  s.dport = dport;
  s.tcpFlags = flags;
  return s;
}

struct PassProg {
  void operator()(pass_bpf* s) const { pass_bpf__destroy(s); }
};

// One loaded EbpfMode with NodePort services on 30080 (eTP=Cluster), 30081
// (eTP=Local) and 30082 (eTP=Local, every backend on another node), the
// uplink objects loaded with the node's address.
struct Datapath {
  testing::ScopedBpffs fs;
  std::unique_ptr<EbpfMode> mode;
  std::unique_ptr<pass_bpf, PassProg> pass;
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
    pass.reset(pass_bpf__open_and_load());
    if (!pass) {
      error = "pass.bpf.o does not load here";
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
    (void)t.upsert(nodePortService("cluster", 30080, TrafficPolicy::kCluster));
    (void)t.upsert(nodePortService("local", 30081, TrafficPolicy::kLocal));
    Service remote = nodePortService("local-remote", 30082, TrafficPolicy::kLocal);
    for (Backend& b : remote.backends) b.nodeLocal = false;
    (void)t.upsert(remote);
    if (auto r = mode->sync(t); !r.ok()) {
      error = r.error().message;
      return;
    }
    if (auto r = mode->loadUplink({ip(kNode)}); !r.ok()) error = r.error().message;
  }
};

Datapath& datapath() {
  static Datapath d;
  return d;
}

// Runs frames[i % n] once per iteration through progFd, then the same
// frames as often through pass_tc, and reports both means and the
// difference.
void runAgainstPass(benchmark::State& state, int progFd,
                    const std::vector<std::vector<uint8_t>>& frames, uint32_t wantVerdict,
                    bool xdp = false) {
  Datapath& d = datapath();
  size_t i = 0;
  double progNs = 0;
  for (auto _ : state) {
    auto r = testing::testRun(progFd, frames[i++ % frames.size()]);
    if (r.err != 0 || r.retval != wantVerdict) {
      state.SkipWithError("unexpected test-run result");
      return;
    }
    progNs += r.durationNs;
    state.SetIterationTime(static_cast<double>(r.durationNs) * 1e-9);
  }
  const size_t runs = i;
  double passNs = 0;
  const int passFd = bpf_program__fd(xdp ? d.pass->progs.pass_xdp : d.pass->progs.pass_tc);
  for (size_t k = 0; k < runs; ++k) {
    passNs += testing::testRun(passFd, frames[k % frames.size()]).durationNs;
  }
  const double n = static_cast<double>(runs ? runs : 1);
  state.counters["ns_per_packet"] = progNs / n;
  state.counters["pass_ns"] = passNs / n;
  state.counters["minus_pass_ns"] = (progNs - passNs) / n;
}

// A new outside flow per run to `port`: distinct client addresses.
std::vector<std::vector<uint8_t>> newFlows(uint16_t port, uint32_t salt) {
  std::vector<std::vector<uint8_t>> frames;
  for (uint32_t i = 0; i < 50000; ++i) {
    frames.push_back(buildPacket(tcpSpec(IpAddress::v4FromHost(0xcb000000u + salt + i),
                                         static_cast<uint16_t>(1024 + i % 60000), ip(kNode), port,
                                         testing::kTcpSyn)));
  }
  return frames;
}

void BM_HostNonService(benchmark::State& state) {
  Datapath& d = datapath();
  if (!d.mode) return state.SkipWithError(d.error.c_str());
  runAgainstPass(state, d.mode->uplinkIngressFd(),
                 {buildPacket(tcpSpec(ip("203.0.113.7"), 40000, ip(kNode), 22, testing::kTcpAck))},
                 0);
}
BENCHMARK(BM_HostNonService)->UseManualTime();

// eTP=Cluster first packet: lookup, pick, SNAT-port check, two ct
// inserts, DNAT + SNAT, FIB lookup.
void BM_HostFirstPacketCluster(benchmark::State& state) {
  Datapath& d = datapath();
  if (!d.mode) return state.SkipWithError(d.error.c_str());
  runAgainstPass(state, d.mode->uplinkIngressFd(), newFlows(30080, 0), 0);
}
BENCHMARK(BM_HostFirstPacketCluster)->UseManualTime()->Iterations(50000);

// eTP=Local first packet: no SNAT.
void BM_HostFirstPacketLocal(benchmark::State& state) {
  Datapath& d = datapath();
  if (!d.mode) return state.SkipWithError(d.error.c_str());
  runAgainstPass(state, d.mode->uplinkIngressFd(), newFlows(30081, 0x100000), 0);
}
BENCHMARK(BM_HostFirstPacketLocal)->UseManualTime()->Iterations(50000);

// An established eTP=Cluster flow: ct hit, DNAT + SNAT, FIB lookup.
void BM_HostEstablishedCluster(benchmark::State& state) {
  Datapath& d = datapath();
  if (!d.mode) return state.SkipWithError(d.error.c_str());
  const IpAddress client = ip("198.18.0.1");
  (void)testing::testRun(d.mode->uplinkIngressFd(),
                         buildPacket(tcpSpec(client, 50000, ip(kNode), 30080, testing::kTcpSyn)));
  runAgainstPass(state, d.mode->uplinkIngressFd(),
                 {buildPacket(tcpSpec(client, 50000, ip(kNode), 30080, testing::kTcpAck))}, 0);
}
BENCHMARK(BM_HostEstablishedCluster)->UseManualTime();

// A remote backend's reply on the uplink: reply ct hit, source and
// destination restored, FIB lookup.
void BM_HostReplyCluster(benchmark::State& state) {
  Datapath& d = datapath();
  if (!d.mode) return state.SkipWithError(d.error.c_str());
  const IpAddress client = ip("198.18.0.2");
  auto r = testing::testRun(
      d.mode->uplinkIngressFd(),
      buildPacket(tcpSpec(client, 50001, ip(kNode), 30080, testing::kTcpSyn)));
  const testing::PacketView v = testing::parsePacket(r.out);
  if (r.err != 0 || !v.ok) return state.SkipWithError("first packet failed");
  runAgainstPass(state, d.mode->uplinkIngressFd(),
                 {buildPacket(tcpSpec(v.dst, v.dport, v.src, v.sport, testing::kTcpAck))}, 0);
}
BENCHMARK(BM_HostReplyCluster)->UseManualTime();

// bpf/xdp.bpf.c (early drop in front of bpf_host), against pass_xdp.
constexpr uint32_t kXdpDrop = 1;
constexpr uint32_t kXdpPass = 2;

void BM_XdpNonService(benchmark::State& state) {
  Datapath& d = datapath();
  if (!d.mode) return state.SkipWithError(d.error.c_str());
  runAgainstPass(state, d.mode->uplinkXdpFd(),
                 {buildPacket(tcpSpec(ip("203.0.113.7"), 40000, ip(kNode), 22, testing::kTcpAck))},
                 kXdpPass, true);
}
BENCHMARK(BM_XdpNonService)->UseManualTime();

// A NodePort packet: parsed and looked up, passed to tc.
void BM_XdpNodePortPass(benchmark::State& state) {
  Datapath& d = datapath();
  if (!d.mode) return state.SkipWithError(d.error.c_str());
  runAgainstPass(state, d.mode->uplinkXdpFd(),
                 {buildPacket(tcpSpec(ip("203.0.113.7"), 40000, ip(kNode), 30080, testing::kTcpAck))},
                 kXdpPass, true);
}
BENCHMARK(BM_XdpNodePortPass)->UseManualTime();

// eTP=Local with no backend here: dropped (and counted) in XDP.
void BM_XdpLocalNoBackendDrop(benchmark::State& state) {
  Datapath& d = datapath();
  if (!d.mode) return state.SkipWithError(d.error.c_str());
  runAgainstPass(state, d.mode->uplinkXdpFd(),
                 {buildPacket(tcpSpec(ip("203.0.113.7"), 40000, ip(kNode), 30082, testing::kTcpSyn))},
                 kXdpDrop, true);
}
BENCHMARK(BM_XdpLocalNoBackendDrop)->UseManualTime();

}  // namespace
}  // namespace sluice

BENCHMARK_MAIN();
