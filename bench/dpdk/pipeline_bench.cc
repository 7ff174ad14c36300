// Cycles per packet (rdtsc) of the DPDK pipeline on one lcore, against
// DPDK's I/O floor measured in the same run on the same vdev:
//
//   io          testpmd-style io forwarding on net_ring (rx_burst, tx_burst
//               back into the same ring): the floor DPVS and VPP are
//               measured against;
//   io+restore  the floor plus rewriting each frame back to its flow's
//               first-direction tuple (the pipeline NATs frames in place and
//               they go round again): every pipeline row includes it, so
//               "over floor" is pipeline - io+restore;
//   established every frame hits its flow in conntrack (1k / 1M flows);
//   first       every frame is a new flow: frontend lookup, selection,
//               SNAT port, conntrack insert evicting the least recently used
//               entry of a full table (1k / 1M entries).
// Two services: NodePort from outside with remote backends (DNAT + SNAT:
// full NAT, DPVS's mode) and a ClusterIP from a pod (DNAT only).
//
// Figures vary ±15% run to run on a shared machine (notes/vm-and-dpdk.md):
// compare within one run. Without hugepages (as here), 1M flows pay TLB
// misses that 2 MB pages would mostly avoid.
//
// Established rows visit their flows in the order they were opened, which
// is also the order of their entries in the flow table, so a 1M-flow row
// streams through the table and the CPU's prefetchers hide most of its
// misses. --shuffled visits them in a fixed pseudo-random order instead,
// as the packets of many flows interleave on a real link: each packet's
// entry, links and side data are then a miss of their own.
//
// Usage: pipeline_bench [--packets N] (per row; default 2,000,000) [--only ROW]
//   [--shuffled].
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/dpdk/pipeline.h"
#include "dataplane/dpdk/rcu.h"

namespace sluice::dpdk {
namespace {

constexpr uint16_t kBurst = 32;
constexpr uint32_t kInFlight = 4096;  // mbufs circulating in the ring
constexpr uint16_t kNodePort = 30080;
constexpr uint16_t kClusterPort = 80;

uint64_t nowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec);
}

// Flow i: client 11.0.0.0 + i / 64000, port 1024 + i % 64000.
struct FlowAddr {
  std::array<uint8_t, 4> ip;
  uint16_t port;
};
FlowAddr flowAddr(uint32_t i) {
  const uint32_t a = 0x0b000000u + i / 64000;
  return {{uint8_t(a >> 24), uint8_t(a >> 16), uint8_t(a >> 8), uint8_t(a)},
          uint16_t(1024 + i % 64000)};
}

// A TCP segment (no payload) from flow 0 to `dst`:`dport`. Checksums are
// not computed: the pipeline never verifies them (the NIC does).
std::vector<uint8_t> templateFrame(std::array<uint8_t, 4> dst, uint16_t dport) {
  std::vector<uint8_t> f(14 + 20 + 20, 0);
  f[12] = 0x08;
  f[14] = 0x45;
  f[14 + 3] = 40;
  f[14 + 8] = 64;
  f[14 + 9] = 6;
  std::memcpy(&f[14 + 16], dst.data(), 4);
  f[34 + 2] = uint8_t(dport >> 8);
  f[34 + 3] = uint8_t(dport);
  f[34 + 12] = 5 << 4;
  f[34 + 13] = 0x10;  // ACK: a flow's later segment
  return f;
}

// Writes flow `i`'s first-direction tuple back into a frame.
inline void restore(rte_mbuf* m, uint32_t i, const std::array<uint8_t, 4>& dst, uint16_t dport) {
  auto* p = static_cast<uint8_t*>(m->buf_addr) + m->data_off;
  const FlowAddr a = flowAddr(i);
  std::memcpy(p + 26, a.ip.data(), 4);
  std::memcpy(p + 30, dst.data(), 4);
  p[34] = uint8_t(a.port >> 8);
  p[35] = uint8_t(a.port);
  p[36] = uint8_t(dport >> 8);
  p[37] = uint8_t(dport);
  m->data_len = 54;
  m->pkt_len = 54;
}

struct Bench {
  rte_mempool* pool = nullptr;
  uint16_t port = 0;
  uint64_t packets = 2'000'000;
};

