// Behaviours of the DPDK pipeline over many flows and changes: backend
// selection (hash, Maglev, affinity, traffic policies, terminating
// endpoints), what established flows keep when the service changes, SNAT
// port choice, the ARP/ND responder and the exception path's priorities.
// Each test builds its own pipeline from fresh tables.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "dataplane/maglev.h"
#include "dataplane/mode_description.h"
#include "dataplane/service_diff.h"
#include "tests/bpf/packet_cases.h"
#include "tests/dpdk/pipeline_fixture.h"

namespace sluice::dpdk::testing {
namespace {

using sluice::testing::backend;
using sluice::testing::buildPacket;
using sluice::testing::frontend;
using sluice::testing::ip;
using sluice::testing::kTcpAck;
using sluice::testing::PacketSpec;
using sluice::testing::parsePacket;
using sluice::testing::service;
using sluice::testing::tcp;
using sluice::testing::udp;

constexpr const char* kPod = "10.0.0.2";
constexpr const char* kPod6 = "fd00::2";
constexpr uint64_t kS = 1'000'000'000ULL;
constexpr uint64_t kT0 = 1'000 * kS;

std::vector<Backend> fourBackends(bool nodeLocal = false) {
  return {backend("10.0.2.1", 8080, BackendState::kActive, nodeLocal),
          backend("10.0.2.2", 8080, BackendState::kActive, nodeLocal),
          backend("10.0.2.3", 8080, BackendState::kActive, nodeLocal),
          backend("10.0.2.4", 8080, BackendState::kActive, nodeLocal)};
}

class PipelineSelectionTest : public ::testing::Test {
 protected:
  void start(uint32_t workers = 1, PipelineConfig config = tableConfig(),
             uint32_t conntrackCapacity = 4096) {
    TestPipeline::Options o;
    o.workers = workers;
    o.config = config;
    o.conntrackCapacity = conntrackCapacity;
    p_ = TestPipeline::create(o);
    ASSERT_NE(p_, nullptr);
  }
  void programOne(const Service& s) {
    table_ = ServiceTable();
    ASSERT_TRUE(table_.upsert(s).ok());
    p_->program(table_);
  }
  void change(const Service& after) {
    ServiceTable next = table_;
    ASSERT_TRUE(next.upsert(after).ok());
    auto r = p_->tables().apply(ServiceDiff::between(table_, next));
    ASSERT_TRUE(r.ok()) << r.error().message;
    table_ = next;
  }
  // Where a pod's frame went: "addr:port" after DNAT, or the action.
  std::string backendOf(const PacketSpec& spec, PortRole from = PortRole::kKernel) {
    now_ += 1'000'000;
    const RunResult r = p_->run(buildPacket(spec), from, now_);
    if (r.verdict.action != Action::kTxUplink && r.verdict.action != Action::kTxKernel) {
      return std::string("verdict ") + std::to_string(static_cast<int>(r.verdict.action)) + " " +
             std::string(sluice::toString(r.verdict.reason));
    }
    const auto v = parsePacket(r.frame);
    return Endpoint{v.dst, v.dport}.toString();
  }

