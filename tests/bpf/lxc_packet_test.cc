// Packet tests for bpf/lxc.bpf.c (tc ingress of a pod's host-side veth), as
// data: each case is {scenario, input frame, expected verdict, expected
// output frame, counter that must tick}, run in order through
// BPF_PROG_TEST_RUN against maps programmed by the real loader (EbpfMode).
// Expected frames are built independently by tests/bpf/packet_builder; the
// output's checksums are recomputed from scratch rather than compared.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "bpf/lib/hash.h"
#include "dataplane/maglev.h"
#include "dataplane/service_diff.h"
#include "tests/bpf/lb_fixtures.h"
#include "tests/bpf/lxc_cases.h"

namespace sluice {
namespace {

using namespace sluice::testing;       // NOLINT(google-build-using-namespace)
using namespace sluice::testing::lxc;  // NOLINT(google-build-using-namespace)

constexpr uint32_t kDrop = TC_ACT_SHOT;
constexpr uint32_t kRedirect = TC_ACT_REDIRECT;
// BPF_PROG_TEST_RUN (6.18) refuses, with -EINVAL, an IPv4/IPv6 frame
// shorter than Ethernet + the fixed IP header, so frames cut inside the IP
// header cannot be run here; the parser still checks them (bpf/lib/parse.h
// returns truncated_l3 when the header cannot be loaded).
constexpr size_t kMinTestRunFrame4 = 14 + 20;
constexpr size_t kMinTestRunFrame6 = 14 + 40;

class LxcPacketTest : public EbpfFixture {
 protected:
  void SetUp() override {
    SetUpMode();
    if (IsSkipped() || HasFatalFailure()) return;
    program(services());
  }

  using EbpfFixture::runCases;
  void runCases(const std::vector<PacketCase>& cases) { runCases(mode_->lxcIngressFd(), cases); }
};

TEST_F(LxcPacketTest, ServiceTrafficCases) { runCases(serviceCases()); }

TEST_F(LxcPacketTest, MalformedPacketsAreNeverRewritten) { runCases(malformedCases()); }

TEST_F(LxcPacketTest, TruncationAtEveryOffsetIsDroppedUnchanged) {
  // Every prefix of a valid service packet, with its IP length left as sent
  // (total length past the buffer) and, separately, fixed to the prefix.
  const std::vector<PacketSpec> specs = {
      tcp(kClient, 42000, "10.96.0.10", 80), udp(kClient, 42000, "10.96.0.53", 53),
      tcp(kClient6, 42000, "fd00:96::10", 80), udp(kClient6, 42000, "fd00:96::53", 53)};
  for (const PacketSpec& spec : specs) {
    const std::vector<uint8_t> whole = buildPacket(spec);
    const bool v6 = spec.dst.isV6();
    for (size_t len = v6 ? kMinTestRunFrame6 : kMinTestRunFrame4; len < whole.size(); ++len) {
      for (bool fixLength : {false, true}) {
        std::vector<uint8_t> f(whole.begin(), whole.begin() + static_cast<long>(len));
        if (fixLength) {
          if (v6) {
            put16(f, 18, static_cast<uint16_t>(len - 54));
          } else {
            put16(f, 16, static_cast<uint16_t>(len - 14));
            setIpv4HeaderChecksum(f);
          }
        }
        SCOPED_TRACE(parsePacket(whole).describe() + " cut to " + std::to_string(len) +
                     (fixLength ? " bytes, length fixed" : " bytes"));
        auto r = run(f);
        ASSERT_EQ(r.err, 0);
        EXPECT_EQ(r.retval, kDrop);
        EXPECT_EQ(r.out, f);
      }
    }
  }
}

TEST_F(LxcPacketTest, RefusedWithoutEndpointsNeverForwarded) {
  // A SYN to a service with no endpoints never reaches the stack as a SYN:
  // it is answered (redirect) with a RST, whatever the source port.
  for (uint16_t port = 43000; port < 43020; ++port) {
    auto r = run(frame(tcp(kClient, port, "10.96.0.20", 80)));
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kRedirect);
    EXPECT_EQ(parsePacket(r.out).tcpFlags, kTcpRst | kTcpAck);
  }
}

// ---------------------------------------------------------------------------
// Backend selection: behaviours over many flows.

class LxcSelectionTest : public EbpfFixture {
 protected:
  void SetUp() override { SetUpMode(); }

  void programOne(Service s) {
    ServiceTable t;
    auto r = t.upsert(std::move(s));
    ASSERT_TRUE(r.ok()) << r.error().message;
    program(t);
    table_ = t;
  }

  void change(Service after) {
    ServiceTable next = table_;
    ASSERT_TRUE(next.upsert(std::move(after)).ok());
    auto r = mode_->apply(ServiceDiff::between(table_, next));
    ASSERT_TRUE(r.ok()) << r.error().message;
    table_ = next;
  }

  std::string backendOf(const PacketSpec& spec) {
    PacketView v = sendAndView(spec);
    return v.dst.toString() + ":" + std::to_string(v.dport);
  }