enum class Mode { kIo, kIoRestore, kPipeline };

uint64_t threadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec);
}

// The last runLoop's cycles per packet by wall clock (rdtsc), which counts
// time other processes held the core; the return value counts this
// thread's CPU time only (at the TSC rate), which a shared machine's load
// does not inflate.
double gWallCycles = 0;

// --shuffled: established rows visit flow ids through this bijection of
// [0, flows) (flows a power of two; an odd multiplier permutes residues).
bool gShuffled = false;
uint32_t visitOrder(uint32_t i, uint32_t flows) {
  return gShuffled ? (i * 2654435761u) & (flows - 1) : i;
}

// Runs `b.packets` packets round the ring; returns cycles per packet.
// `flows`: flow ids cycle through [base, base + flows); `fresh`: ids keep
// growing (every packet a new flow).
double runLoop(Bench& b, Mode mode, Worker* w, PortRole from, std::array<uint8_t, 4> dst,
               uint16_t dport, uint32_t flows, bool fresh, uint32_t base) {
  rte_mbuf* ms[kBurst];
  Verdict verdicts[kBurst];
  uint64_t done = 0;
  uint32_t next = 0;
  const uint64_t start = rte_rdtsc();
  const uint64_t cpuStart = threadCpuNs();
  while (done < b.packets) {
    const uint16_t n = rte_eth_rx_burst(b.port, 0, ms, kBurst);
    if (mode != Mode::kIo) {
      for (uint16_t i = 0; i < n; ++i) {
        restore(ms[i], base + (fresh ? next : visitOrder(next, flows)), dst, dport);
        next = fresh ? next + 1 : (next + 1 == flows ? 0 : next + 1);
      }
    }
    if (mode == Mode::kPipeline) {
      const uint64_t t = nowNs();  // once per burst, as the worker loop does
      w->process(ms, n, from, t, verdicts);
      w->expire(t, 16);
    }
    uint16_t sent = 0;
    while (sent < n) sent += rte_eth_tx_burst(b.port, 0, ms + sent, uint16_t(n - sent));
    done += n;
  }
  gWallCycles = double(rte_rdtsc() - start) / double(done);
  const double cpuCycles = double(threadCpuNs() - cpuStart) * double(rte_get_tsc_hz()) / 1e9;
  return cpuCycles / double(done);
}

struct Setup {
  std::unique_ptr<Rcu> rcu;
  std::vector<std::byte> backendMem, affinityMem;
  std::unique_ptr<BackendRegistry> backends;
  std::unique_ptr<AffinityTable> affinity;
  std::unique_ptr<ServiceTables> tables;
  std::unique_ptr<Steering> steering;
  // As the process has them; empty (no resolver here), so remote
  // backends take the gateway MAC after one lookup.
  std::unique_ptr<NextHops> nextHops;
  PipelineConfig config;
  LcoreCounters counters;
};

std::unique_ptr<Setup> makeSetup() {
  auto s = std::make_unique<Setup>();
  s->rcu = Rcu::create(2).value();
  s->rcu->registerReader(0);
  // Regions want 64-byte alignment; over-allocate and align by hand.
  auto region = [](std::vector<std::byte>& mem, size_t bytes) {
    mem.resize(bytes + 64);
    auto p = reinterpret_cast<uintptr_t>(mem.data());
    return std::span<std::byte>(mem.data() + ((64 - p % 64) % 64), bytes);
  };
  s->backends = std::make_unique<BackendRegistry>(
      BackendRegistry::createIn(region(s->backendMem, BackendRegistry::regionBytes(1024)), 1024)
          .value());
  s->affinity = std::make_unique<AffinityTable>(
      AffinityTable::createIn(region(s->affinityMem, AffinityTable::regionBytes(64)), 64).value());
  s->tables = std::make_unique<ServiceTables>(*s->rcu, *s->backends);
  s->config.nodeV4 = IpAddress::v4({192, 168, 1, 10});
  s->config.gatewayMac = MacAddr{2, 0, 0, 0, 0, 0x30};
  s->config.nodeSnatPorts = {1024, 65535};
  s->steering = std::make_unique<Steering>(1, snatAddresses(s->config));
  s->nextHops = std::make_unique<NextHops>(s->backends->capacity());
  ServiceTable t;
  for (const char* name : {"np", "cip"}) {
    Service svc;
    svc.key = {"default", name, ""};
    const bool np = std::string(name) == "np";
    svc.frontends.push_back(np ? Frontend{IpAddress::v4({192, 168, 1, 10}), kNodePort,
                                          Protocol::kTcp, FrontendScope::kNodePort}
                               : Frontend{IpAddress::v4({10, 96, 0, 10}), kClusterPort,
                                          Protocol::kTcp, FrontendScope::kClusterIp});
    // 100 remote backends: 6.4M distinct reply tuples, so 1M SNATed flows
    // find free ports.
    for (int b = 0; b < 100; ++b) {
      svc.backends.push_back({IpAddress::v4({10, 244, uint8_t(np ? 1 : 2), uint8_t(b + 1)}), 8080});
    }
    (void)t.upsert(svc);
  }
  if (auto r = s->tables->sync(t); !r) {
    std::fprintf(stderr, "sync: %s\n", r.error().message.c_str());
    std::exit(1);
  }
  return s;
}