  std::unique_ptr<TestPipeline> p_;
  ServiceTable table_;
  uint64_t now_ = kT0;
};

// New flows spread over every backend; adding backends moves none of the
// established ones (conntrack holds them).
TEST_F(PipelineSelectionTest, NewFlowsSpreadAndEstablishedFlowsKeepTheirBackend) {
  start();
  programOne(service("web", Protocol::kTcp, {frontend("10.96.1.1", 80)}, fourBackends()));
  std::map<uint16_t, std::string> chosen;
  std::set<std::string> used;
  for (uint16_t port = 30000; port < 30064; ++port) {
    chosen[port] = backendOf(tcp(kPod, port, "10.96.1.1", 80));
    used.insert(chosen[port]);
  }
  EXPECT_EQ(used.size(), 4u);
  auto more = fourBackends();
  more.push_back(backend("10.0.2.5", 8080));
  more.push_back(backend("10.0.2.6", 8080));
  change(service("web", Protocol::kTcp, {frontend("10.96.1.1", 80)}, more));
  for (const auto& [port, be] : chosen) {
    EXPECT_EQ(backendOf(tcp(kPod, port, "10.96.1.1", 80, kTcpAck)), be) << "flow from " << port;
  }
}

// A terminating backend keeps its flows and gets no new ones.
TEST_F(PipelineSelectionTest, TerminatingBackendsGetNoNewFlowsButKeepEstablishedOnes) {
  start();
  programOne(service("web", Protocol::kTcp, {frontend("10.96.1.1", 80)}, fourBackends()));
  const std::string first = backendOf(tcp(kPod, 31000, "10.96.1.1", 80));
  auto backends = fourBackends();
  for (Backend& b : backends) {
    if (Endpoint{b.address, b.port}.toString() == first) b.state = BackendState::kTerminating;
  }
  change(service("web", Protocol::kTcp, {frontend("10.96.1.1", 80)}, backends));
  EXPECT_EQ(backendOf(tcp(kPod, 31000, "10.96.1.1", 80, kTcpAck)), first);
  for (uint16_t port = 31001; port < 31041; ++port) {
    EXPECT_NE(backendOf(tcp(kPod, port, "10.96.1.1", 80)), first) << "new flow from " << port;
  }
}

// A removed backend's UDP flow (no RST ever ends it) chooses again at once.
TEST_F(PipelineSelectionTest, RemovedBackendsUdpFlowMovesAtOnce) {
  start();
  programOne(service("dns", Protocol::kUdp, {frontend("10.96.1.53", 53, Protocol::kUdp)},
                     {backend("10.0.3.1", 53), backend("10.0.3.2", 53)}));
  const PacketSpec q = udp(kPod, 6000, "10.96.1.53", 53);
  const std::string first = backendOf(q);
  const char* other = first == "10.0.3.1:53" ? "10.0.3.2" : "10.0.3.1";
  change(service("dns", Protocol::kUdp, {frontend("10.96.1.53", 53, Protocol::kUdp)},
                 {backend(other, 53)}));
  const uint64_t reselect = p_->counter("event.svc_reselect");
  EXPECT_EQ(backendOf(q), std::string(other) + ":53");
  EXPECT_EQ(p_->counter("event.svc_reselect"), reselect + 1);
}

// 15 connections (new source ports) from one client, spread over two
// workers, all reach one backend; other clients still spread.
TEST_F(PipelineSelectionTest, ClientIpAffinityHoldsAcrossWorkersForFifteenConnections) {
  start(2);
  Service s = service("sticky", Protocol::kTcp, {frontend("10.96.1.2", 80)}, fourBackends());
  s.affinity.clientIp = true;
  s.affinity.timeoutSeconds = 60;
  programOne(s);
  const std::string first = backendOf(tcp(kPod, 32000, "10.96.1.2", 80));
  for (uint16_t port = 32001; port < 32015; ++port) {
    EXPECT_EQ(backendOf(tcp(kPod, port, "10.96.1.2", 80)), first) << "connection " << port;
  }
  EXPECT_GE(p_->counter("event.affinity_hit"), 14u);
  EXPECT_GT(p_->counter("event.handoff"), 0u) << "the 15 connections should use both workers";
  std::set<std::string> used;
  for (int c = 10; c < 74; ++c) {
    const std::string client = "10.0.9." + std::to_string(c);
    used.insert(backendOf(tcp(client.c_str(), 32000, "10.96.1.2", 80)));
  }
  EXPECT_GT(used.size(), 1u);
}

// After the timeout (idle), the flow hash decides again.
TEST_F(PipelineSelectionTest, AffinityExpiresAfterItsTimeout) {
  start();
  Service s = service("sticky", Protocol::kTcp, {frontend("10.96.1.2", 80)}, fourBackends());
  s.affinity.clientIp = true;
  s.affinity.timeoutSeconds = 1;
  programOne(s);
  const std::string first = backendOf(tcp(kPod, 33100, "10.96.1.2", 80));
  std::set<std::string> after;
  for (uint16_t port = 33101; port < 33133; ++port) {
    now_ += 2 * kS;  // each new connection comes after the last one's affinity expired
    after.insert(backendOf(tcp(kPod, port, "10.96.1.2", 80)));
  }
  EXPECT_GT(after.size(), 1u) << "expired affinity must not pin " << first;
}

// An affinity entry naming a backend that started terminating is not used.
TEST_F(PipelineSelectionTest, AffinityToABackendThatStartedTerminatingIsDropped) {
  start();
  Service s = service("sticky", Protocol::kTcp, {frontend("10.96.1.2", 80)}, fourBackends());
  s.affinity.clientIp = true;
  programOne(s);
  const std::string first = backendOf(tcp(kPod, 33000, "10.96.1.2", 80));
  for (Backend& b : s.backends) {
    if (Endpoint{b.address, b.port}.toString() == first) b.state = BackendState::kTerminating;
  }
  change(s);
  EXPECT_NE(backendOf(tcp(kPod, 33001, "10.96.1.2", 80)), first);
}

// Maglev: each flow goes where the dataplane/ builder's table says for the
// selection hash, with weights.
TEST_F(PipelineSelectionTest, MaglevSelectionMatchesTheUserspaceTable) {
  start();
  Service s =
      service("mag", Protocol::kTcp, {frontend("10.96.1.3", 80)},
              {backend("10.0.4.1", 8080), backend("10.0.4.2", 8080), backend("10.0.4.3", 8080),
               backend("10.0.4.4", 8080), backend("10.0.4.5", 8080)});
  s.algorithm = LbAlgorithm::kMaglev;
  s.maglevTableSize = 251;
  s.backends[4].weight = 3;
  programOne(s);
  auto builder = MaglevBuilder::create(251);
  ASSERT_TRUE(builder.ok());
  std::vector<MaglevBackend> mb;
  for (const Backend& b : s.backends)
    mb.push_back({Endpoint{b.address, b.port}.toString(), b.weight});
  auto table = builder->build(mb);
  ASSERT_TRUE(table.ok());
  for (uint16_t port = 34000; port < 34200; ++port) {
    const FlowTuple t{ip(kPod), ip("10.96.1.3"), port, 80, Protocol::kTcp};
    const uint32_t index = table->backendFor(selectionHash(t));
    ASSERT_NE(index, MaglevTable::kNoBackend);
    EXPECT_EQ(backendOf(tcp(kPod, port, "10.96.1.3", 80)), mb[index].key) << "port " << port;
  }
}

// A backend change rewrites few Maglev slots (rebuild(), not a new table).
TEST_F(PipelineSelectionTest, MaglevBackendChangeMovesFewSlots) {
  start();
  Service s = service("mag", Protocol::kTcp, {frontend("10.96.1.3", 80)}, fourBackends());
  s.algorithm = LbAlgorithm::kMaglev;
  s.maglevTableSize = 65537;
  programOne(s);
  auto more = s;
  more.backends.push_back(backend("10.0.2.5", 8080));
  change(more);
  const ServiceEntry* e = p_->tables().services().at(s.key).get();
  // Adding a fifth backend hands it ~1/5 of the slots and moves < 1% more.
  EXPECT_GT(e->maglevChangedSlots, 65537u / 5 - 700);
  EXPECT_LT(e->maglevChangedSlots, 65537u / 5 + 700);
}

// internalTrafficPolicy Local: only node-local backends (behind the kernel).
TEST_F(PipelineSelectionTest, InternalTrafficPolicyLocalUsesOnlyNodeLocalBackends) {
  start();
  Service s = service("local", Protocol::kTcp, {frontend("10.96.1.4", 80)},
                      {backend("10.0.5.1", 8080, BackendState::kActive, true),
                       backend("10.0.5.2", 8080), backend("10.0.5.3", 8080)});
  s.internalPolicy = TrafficPolicy::kLocal;
  programOne(s);
  for (uint16_t port = 35000; port < 35032; ++port) {
    EXPECT_EQ(backendOf(tcp(kPod, port, "10.96.1.4", 80)), "10.0.5.1:8080");
  }
}

// Dual-stack frontends use the backends of their own family.
TEST_F(PipelineSelectionTest, DualStackFrontendsUseBackendsOfTheirOwnFamily) {
  start();
  programOne(service("dual", Protocol::kTcp,
                     {frontend("10.96.1.5", 80), frontend("fd00:96::1:5", 80)},
                     {backend("10.0.6.1", 8080), backend("fd00:6::1", 8080)}));
  for (uint16_t port = 36000; port < 36016; ++port) {
    EXPECT_EQ(backendOf(tcp(kPod, port, "10.96.1.5", 80)), "10.0.6.1:8080");
    EXPECT_EQ(backendOf(tcp(kPod6, port, "fd00:96::1:5", 80)), "[fd00:6::1]:8080");
  }
}

// Two outside clients with the same source port towards one backend would
// share a reply tuple after SNAT: the second gets another port of the
// range, and replies to each port reach their own client.
TEST_F(PipelineSelectionTest, SnatPortCollisionPicksAnotherPortAndRepliesFindTheirClient) {
  PipelineConfig c = tableConfig();
  c.nodeSnatPorts = {61000, 65535};
  start(1, c);
  programOne(service("np", Protocol::kTcp,
                     {frontend("192.168.1.10", 30080, Protocol::kTcp, FrontendScope::kNodePort)},
                     {backend("10.0.1.5", 8080)}));
  const auto a = p_->run(buildPacket(tcp("203.0.113.50", 43000, "192.168.1.10", 30080)),
                         PortRole::kUplink, ++now_);
  const auto b = p_->run(buildPacket(tcp("203.0.113.51", 43000, "192.168.1.10", 30080)),
                         PortRole::kUplink, ++now_);
  const auto va = parsePacket(a.frame), vb = parsePacket(b.frame);
  ASSERT_EQ(a.verdict.action, Action::kTxUplink);
  ASSERT_EQ(b.verdict.action, Action::kTxUplink);
  EXPECT_GE(va.sport, 61000);
  EXPECT_GE(vb.sport, 61000);
  EXPECT_NE(va.sport, vb.sport);
  for (const auto& [port, client] :
       {std::pair<uint16_t, const char*>{va.sport, "203.0.113.50"}, {vb.sport, "203.0.113.51"}}) {
    const auto reply = p_->run(buildPacket(tcp("10.0.1.5", 8080, "192.168.1.10", port,
                                               sluice::testing::kTcpSyn | kTcpAck)),
                               PortRole::kUplink, ++now_);
    const auto v = parsePacket(reply.frame);
    EXPECT_EQ(v.dst.toString(), client) << "reply to SNAT port " << port;
    EXPECT_EQ(v.dport, 43000);
    EXPECT_EQ(v.src.toString(), "192.168.1.10");
    EXPECT_EQ(v.sport, 30080);
  }
}

// A client whose port is a NodePort of the node address does not keep it:
// the backend's reply to node:30080 would read as a new request.
TEST_F(PipelineSelectionTest, SnatNeverUsesAPortThatIsAFrontendOfTheNodeAddress) {
  start();
  programOne(service("np", Protocol::kTcp,
                     {frontend("192.168.1.10", 30080, Protocol::kTcp, FrontendScope::kNodePort)},
                     {backend("10.0.1.5", 8080)}));
  const auto r = p_->run(buildPacket(tcp("203.0.113.60", 30080, "192.168.1.10", 30080)),
                         PortRole::kUplink, ++now_);
  const auto v = parsePacket(r.frame);
  EXPECT_EQ(v.src.toString(), "192.168.1.10");
  EXPECT_NE(v.sport, 30080);
  EXPECT_FALSE(sluice::testing::checksumError(r.frame));
}

// Outside client -> NodePort -> a backend on this node (eTP=Cluster): SNAT
// to the kernel-side address, so the pod's reply comes back through the
// TAP; its reply leaves on the uplink to the client's MAC.
TEST_F(PipelineSelectionTest, LocalBackendOfAClusterPolicyNodePortIsSnatedToTheKernelSide) {
  start();
  programOne(service("np", Protocol::kTcp,
                     {frontend("192.168.1.10", 30080, Protocol::kTcp, FrontendScope::kNodePort)},
                     {backend("10.244.0.5", 8080, BackendState::kActive, true)}));
  PacketSpec syn = tcp("203.0.113.70", 44000, "192.168.1.10", 30080);
  syn.srcMac = {0x02, 0xaa, 0, 0, 0, 1};
  const auto in = p_->run(buildPacket(syn), PortRole::kUplink, ++now_);
  ASSERT_EQ(in.verdict.action, Action::kTxKernel);
  const auto v = parsePacket(in.frame);
  EXPECT_EQ(v.src.toString(), "169.254.42.1");
  EXPECT_EQ(v.dst.toString(), "10.244.0.5");
  const auto out = p_->run(buildPacket(tcp("10.244.0.5", 8080, "169.254.42.1", v.sport,
                                           sluice::testing::kTcpSyn | kTcpAck)),
                           PortRole::kKernel, ++now_);
  ASSERT_EQ(out.verdict.action, Action::kTxUplink);
  const auto w = parsePacket(out.frame);
  EXPECT_EQ((Endpoint{w.src, w.sport}.toString()), "192.168.1.10:30080");
  EXPECT_EQ((Endpoint{w.dst, w.dport}.toString()), "203.0.113.70:44000");
  EXPECT_EQ(w.dstMac, syn.srcMac);
  EXPECT_EQ(w.srcMac, kUplinkMac);
}

// FastMod (the selection's % without a division) is % for every divisor
// the tables use: small sets, Maglev's primes, the extremes.
// Nodes must agree on it (each maps a flow to the same Maglev slot), so
// its value is pinned to the byte layout service_tables.h gives.
TEST(SelectionHashTest, IsCrc32cOfTheDocumentedBytes) {
  for (const FlowTuple& t :
       {FlowTuple{ip("10.0.0.7"), ip("10.96.0.10"), 40001, 80, Protocol::kTcp},
        FlowTuple{ip("fd00::7"), ip("fd00:96::a"), 0x1234, 0xfe01, Protocol::kUdp}}) {
    std::array<uint8_t, 37> b{};
    std::memcpy(b.data(), t.src.bytes().data(), t.src.bytes().size());
    std::memcpy(b.data() + 16, t.dst.bytes().data(), t.dst.bytes().size());
    b[32] = static_cast<uint8_t>(t.srcPort >> 8);
    b[33] = static_cast<uint8_t>(t.srcPort);
    b[34] = static_cast<uint8_t>(t.dstPort >> 8);
    b[35] = static_cast<uint8_t>(t.dstPort);
    b[36] = static_cast<uint8_t>(t.protocol);
    EXPECT_EQ(selectionHash(t), crc32c(b.data(), b.size(), 0x5eed)) << t.src.toString();
  }
}

TEST(FastModTest, IsTheRemainder) {
  std::mt19937 rng(7);
  std::vector<uint32_t> divisors = {1, 2, 3, 7, 100, 251, 4093, 65537, 1000003, 0x7fffffff, UINT32_MAX};
  for (int i = 0; i < 200; ++i) divisors.push_back(1 + rng() % 70000);
  for (uint32_t d : divisors) {
    const FastMod mod(d);
    for (uint32_t a : {0u, 1u, d - 1, d, d + 1, UINT32_MAX, UINT32_MAX - 1}) {
      ASSERT_EQ(mod.of(a), a % d) << a << " % " << d;
    }
    for (int k = 0; k < 2000; ++k) {
      const uint32_t a = static_cast<uint32_t>(rng());
      ASSERT_EQ(mod.of(a), a % d) << a << " % " << d;
    }
  }
}

// A smallest table wholly in use: a burst's first frame opens a flow whose
// insert evicts (after its second chances) an entry the burst's second
// frame had matched. That frame is looked up again and takes its own
// service's backend, not that of the flow now in the recycled entry.
TEST_F(PipelineSelectionTest, AnEntryEvictedDuringItsBurstIsLookedUpAgain) {
  constexpr uint32_t kCapacity = Worker::kMinConntrackCapacity;
  start(1, tableConfig(), kCapacity);
  ASSERT_TRUE(table_.upsert(service("a", Protocol::kTcp, {frontend("10.96.1.1", 80)},
                                    {backend("10.0.2.1", 8080)}))
                  .ok());
  ASSERT_TRUE(table_.upsert(service("b", Protocol::kTcp, {frontend("10.96.1.2", 80)},
                                    {backend("10.0.2.2", 8080)}))
                  .ok());
  p_->program(table_);
  for (uint16_t i = 0; i < kCapacity; ++i) {
    ASSERT_EQ(backendOf(tcp(kPod, uint16_t(40000 + i), "10.96.1.1", 80)), "10.0.2.1:8080");
  }
  for (uint16_t i = 0; i < kCapacity; ++i) {  // every entry used
    ASSERT_EQ(backendOf(tcp(kPod, uint16_t(40000 + i), "10.96.1.1", 80, kTcpAck)),
              "10.0.2.1:8080");
  }
  // The oldest kMaxSecondChances flows get a second chance; the next goes.
  const auto victimPort = static_cast<uint16_t>(40000 + Conntrack::kMaxSecondChances);
  const uint64_t evictions = p_->worker(0).conntrack().stats().evictions;
  const auto out = p_->runBurst({buildPacket(tcp(kPod, 50000, "10.96.1.2", 80)),
                                 buildPacket(tcp(kPod, victimPort, "10.96.1.1", 80, kTcpAck))},
                                PortRole::kKernel, ++now_);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(p_->worker(0).conntrack().stats().evictions, evictions + 2)
      << "the new flow evicted the second frame's entry, which came back as a new one";
  for (size_t i = 0; i < 2; ++i) ASSERT_EQ(out[i].verdict.action, Action::kTxUplink) << i;
  const auto first = parsePacket(out[0].frame), second = parsePacket(out[1].frame);
  EXPECT_EQ((Endpoint{first.dst, first.dport}).toString(), "10.0.2.2:8080");
  EXPECT_EQ((Endpoint{second.dst, second.dport}).toString(), "10.0.2.1:8080");
  EXPECT_EQ(second.sport, victimPort);
  EXPECT_EQ(backendOf(tcp(kPod, victimPort, "10.96.1.1", 80, kTcpAck)), "10.0.2.1:8080");
  EXPECT_EQ(backendOf(tcp(kPod, 50000, "10.96.1.2", 80, kTcpAck)), "10.0.2.2:8080");
}

// One burst of 64 first packets in which some flows come twice (a SYN and
// its retransmission, a SYN and a data segment): each flow gets one
// conntrack entry, and every frame of a flow the same backend and SNAT
// port, however the insert learned the flow was new (the burst lookup's
// proof, or a check against the flows this burst already opened).
TEST_F(PipelineSelectionTest, RepeatedFlowsInOneBurstShareOneEntryAndTranslation) {
  start();
  programOne(service("np", Protocol::kTcp,
                     {frontend("192.168.1.10", 30080, Protocol::kTcp, FrontendScope::kNodePort)},
                     fourBackends()));
  std::vector<std::vector<uint8_t>> frames;
  std::vector<uint16_t> clientPort;
  for (uint16_t i = 0; frames.size() < 64; ++i) {
    const uint16_t port = static_cast<uint16_t>(45000 + i);
    frames.push_back(buildPacket(tcp("203.0.113.80", port, "192.168.1.10", 30080)));
    clientPort.push_back(port);
    if (i % 5 == 2 && frames.size() < 64) {  // the same flow again, later in the burst
      PacketSpec again = tcp("203.0.113.80", port, "192.168.1.10", 30080, kTcpAck);
      again.payload = {'x'};
      frames.push_back(buildPacket(again));
      clientPort.push_back(port);
    }
  }
  const auto out = p_->runBurst(frames, PortRole::kUplink, ++now_);
  std::map<uint16_t, std::string> translation;
  size_t repeats = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_EQ(out[i].verdict.action, Action::kTxUplink) << i;
    const auto v = parsePacket(out[i].frame);
    const std::string t = Endpoint{v.src, v.sport}.toString() + " -> " + Endpoint{v.dst, v.dport}.toString();
    auto [it, inserted] = translation.emplace(clientPort[i], t);
    if (!inserted) {
      ++repeats;
      EXPECT_EQ(it->second, t) << "frame " << i << " of client port " << clientPort[i];
    }
  }
  EXPECT_GE(repeats, 10u);
  EXPECT_EQ(p_->worker(0).conntrack().size(), translation.size());
  EXPECT_EQ(p_->counter("event.svc_new"), translation.size());
  EXPECT_EQ(p_->counter("event.svc_established"), repeats);
}

// In a large table the pipeline plans every first packet of a burst
// (service, backend, SNAT address) before inserting any; in a small one it
// handles each in turn. Either way, a burst mixing new flows, repeats,
// refused flows (no endpoints: a TCP RST built in the frame), a UDP flow
// and frames for no service must come out exactly as the same frames sent
// one burst each: same verdicts, same bytes, same flows, and each frame
// counted once.
class BurstEquivalenceTest : public ::testing::TestWithParam<bool> {};

TEST_P(BurstEquivalenceTest, ABurstGivesWhatTheSameFramesGiveOneByOne) {
  const bool planAhead = GetParam();
  ServiceTable table;
  ASSERT_TRUE(table.upsert(service("np", Protocol::kTcp,
                                   {frontend("192.168.1.10", 30080, Protocol::kTcp,
                                             FrontendScope::kNodePort)},
                                   fourBackends()))
                  .ok());
  ASSERT_TRUE(table.upsert(service("empty", Protocol::kTcp,
                                   {frontend("192.168.1.10", 30081, Protocol::kTcp,
                                             FrontendScope::kNodePort)},
                                   {}))
                  .ok());
  ASSERT_TRUE(table.upsert(service("dns", Protocol::kUdp,
                                   {frontend("192.168.1.10", 30053, Protocol::kUdp,
                                             FrontendScope::kNodePort)},
                                   fourBackends()))
                  .ok());
  std::vector<std::vector<uint8_t>> frames;
  std::array<uint64_t, 6> kinds{};  // frames of each case below
  for (uint16_t i = 0; frames.size() < 64; ++i) {
    const auto port = static_cast<uint16_t>(46000 + i);
    ++kinds[i % 6];
    switch (i % 6) {
      case 0:
      case 1: frames.push_back(buildPacket(tcp("203.0.113.7", port, "192.168.1.10", 30080))); break;
      case 2: frames.push_back(buildPacket(tcp("203.0.113.7", port, "192.168.1.10", 30081))); break;
      case 3: frames.push_back(buildPacket(udp("203.0.113.7", port, "192.168.1.10", 30053))); break;
      case 4: frames.push_back(buildPacket(tcp("203.0.113.7", port, "192.168.1.10", 22))); break;
      case 5:  // a flow of this burst again
        frames.push_back(buildPacket(
            tcp("203.0.113.7", static_cast<uint16_t>(port - 5), "192.168.1.10", 30080, kTcpAck)));
        break;
    }
  }
  TestPipeline::Options o;
  o.config.planAheadMinCapacity = planAhead ? 0 : o.conntrackCapacity + 1;
  auto burst = TestPipeline::create(o);
  auto single = TestPipeline::create(o);
  ASSERT_NE(burst, nullptr);
  ASSERT_NE(single, nullptr);
  burst->program(table);
  single->program(table);

  const auto together = burst->runBurst(frames, PortRole::kUplink, kT0);
  ASSERT_EQ(together.size(), frames.size());
  std::set<Action> actions;
  for (size_t i = 0; i < frames.size(); ++i) {
    const auto alone = single->runBurst({frames[i]}, PortRole::kUplink, kT0);
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_EQ(together[i].verdict.action, alone[0].verdict.action) << "frame " << i;
    EXPECT_EQ(together[i].verdict.reason, alone[0].verdict.reason) << "frame " << i;
    EXPECT_EQ(together[i].frame, alone[0].frame) << "frame " << i;
    actions.insert(together[i].verdict.action);
  }
  // The burst did exercise every kind: translated, refused back to the
  // client, passed to the kernel.
  EXPECT_TRUE(actions.count(Action::kTxUplink));
  EXPECT_TRUE(actions.count(Action::kException));
  EXPECT_EQ(burst->worker(0).conntrack().size(), single->worker(0).conntrack().size());
  for (const char* c : {"event.svc_new", "event.svc_established", "event.snat",
                        "event.reject_tcp_rst", "drop.no_backend", "event.pass_non_service"}) {
    EXPECT_EQ(burst->counter(c), single->counter(c)) << c;
  }
  // And each frame was handled once: the counts are those of the frames.
  EXPECT_EQ(burst->counter("event.svc_new"), kinds[0] + kinds[1] + kinds[3]);
  EXPECT_EQ(burst->counter("event.svc_established"), kinds[5]);
  EXPECT_EQ(burst->counter("event.reject_tcp_rst"), kinds[2]);
  EXPECT_EQ(burst->counter("drop.no_backend"), kinds[2]);
  EXPECT_EQ(burst->counter("event.pass_non_service"), kinds[4]);
  EXPECT_EQ(burst->worker(0).conntrack().size(), kinds[0] + kinds[1] + kinds[3]);
}

INSTANTIATE_TEST_SUITE_P(PlanAhead, BurstEquivalenceTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("Planned") : std::string("InTurn");
                         });

