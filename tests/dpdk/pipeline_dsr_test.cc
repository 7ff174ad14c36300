// Direct server return in the DPDK pipeline (sluice.io/dpdk-forwarding:
// dsr): which flows are encapsulated, byte by byte what leaves the uplink
// (IPIP / IPv6-in-IPv6 around the client's unchanged packet), that later
// packets of the flow keep their backend, and what stays NATed.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <set>
#include <string>
#include <vector>

#include "dataplane/checksum.h"
#include "dataplane/dpdk/frame_ops.h"
#include "tests/bpf/host_cases.h"
#include "tests/bpf/packet_cases.h"
#include "tests/dpdk/pipeline_fixture.h"

namespace sluice::dpdk::testing {
namespace {

using sluice::testing::backend;
using sluice::testing::buildPacket;
using sluice::testing::frontend;
using sluice::testing::kTcpAck;
using sluice::testing::PacketSpec;
using sluice::testing::parsePacket;
using sluice::testing::service;
using sluice::testing::tcp;
using sluice::testing::udp;

constexpr const char* kNode = "192.168.1.10";  // tableConfig()'s node address
constexpr const char* kNode6 = sluice::testing::host::kNode6;
constexpr const char* kVip = "198.51.100.10";
constexpr const char* kVip6 = "2001:db8:100::10";
constexpr const char* kClient = "203.0.113.50";
constexpr const char* kClient6 = "2001:db8:7::50";
constexpr uint64_t kT0 = 1'000'000'000'000ULL;

uint16_t at16(const std::vector<uint8_t>& f, size_t off) {
  return static_cast<uint16_t>(f[off] << 8 | f[off + 1]);
}

// A LoadBalancer + NodePort Service with remote backends serving on the
// frontend's port, asking for DSR.
Service dsrService(std::vector<Backend> backends, const char* vip = kVip) {
  Service s = service("lb", Protocol::kTcp,
                      {frontend(vip, 80, Protocol::kTcp, FrontendScope::kLoadBalancer),
                       frontend(kNode, 30080, Protocol::kTcp, FrontendScope::kNodePort)},
                      std::move(backends));
  s.modeOptions["dpdk-forwarding"] = "dsr";
  return s;
}

class PipelineDsrTest : public ::testing::Test {
 protected:
  void SetUp() override {
    p_ = TestPipeline::create({});
    ASSERT_NE(p_, nullptr);
  }
  void program(const Service& s) {
    ServiceTable t;
    ASSERT_TRUE(t.upsert(s).ok());
    p_->program(t);
  }
  RunResult fromOutside(const PacketSpec& spec) {
    return p_->run(buildPacket(spec), PortRole::kUplink, now_ += 1'000'000);
  }

  // Checks `out` is `in`'s IP packet inside an outer IPv4 header from the
  // node to `backend`, addressed to the gateway; returns "" or what differs.
  static std::string ipipError(const std::vector<uint8_t>& in, const std::vector<uint8_t>& out,
                               const std::string& backend) {
    const auto v = parsePacket(in);
    const size_t innerLength = v.end - v.l3Off;
    if (out.size() != v.l3Off + 20 + innerLength) return "length " + std::to_string(out.size());
    if (!std::equal(kGatewayMac.begin(), kGatewayMac.end(), out.begin())) return "dst MAC";
    if (!std::equal(kUplinkMac.begin(), kUplinkMac.end(), out.begin() + 6)) return "src MAC";
    if (at16(out, 12) != 0x0800) return "EtherType";
    const size_t h = v.l3Off;
    if (out[h] != 0x45 || at16(out, h + 2) != innerLength + 20 || out[h + 8] != 64 ||
        out[h + 9] != kIpProtoIpip) {
      return "outer header fields";
    }
    if (internetChecksum({out.data() + h, 20}) != 0) return "outer header checksum";
    if (IpAddress::v4({out[h + 12], out[h + 13], out[h + 14], out[h + 15]}).toString() != kNode) {
      return "outer source";
    }
    if (IpAddress::v4({out[h + 16], out[h + 17], out[h + 18], out[h + 19]}).toString() != backend) {
      return "outer destination";
    }
    if (!std::equal(in.begin() + static_cast<long>(v.l3Off), in.begin() + static_cast<long>(v.end),
                    out.begin() + static_cast<long>(h + 20))) {
      return "inner packet changed";
    }
    return "";
  }
  static std::string outerDestination(const std::vector<uint8_t>& out) {
    return IpAddress::v4({out[30], out[31], out[32], out[33]}).toString();
  }