std::unique_ptr<Worker> makeWorker(Setup& s, uint32_t capacity, std::vector<FlowSide>& sides) {
  sides.assign(capacity, FlowSide{});
  const SharedState shared{s.tables.get(), s.affinity.get(), s.steering.get(), &s.config,
                           s.nextHops.get()};
  return std::make_unique<Worker>(
      Worker::create(0, shared, Conntrack::create({capacity, {}}).value(), sides, s.counters)
          .value());
}

}  // namespace
}  // namespace sluice::dpdk

int main(int argc, char** argv) {
  using namespace sluice::dpdk;  // NOLINT(google-build-using-namespace)
  Bench b;
  int only = -1;  // --only N: run row N alone (profiling)
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--shuffled") gShuffled = true;
    if (i + 1 == argc) break;
    if (a == "--packets") b.packets = std::strtoull(argv[i + 1], nullptr, 10);
    if (a == "--only") only = std::atoi(argv[i + 1]);
  }
  const std::string prefix = "--file-prefix=sluice-bench-" + std::to_string(::getpid());
  std::vector<std::string> args = {
      "pipeline_bench", "--no-huge",           "-m",   "1024", "--no-pci", "--no-shconf",
      "--no-telemetry", "--log-level=warning", prefix, "-l",   "0"};
  std::vector<char*> argvEal;
  for (auto& a : args) argvEal.push_back(a.data());
  if (rte_eal_init(int(argvEal.size()), argvEal.data()) < 0) {
    std::fprintf(stderr, "SKIP: EAL: %s\n", rte_strerror(rte_errno));
    return 77;
  }
  const std::string runtimeDir = rte_eal_get_runtime_dir();
  b.pool = rte_pktmbuf_pool_create("bench", 2 * kInFlight - 1, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                   SOCKET_ID_ANY);
  rte_ring* ring =
      rte_ring_create("bench_loop", 2 * kInFlight, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  const int port = rte_eth_from_rings("bench_ring", &ring, 1, &ring, 1, SOCKET_ID_ANY);
  if (b.pool == nullptr || ring == nullptr || port < 0) {
    std::fprintf(stderr, "setup: %s\n", rte_strerror(rte_errno));
    return 1;
  }
  b.port = uint16_t(port);
  rte_eth_conf conf{};
  rte_eth_dev_configure(b.port, 1, 1, &conf);
  rte_eth_rx_queue_setup(b.port, 0, 1024, SOCKET_ID_ANY, nullptr, b.pool);
  rte_eth_tx_queue_setup(b.port, 0, 1024, SOCKET_ID_ANY, nullptr);
  rte_eth_dev_start(b.port);

  const std::array<uint8_t, 4> node = {192, 168, 1, 10}, vip = {10, 96, 0, 10};
  const std::vector<uint8_t> frame = templateFrame(node, kNodePort);
  for (uint32_t i = 0; i < kInFlight; ++i) {
    rte_mbuf* m = rte_pktmbuf_alloc(b.pool);
    std::memcpy(rte_pktmbuf_append(m, uint16_t(frame.size())), frame.data(), frame.size());
    rte_ring_enqueue(ring, m);
  }

  auto setup = makeSetup();
  const double hz = double(rte_get_tsc_hz());
  std::printf(
      "DPDK pipeline, one lcore, net_ring loop, bursts of %u, %llu packets a row, TSC %.2f GHz\n",
      kBurst, static_cast<unsigned long long>(b.packets), hz / 1e9);
  std::printf("established rows visit their flows %s\n",
              gShuffled ? "in a pseudo-random order (--shuffled)" : "in the order of their entries");
  const double io = runLoop(b, Mode::kIo, nullptr, PortRole::kUplink, node, kNodePort, 1, false, 0);
  const double floor =
      runLoop(b, Mode::kIoRestore, nullptr, PortRole::kUplink, node, kNodePort, 1024, false, 0);
  const double floorWall = gWallCycles;
  std::printf(
      "cycles/pkt: this thread's CPU time at the TSC rate (wall-clock rdtsc, which\n"
      "includes time other processes held the core, in brackets)\n");
  std::printf("%-40s %8.1f cycles/pkt %8.2f Mpps\n", "io (testpmd-style floor)", io, hz / io / 1e6);

  std::printf("%-40s %8.1f cycles/pkt %8.2f Mpps  [wall %.1f]\n",
              "io+restore (floor of the rows below)", floor, hz / floor / 1e6, floorWall);
  struct Row {
    const char* name;
    bool nodePort;
    bool fresh;
    uint32_t flows;
  };
  const Row rows[] = {
      {"NodePort full NAT, established, 1k flows", true, false, 1024},
      {"NodePort full NAT, established, 1M flows", true, false, 1u << 20},
      {"NodePort full NAT, first packet, 1k table", true, true, 1024},
      {"NodePort full NAT, first packet, 1M table", true, true, 1u << 20},
      {"ClusterIP DNAT, established, 1k flows", false, false, 1024},
      {"ClusterIP DNAT, established, 1M flows", false, false, 1u << 20},
      {"ClusterIP DNAT, first packet, 1k table", false, true, 1024},
      {"ClusterIP DNAT, first packet, 1M table", false, true, 1u << 20},
  };
  uint32_t base = 0;
  int index = -1;
  for (const Row& r : rows) {
    if (++index != only && only >= 0) continue;
    std::vector<FlowSide> sides;
    auto w = makeWorker(*setup, r.flows, sides);
    const auto dst = r.nodePort ? node : vip;
    const uint16_t dport = r.nodePort ? kNodePort : kClusterPort;
    const PortRole from = r.nodePort ? PortRole::kUplink : PortRole::kKernel;
    // Untimed: open every flow (established rows) or fill the table (first
    // packet rows, whose timed flows then all evict).
    const uint64_t total = b.packets;
    b.packets = r.flows;
    runLoop(b, Mode::kPipeline, w.get(), from, dst, dport, r.flows, true, base);
    b.packets = total;
    const uint32_t timedBase = r.fresh ? base + r.flows + kInFlight : base;
    const double c =
        runLoop(b, Mode::kPipeline, w.get(), from, dst, dport, r.flows, r.fresh, timedBase);
    const sluice::ConntrackStats st = w->conntrack().stats();
    std::printf(
        "%-40s %8.1f cycles/pkt %8.2f Mpps  over floor %6.1f  (x%.2f of io+restore)  [wall %.1f]"
        "  SNAT collisions/insert %.2f\n",
        r.name, c, hz / c / 1e6, c - floor, c / floor, gWallCycles,
        double(st.insertCollisions) / double(std::max<uint64_t>(1, st.inserts)));
    base += uint32_t(r.flows + b.packets + 2 * kInFlight);
    setup->rcu->quiescent(0);
  }
  std::printf("drops: ");
  for (size_t r = 1; r < sluice::kDropReasonCount; ++r) {
    if (uint64_t n = setup->counters.drops[r].get()) {
      std::printf("%s=%llu ",
                  std::string(sluice::toString(static_cast<sluice::DropReason>(r))).c_str(),
                  static_cast<unsigned long long>(n));
    }
  }
  std::printf("\n");
  rte_eth_dev_stop(b.port);
  rte_eal_cleanup();
  std::error_code ec;
  std::filesystem::remove_all(runtimeDir, ec);
  return 0;
}