// ARP: LoadBalancer/externalIP addresses are answered on the uplink;
// ClusterIPs and the kernel-side SNAT address only towards the kernel;
// anything else passes (the kernel answers for the node's own addresses).
TEST_F(PipelineSelectionTest, ArpIsAnsweredForServiceAddressesOnTheRightSide) {
  start();
  programOne(service("lb", Protocol::kTcp,
                     {frontend("10.96.1.9", 80),
                      frontend("198.51.100.10", 80, Protocol::kTcp, FrontendScope::kLoadBalancer)},
                     {backend("10.0.1.8", 8080)}));
  auto arp = [](const char* target) {
    std::vector<uint8_t> f = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0xbb, 0,   0,
                              0,    1,    0x08, 0x06, 0,    1,    0x08, 0x00, 6,   4,
                              0,    1,    0x02, 0xbb, 0,    0,    0,    1,    192, 168,
                              1,    77,   0,    0,    0,    0,    0,    0};
    const IpAddress t = ip(target);
    f.insert(f.end(), t.bytes().begin(), t.bytes().end());
    return f;
  };
  const auto lb = p_->run(arp("198.51.100.10"), PortRole::kUplink, ++now_);
  ASSERT_EQ(lb.verdict.action, Action::kTxUplink);
  EXPECT_EQ(lb.frame[21], 2) << "an ARP reply";
  EXPECT_TRUE(std::equal(kUplinkMac.begin(), kUplinkMac.end(), lb.frame.begin() + 22));
  const std::vector<uint8_t> asker = {0x02, 0xbb, 0, 0, 0, 1};
  EXPECT_EQ(std::vector<uint8_t>(lb.frame.begin(), lb.frame.begin() + 6), asker);
  EXPECT_EQ(p_->run(arp("10.96.1.9"), PortRole::kUplink, ++now_).verdict.action,
            Action::kExceptionPriority);
  const auto cip = p_->run(arp("10.96.1.9"), PortRole::kKernel, ++now_);
  ASSERT_EQ(cip.verdict.action, Action::kTxKernel);
  EXPECT_TRUE(std::equal(kRouterMac.begin(), kRouterMac.end(), cip.frame.begin() + 22));
  EXPECT_EQ(p_->run(arp("169.254.42.1"), PortRole::kKernel, ++now_).verdict.action,
            Action::kTxKernel);
  EXPECT_EQ(p_->run(arp("192.168.1.1"), PortRole::kKernel, ++now_).verdict.action,
            Action::kTxUplink);
  EXPECT_EQ(p_->counter("event.arp_reply"), 3u);
}