  ServiceTable table_;
};

std::vector<Backend> fourBackends() {
  return {backend("10.0.2.1", 8080), backend("10.0.2.2", 8080), backend("10.0.2.3", 8080),
          backend("10.0.2.4", 8080)};
}

TEST_F(LxcSelectionTest, NewFlowsSpreadAndEstablishedFlowsKeepTheirBackend) {
  if (IsSkipped()) return;
  programOne(service("web", Protocol::kTcp, {frontend("10.96.1.1", 80)}, fourBackends()));
  std::map<uint16_t, std::string> chosen;
  std::set<std::string> used;
  for (uint16_t port = 30000; port < 30064; ++port) {
    chosen[port] = backendOf(tcp(kClient, port, "10.96.1.1", 80));
    used.insert(chosen[port]);
  }
  EXPECT_EQ(used.size(), 4u) << "64 flows should reach all 4 backends";
  // Adding backends must not move established flows.
  auto more = fourBackends();
  more.push_back(backend("10.0.2.5", 8080));
  more.push_back(backend("10.0.2.6", 8080));
  change(service("web", Protocol::kTcp, {frontend("10.96.1.1", 80)}, more));
  for (const auto& [port, be] : chosen) {
    EXPECT_EQ(backendOf(withPayload(tcp(kClient, port, "10.96.1.1", 80), kTcpAck, 1001, 1)), be)
        << "flow from port " << port;
  }
}

TEST_F(LxcSelectionTest, TerminatingBackendsGetNoNewFlowsButKeepEstablishedOnes) {
  if (IsSkipped()) return;
  programOne(service("web", Protocol::kTcp, {frontend("10.96.1.1", 80)}, fourBackends()));
  const std::string first = backendOf(tcp(kClient, 31000, "10.96.1.1", 80));
  // The flow's backend starts terminating.
  auto backends = fourBackends();
  for (Backend& b : backends) {
    if (b.address.toString() + ":8080" == first) b.state = BackendState::kTerminating;
  }
  change(service("web", Protocol::kTcp, {frontend("10.96.1.1", 80)}, backends));
  EXPECT_EQ(backendOf(withPayload(tcp(kClient, 31000, "10.96.1.1", 80), kTcpAck, 1001, 1)), first);
  for (uint16_t port = 31001; port < 31041; ++port) {
    EXPECT_NE(backendOf(tcp(kClient, port, "10.96.1.1", 80)), first) << "new flow from " << port;
  }
}

TEST_F(LxcSelectionTest, RemovedBackendsUdpFlowMovesAtOnce) {
  if (IsSkipped()) return;
  programOne(service("dns", Protocol::kUdp, {frontend("10.96.1.53", 53, Protocol::kUdp)},
                     {backend("10.0.3.1", 53), backend("10.0.3.2", 53)}));
  const PacketSpec q = udp(kClient, 6000, "10.96.1.53", 53);
  const std::string first = backendOf(q);
  const char* other = first == "10.0.3.1:53" ? "10.0.3.2" : "10.0.3.1";
  change(service("dns", Protocol::kUdp, {frontend("10.96.1.53", 53, Protocol::kUdp)},
                 {backend(other, 53)}));
  const uint64_t reselect = counter("event.svc_reselect");
  EXPECT_EQ(backendOf(q), std::string(other) + ":53");
  EXPECT_EQ(counter("event.svc_reselect"), reselect + 1);
}

TEST_F(LxcSelectionTest, ClientIpAffinityHoldsForNewFlowsFromOneClient) {
  if (IsSkipped()) return;
  Service s = service("sticky", Protocol::kTcp, {frontend("10.96.1.2", 80)}, fourBackends());
  s.affinity.clientIp = true;
  s.affinity.timeoutSeconds = 60;
  programOne(s);
  // 15 consecutive connections (new source ports) from one client.
  const std::string first = backendOf(tcp(kClient, 32000, "10.96.1.2", 80));
  for (uint16_t port = 32001; port < 32015; ++port) {
    EXPECT_EQ(backendOf(tcp(kClient, port, "10.96.1.2", 80)), first) << "connection " << port;
  }
  EXPECT_GE(counter("event.affinity_hit"), 14u);
  // Other clients are still spread over the backends.
  std::set<std::string> used;
  for (int c = 10; c < 74; ++c) {
    const std::string client = "10.0.9." + std::to_string(c);
    used.insert(backendOf(tcp(client.c_str(), 32000, "10.96.1.2", 80)));
  }
  EXPECT_GT(used.size(), 1u);
}

TEST_F(LxcSelectionTest, AffinityExpiresAfterItsTimeoutAndNewFlowsUseTheFlowHash) {
  if (IsSkipped()) return;
  Service s = service("sticky", Protocol::kTcp, {frontend("10.96.1.2", 80)}, fourBackends());
  s.affinity.clientIp = true;
  s.affinity.timeoutSeconds = 1;
  programOne(s);
  const std::string first = backendOf(tcp(kClient, 33100, "10.96.1.2", 80));

  // Without affinity, a new flow takes slot flowHash % active: find a source
  // port whose slot holds another backend than `first`.
  auto d = mode_->dump();
  ASSERT_TRUE(d.ok());
  const sl_svc_value& svc = d->services.at(bpf::frontendKey(frontend("10.96.1.2", 80)));
  auto hashChoice = [&](uint16_t port) {
    uint32_t saddr[4] = {}, daddr[4] = {};
    std::memcpy(saddr, ip(kClient).bytes().data(), 4);
    std::memcpy(daddr, ip("10.96.1.2").bytes().data(), 4);
    const uint32_t hash = sl_flow_hash(saddr, daddr, htons(port), htons(80), IPPROTO_TCP);
    const uint32_t id = d->slots.at(sl_slot_key{svc.svc_id, hash % svc.active_count});
    const sl_backend& be = d->backends.at(id);
    return bpf::loadAddress(be.addr, be.family).toString() + ":" + std::to_string(ntohs(be.port));
  };
  uint16_t other = 33101;
  while (hashChoice(other) == first) ++other;

  EXPECT_EQ(backendOf(tcp(kClient, other, "10.96.1.2", 80)), first) << "affinity still holds";
  ::usleep(2'100'000);  // idle past the 1 s timeout (last use refreshes at most once a second)
  uint16_t later = static_cast<uint16_t>(other + 1);
  while (hashChoice(later) == first) ++later;
  EXPECT_EQ(backendOf(tcp(kClient, later, "10.96.1.2", 80)), hashChoice(later))
      << "after the timeout the flow hash decides again";
}

TEST_F(LxcSelectionTest, AffinityToABackendThatStartedTerminatingIsDropped) {
  if (IsSkipped()) return;
  Service s = service("sticky", Protocol::kTcp, {frontend("10.96.1.2", 80)}, fourBackends());
  s.affinity.clientIp = true;
  programOne(s);
  const std::string first = backendOf(tcp(kClient, 33000, "10.96.1.2", 80));
  for (Backend& b : s.backends) {
    if (b.address.toString() + ":8080" == first) b.state = BackendState::kTerminating;
  }
  change(s);
  EXPECT_NE(backendOf(tcp(kClient, 33001, "10.96.1.2", 80)), first);
}

TEST_F(LxcSelectionTest, MaglevSelectionMatchesTheUserspaceTable) {
  if (IsSkipped()) return;
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
  for (const Backend& b : s.backends) mb.push_back({bpf::maglevBackendKey(b), b.weight});
  auto table = builder->build(mb);
  ASSERT_TRUE(table.ok());

  const IpAddress client = ip(kClient);
  const IpAddress vip = ip("10.96.1.3");
  for (uint16_t port = 34000; port < 34200; ++port) {
    uint32_t saddr[4] = {}, daddr[4] = {};
    std::memcpy(saddr, client.bytes().data(), 4);
    std::memcpy(daddr, vip.bytes().data(), 4);
    const uint32_t hash = sl_flow_hash(saddr, daddr, htons(port), htons(80), IPPROTO_TCP);
    const uint32_t index = table->backendFor(hash);
    ASSERT_NE(index, MaglevTable::kNoBackend);
    const Backend& want = s.backends[index];
    EXPECT_EQ(backendOf(tcp(kClient, port, "10.96.1.3", 80)),
              want.address.toString() + ":" + std::to_string(want.port))
        << "flow from port " << port << ", hash " << hash;
  }
}

TEST_F(LxcSelectionTest, InternalTrafficPolicyLocalUsesOnlyNodeLocalBackends) {
  if (IsSkipped()) return;
  Service s = service("local", Protocol::kTcp, {frontend("10.96.1.4", 80)},
                      {backend("10.0.5.1", 8080, BackendState::kActive, true),
                       backend("10.0.5.2", 8080), backend("10.0.5.3", 8080)});
  s.internalPolicy = TrafficPolicy::kLocal;
  programOne(s);
  for (uint16_t port = 35000; port < 35032; ++port) {
    EXPECT_EQ(backendOf(tcp(kClient, port, "10.96.1.4", 80)), "10.0.5.1:8080");
  }
}

TEST_F(LxcSelectionTest, DualStackFrontendsUseBackendsOfTheirOwnFamily) {
  if (IsSkipped()) return;
  programOne(service("dual", Protocol::kTcp,
                     {frontend("10.96.1.5", 80), frontend("fd00:96::1:5", 80)},
                     {backend("10.0.6.1", 8080), backend("fd00:6::1", 8080)}));
  for (uint16_t port = 36000; port < 36016; ++port) {
    EXPECT_EQ(backendOf(tcp(kClient, port, "10.96.1.5", 80)), "10.0.6.1:8080");
    EXPECT_EQ(backendOf(tcp(kClient6, port, "fd00:96::1:5", 80)), "fd00:6::1:8080");
  }
}

}  // namespace
}  // namespace sluice