  std::unique_ptr<TestPipeline> p_;
  uint64_t now_ = kT0;
};

// The first packet and every later one of a flow to the VIP leave the
// uplink encapsulated to one backend, the client's packet untouched inside;
// no conntrack reply is ever needed.
TEST_F(PipelineDsrTest, LoadBalancerFlowIsEncapsulatedToOneRemoteBackend) {
  program(dsrService({backend("10.0.2.1", 80), backend("10.0.2.2", 80), backend("10.0.2.3", 80)}));
  const PacketSpec syn = tcp(kClient, 40000, kVip, 80);
  const auto in = buildPacket(syn);
  const RunResult first = fromOutside(syn);
  ASSERT_EQ(first.verdict.action, Action::kTxUplink);
  const std::string backend = outerDestination(first.frame);
  EXPECT_EQ(ipipError(in, first.frame, backend), "");
  EXPECT_EQ(p_->counter("event.dsr"), 1u);
  EXPECT_EQ(p_->counter("event.svc_new"), 1u);
  EXPECT_EQ(p_->counter("event.snat"), 0u);

  PacketSpec ack = tcp(kClient, 40000, kVip, 80, kTcpAck);
  ack.payload = std::vector<uint8_t>(300, 'x');
  for (int i = 0; i < 5; ++i) {
    const RunResult r = fromOutside(ack);
    ASSERT_EQ(r.verdict.action, Action::kTxUplink);
    EXPECT_EQ(ipipError(buildPacket(ack), r.frame, backend), "") << i;
  }
  EXPECT_EQ(p_->counter("event.svc_established"), 0u) << "DSR packets are counted as dsr";
  EXPECT_EQ(p_->counter("event.dsr"), 6u);
  EXPECT_EQ(p_->worker(0).conntrack().size(), 1u);
}

// Many clients spread over the backends (the selection is the NAT one).
TEST_F(PipelineDsrTest, FlowsSpreadOverTheBackends) {
  program(dsrService({backend("10.0.2.1", 80), backend("10.0.2.2", 80), backend("10.0.2.3", 80)}));
  std::set<std::string> seen;
  for (uint16_t port = 40000; port < 40060; ++port) {
    const RunResult r = fromOutside(tcp(kClient, port, kVip, 80));
    ASSERT_EQ(r.verdict.action, Action::kTxUplink);
    seen.insert(outerDestination(r.frame));
  }
  EXPECT_EQ(seen, (std::set<std::string>{"10.0.2.1", "10.0.2.2", "10.0.2.3"}));
}

// IPv6: an IPv6-in-IPv6 header (next header 41) from the node's IPv6
// address, payload length the inner packet's, hop limit 64.
TEST_F(PipelineDsrTest, Ipv6FlowIsEncapsulatedInIpv6) {
  Service s = service("lb6", Protocol::kTcp,
                      {frontend(kVip6, 80, Protocol::kTcp, FrontendScope::kLoadBalancer)},
                      {backend("2001:db8:2::1", 80)});
  s.modeOptions["dpdk-forwarding"] = "dsr";
  program(s);
  const PacketSpec syn = tcp(kClient6, 40000, kVip6, 80);
  const auto in = buildPacket(syn);
  const RunResult r = fromOutside(syn);
  ASSERT_EQ(r.verdict.action, Action::kTxUplink);
  const auto v = parsePacket(in);
  const size_t inner = v.end - v.l3Off;
  ASSERT_EQ(r.frame.size(), v.l3Off + 40 + inner);
  EXPECT_EQ(at16(r.frame, 12), 0x86dd);
  const size_t h = v.l3Off;
  EXPECT_EQ(r.frame[h] >> 4, 6);
  EXPECT_EQ(at16(r.frame, h + 4), inner);
  EXPECT_EQ(r.frame[h + 6], kIpProtoIpv6Encap);
  EXPECT_EQ(r.frame[h + 7], 64);
  std::array<uint8_t, 16> src{}, dst{};
  std::copy_n(r.frame.begin() + static_cast<long>(h + 8), 16, src.begin());
  std::copy_n(r.frame.begin() + static_cast<long>(h + 24), 16, dst.begin());
  EXPECT_EQ(IpAddress::v6(src).toString(), IpAddress::parse(kNode6)->toString());
  EXPECT_EQ(IpAddress::v6(dst).toString(), "2001:db8:2::1");
  EXPECT_TRUE(std::equal(in.begin() + static_cast<long>(v.l3Off), in.end(),
                         r.frame.begin() + static_cast<long>(h + 40)));
}

// What DSR does not apply to is NATed as before: the NodePort of the same
// Service (the node address is no VIP a backend can hold), a backend on a
// port other than the frontend's, a node-local backend, a Service without
// the annotation or with a value the mode does not know.
TEST_F(PipelineDsrTest, WhatDsrDoesNotCoverIsNated) {
  struct Case {
    const char* name;
    Service svc;
    PacketSpec packet;
  };
  Service otherPort = dsrService({backend("10.0.2.1", 8080)});
  Service local = dsrService({backend("10.0.2.1", 80, BackendState::kActive, true)});
  Service plain = dsrService({backend("10.0.2.1", 80)});
  plain.modeOptions.clear();
  Service unknown = dsrService({backend("10.0.2.1", 80)});
  unknown.modeOptions["dpdk-forwarding"] = "tunnel";
  const std::vector<Case> cases = {
      {"NodePort", dsrService({backend("10.0.2.1", 80)}), tcp(kClient, 40000, kNode, 30080)},
      {"backend port differs", otherPort, tcp(kClient, 40000, kVip, 80)},
      {"node-local backend", local, tcp(kClient, 40000, kVip, 80)},
      {"no annotation", plain, tcp(kClient, 40000, kVip, 80)},
      {"unknown value", unknown, tcp(kClient, 40000, kVip, 80)},
  };
  for (const Case& c : cases) {
    SetUp();
    program(c.svc);
    const auto in = buildPacket(c.packet);
    const RunResult r = fromOutside(c.packet);
    EXPECT_EQ(p_->counter("event.dsr"), 0u) << c.name;
    EXPECT_EQ(r.frame.size(), in.size()) << c.name << ": no outer header";
    const auto v = parsePacket(r.frame);
    EXPECT_EQ(v.dst.toString(), c.svc.backends[0].address.toString()) << c.name << ": DNATed";
    EXPECT_EQ(p_->counter("event.svc_new"), 1u) << c.name;
  }
}

// A packet whose outer header would pass the uplink's MTU is dropped
// (encap_failed), not fragmented or sent NATed.
TEST_F(PipelineDsrTest, PacketThatWouldPassTheMtuIsDropped) {
  program(dsrService({backend("10.0.2.1", 80)}));
  PacketSpec big = tcp(kClient, 40000, kVip, 80, kTcpAck);
  big.payload = std::vector<uint8_t>(1500 - 40, 'x');  // an IP packet of exactly 1500 bytes
  const RunResult r = fromOutside(big);
  EXPECT_EQ(r.verdict.action, Action::kDrop);
  EXPECT_EQ(r.verdict.reason, DropReason::kEncapFailed);
  EXPECT_EQ(p_->counter("drop.encap_failed"), 1u);
  PacketSpec fits = big;
  fits.payload.resize(1500 - 40 - 20);
  fits.sport = 40001;
  EXPECT_EQ(fromOutside(fits).verdict.action, Action::kTxUplink);
}

// An ICMP error about the backend's replies (say, fragmentation needed on
// the way to the client) comes to the VIP and goes to the backend
// encapsulated as it came: the backend needs it for path MTU discovery.
TEST_F(PipelineDsrTest, IcmpErrorAboutADsrFlowGoesToItsBackend) {
  program(dsrService({backend("10.0.2.1", 80)}));
  ASSERT_EQ(fromOutside(tcp(kClient, 40000, kVip, 80)).verdict.action, Action::kTxUplink);
  // The backend's reply, VIP -> client, as the router quotes it.
  const auto quoted = buildPacket(tcp(kVip, 80, kClient, 40000, kTcpAck | sluice::testing::kTcpSyn));
  PacketSpec err;
  err.src = sluice::testing::ip("203.0.113.1");
  err.dst = sluice::testing::ip(kVip);
  err.proto = Protocol::kIcmp;
  err.icmpType = 3;  // destination unreachable
  err.icmpCode = 4;  // fragmentation needed
  err.payload.assign(quoted.begin() + 14, quoted.begin() + 14 + 28);
  const auto in = buildPacket(err);
  const RunResult r = fromOutside(err);
  ASSERT_EQ(r.verdict.action, Action::kTxUplink);
  EXPECT_EQ(ipipError(in, r.frame, "10.0.2.1"), "");
}

}  // namespace
}  // namespace sluice::dpdk::testing