// IPv6 neighbor solicitation for a LoadBalancer address: a solicited
// advertisement with our MAC, hop limit 255, a valid ICMPv6 checksum.
TEST_F(PipelineSelectionTest, NeighborSolicitationForALoadBalancerAddressIsAdvertised) {
  start();
  programOne(
      service("lb6", Protocol::kTcp,
              {frontend("2001:db8:100::10", 80, Protocol::kTcp, FrontendScope::kLoadBalancer)},
              {backend("fd00:1::8", 8080)}));
  PacketSpec ns;
  ns.src = ip("2001:db8::7");
  ns.dst = ip("ff02::1:ff00:10");
  ns.proto = Protocol::kIcmpV6;
  ns.icmpType = 135;
  ns.ttl = 255;
  ns.srcMac = {0x02, 0xcc, 0, 0, 0, 1};
  const IpAddress target = ip("2001:db8:100::10");
  ns.payload.assign(target.bytes().begin(), target.bytes().end());
  std::vector<uint8_t> f = buildPacket(ns);
  // The builder writes 4 zero bytes after type/code/checksum: NS's reserved field.
  const auto r = p_->run(f, PortRole::kUplink, ++now_);
  ASSERT_EQ(r.verdict.action, Action::kTxUplink);
  const auto v = parsePacket(r.frame);
  EXPECT_EQ(v.icmpType, 136);
  EXPECT_EQ(v.src.toString(), "2001:db8:100::10");
  EXPECT_EQ(v.dst.toString(), "2001:db8::7");
  EXPECT_EQ(r.frame[14 + 7], 255);
  EXPECT_FALSE(sluice::testing::checksumError(r.frame));
  EXPECT_TRUE(std::equal(kUplinkMac.begin(), kUplinkMac.end(), r.frame.end() - 6));
}

// What the exception path must never starve goes on its priority ring.
TEST_F(PipelineSelectionTest, ControlPlaneTrafficTakesThePriorityExceptionRing) {
  start();
  programOne(service("x", Protocol::kTcp, {frontend("10.96.9.9", 80)}, {}));
  EXPECT_EQ(p_->run(buildPacket(tcp("192.168.1.1", 179, "192.168.1.10", 40000)), PortRole::kUplink,
                    ++now_)
                .verdict.action,
            Action::kExceptionPriority)
      << "BGP";
  EXPECT_EQ(p_->run(buildPacket(udp("192.168.1.1", 49152, "192.168.1.10", 3784)), PortRole::kUplink,
                    ++now_)
                .verdict.action,
            Action::kExceptionPriority)
      << "BFD";
  EXPECT_EQ(
      p_->run(buildPacket(tcp("192.168.1.1", 40000, "192.168.1.10", 22)), PortRole::kUplink, ++now_)
          .verdict.action,
      Action::kException)
      << "SSH to the node: bulk";
}

// RSS mode: each worker hands out only SNAT ports whose reply tuple the
// NIC's Toeplitz hash sends to one of that worker's queues, so replies
// arrive where the flow lives without a handoff.
TEST_F(PipelineSelectionTest, RssModeSnatPortsBringRepliesBackToTheOwningWorker) {
  RssConfig rss;
  // The Microsoft/Intel default Toeplitz key most PMDs start with.
  rss.key = {0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
             0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
             0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
  for (uint16_t i = 0; i < 128; ++i) rss.reta.push_back(i % 4);
  rss.queueWorker = {0, 1, 2, 3};
  TestPipeline::Options o;
  o.workers = 4;
  o.rss = rss;
  p_ = TestPipeline::create(o);
  ASSERT_NE(p_, nullptr);
  programOne(service("np", Protocol::kTcp,
                     {frontend("192.168.1.10", 30080, Protocol::kTcp, FrontendScope::kNodePort)},
                     {backend("10.0.1.5", 8080)}));
  // Known Toeplitz vector (Intel 82599 datasheet / DPDK test_thash):
  // 66.9.149.187:2794 -> 161.142.100.80:1766 hashes to 0x51ccc178.
  EXPECT_EQ(p_->steering().rssHash(
                {ip("66.9.149.187"), ip("161.142.100.80"), 2794, 1766, Protocol::kTcp}),
            0x51ccc178u);
  for (uint32_t w = 0; w < 4; ++w) {
    for (uint16_t port = 50000; port < 50008; ++port) {
      // The flow's first frame arrives on worker w's queue: w owns it.
      const auto r = p_->run(buildPacket(tcp("203.0.113.80", static_cast<uint16_t>(port + 100 * w),
                                             "192.168.1.10", 30080)),
                             PortRole::kUplink, ++now_, w);
      ASSERT_EQ(r.verdict.action, Action::kTxUplink);
      ASSERT_EQ(r.worker, w) << "RSS mode never hands a first frame over";
      const auto v = parsePacket(r.frame);
      const FlowTuple reply{v.dst, v.src, v.dport, v.sport, Protocol::kTcp};
      EXPECT_EQ(p_->steering().ownerOfQueue(p_->steering().rssQueueOf(reply)), w)
          << "SNAT port " << v.sport;
    }
  }
}

}  // namespace
}  // namespace sluice::dpdk::testing
