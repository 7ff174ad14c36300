// NAT as data (STYLE.md): each case is a scenario, an input packet, a rewrite
// and the exact packet expected afterwards, built from scratch with every
// checksum recomputed. Then the same on thousands of random packets, checked
// both against a from-scratch build and by recomputing each checksum in place.
#include "dataplane/nat.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <iostream>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/packet.h"

#include "tests/dataplane/packet_fixtures.h"

namespace sluice {
namespace {

using namespace sluice::pkt;  // NOLINT: the packet builder's vocabulary

// --- Fixtures ----------------------------------------------------------------

const IpAddress kClient4 = addr("10.0.0.1");
const IpAddress kFrontend4 = addr("10.96.0.10");
const IpAddress kBackend4 = addr("10.244.1.5");
const IpAddress kRouter4 = addr("10.244.0.1");
const IpAddress kNode4 = addr("192.168.1.10");
const IpAddress kClient6 = addr("fd00::1");
const IpAddress kFrontend6 = addr("fd00:96::10");
const IpAddress kBackend6 = addr("fd00:244::5");
const IpAddress kRouter6 = addr("fd00:244::1");
const IpAddress kNode6 = addr("2001:db8::10");

constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;
constexpr uint8_t kIcmp = 1;
constexpr uint8_t kIcmp6 = 58;

enum class Op { kDnat, kSnat, kReverse };

struct NatCase {
  std::string name;      // gtest name
  std::string scenario;  // one line
  Bytes input;
  Op op = Op::kDnat;
  IpAddress address{};   // kDnat / kSnat
  uint16_t port = 0;     // kDnat / kSnat
  FlowTuple original{};  // kReverse: the flow as the client sent it
  DropReason reason = DropReason::kNone;
  Bytes expected{};  // the packet afterwards; empty means unchanged
};

void PrintTo(const NatCase& c, std::ostream* os) { *os << c.scenario; }

FlowTuple flow(const IpAddress& src, const IpAddress& dst, uint16_t sport, uint16_t dport,
               Protocol p) {
  return {src, dst, sport, dport, p};
}

DropReason apply(Bytes& packet, ParsedPacket& parsed, Op op, const IpAddress& address,
                 uint16_t port, const FlowTuple& original) {
  switch (op) {
    case Op::kDnat:
      return dnat(packet, parsed, address, port);
    case Op::kSnat:
      return snat(packet, parsed, address, port);
    case Op::kReverse:
      return reverseNat(packet, parsed, original);
  }
  return DropReason::kNone;
}

NatCase dnatCase(std::string name, std::string scenario, Bytes input, const IpAddress& a,
                 uint16_t port, Bytes expected) {
  return {std::move(name),   std::move(scenario), std::move(input), Op::kDnat, a, port, {},
          DropReason::kNone, std::move(expected)};
}

NatCase snatCase(std::string name, std::string scenario, Bytes input, const IpAddress& a,
                 uint16_t port, Bytes expected) {
  return {std::move(name),   std::move(scenario), std::move(input), Op::kSnat, a, port, {},
          DropReason::kNone, std::move(expected)};
}

NatCase reverseCase(std::string name, std::string scenario, Bytes input, const FlowTuple& original,
                    Bytes expected) {
  return {std::move(name), std::move(scenario), std::move(input),   Op::kReverse, {}, 0,
          original,        DropReason::kNone,   std::move(expected)};
}

// Fixture tables are laid out by hand, one case per block.
// clang-format off
std::vector<NatCase> natCases() {
  const Bytes hello = text("hello");
  const FlowTuple tcp4Flow = flow(kClient4, kFrontend4, 40000, 80, Protocol::kTcp);
  const FlowTuple udp4Flow = flow(kClient4, kFrontend4, 40000, 53, Protocol::kUdp);
  const FlowTuple echo4Flow = flow(kClient4, kFrontend4, 0x4242, 0x4242, Protocol::kIcmp);
  const FlowTuple tcp6Flow = flow(kClient6, kFrontend6, 40000, 443, Protocol::kTcp);
  const FlowTuple udp6Flow = flow(kClient6, kFrontend6, 40000, 53, Protocol::kUdp);
  const FlowTuple echo6Flow = flow(kClient6, kFrontend6, 7, 7, Protocol::kIcmpV6);
  const Ip4Fields noUdpChecksum{.keepL4Checksum = true};
  const Ip6Fields noUdpChecksum6{.keepL4Checksum = true};
  std::vector<NatCase> cases = {
      dnatCase("DnatIpv4Tcp", "client -> frontend:80 becomes client -> backend:8080",
               eth4(ipv4(kClient4, kFrontend4, kTcp, tcp(40000, 80, hello))), kBackend4, 8080,
               eth4(ipv4(kClient4, kBackend4, kTcp, tcp(40000, 8080, hello)))),
      dnatCase("DnatIpv4Udp", "DNS to the cluster DNS frontend, to a CoreDNS pod on 5353",
               eth4(ipv4(kClient4, kFrontend4, kUdp, udp(40000, 53, hello))), kBackend4, 5353,
               eth4(ipv4(kClient4, kBackend4, kUdp, udp(40000, 5353, hello)))),
      dnatCase("DnatIpv4UdpWithoutChecksum", "UDP checksum 0 (none) stays 0 through DNAT",
               eth4(ipv4(kClient4, kFrontend4, kUdp, udp(40000, 53, hello), noUdpChecksum)),
               kBackend4, 5353,
               eth4(ipv4(kClient4, kBackend4, kUdp, udp(40000, 5353, hello), noUdpChecksum))),
      dnatCase("DnatIpv4TcpVlanPadded", "VLAN 100 frame with padding: L2 and padding untouched",
               cat(ethernet(ipv4(kClient4, kFrontend4, kTcp, tcp(40000, 80)), kEtherTypeIpv4, 100),
                   Bytes(6, 0xee)),
               kBackend4, 8080,
               cat(ethernet(ipv4(kClient4, kBackend4, kTcp, tcp(40000, 8080)), kEtherTypeIpv4, 100),
                   Bytes(6, 0xee))),
      dnatCase("DnatIpv4TcpRawIp", "bare IPv4 packet: same rewrite at offset 0",
               ipv4(kClient4, kFrontend4, kTcp, tcp(40000, 80, hello)), kBackend4, 8080,
               ipv4(kClient4, kBackend4, kTcp, tcp(40000, 8080, hello))),
      dnatCase("DnatIpv6Tcp", "IPv6: no header checksum, 128-bit pseudo-header update",
               eth6(ipv6(kClient6, kFrontend6, kTcp, tcp(40000, 443, hello))), kBackend6, 8443,
               eth6(ipv6(kClient6, kBackend6, kTcp, tcp(40000, 8443, hello)))),
      dnatCase("DnatIpv6Udp", "IPv6 UDP DNS",
               eth6(ipv6(kClient6, kFrontend6, kUdp, udp(40000, 53, hello))), kBackend6, 5353,
               eth6(ipv6(kClient6, kBackend6, kUdp, udp(40000, 5353, hello)))),
      dnatCase("DnatIpv6UdpZeroChecksumLeftAlone",
               "IPv6 UDP with checksum 0 (tunnels, RFC 6935) is passed on as sent",
               eth6(ipv6(kClient6, kFrontend6, kUdp, udp(40000, 53, hello), noUdpChecksum6)),
               kBackend6, 5353,
               eth6(ipv6(kClient6, kBackend6, kUdp, udp(40000, 5353, hello), noUdpChecksum6))),
      dnatCase("DnatIpv4EchoKeepsIdentifier",
               "ping to a frontend: ICMPv4 has no pseudo-header, so only the IP checksum moves",
               eth4(ipv4(kClient4, kFrontend4, kIcmp, icmpEcho(8, 0x4242, 1, hello))), kBackend4,
               0x4242, eth4(ipv4(kClient4, kBackend4, kIcmp, icmpEcho(8, 0x4242, 1, hello)))),
      dnatCase("DnatIpv6EchoUpdatesPseudoHeader", "ICMPv6 checksum covers the addresses",
               eth6(ipv6(kClient6, kFrontend6, kIcmp6, icmpEcho(128, 7, 1, hello))), kBackend6, 7,
               eth6(ipv6(kClient6, kBackend6, kIcmp6, icmpEcho(128, 7, 1, hello)))),
      snatCase("SnatIpv4TcpMasquerade", "pod -> outside, source becomes node:61000",
               eth4(ipv4(kClient4, kFrontend4, kTcp, tcp(40000, 80, hello))), kNode4, 61000,
               eth4(ipv4(kNode4, kFrontend4, kTcp, tcp(61000, 80, hello)))),
      snatCase("SnatIpv4EchoRewritesIdentifier",
               "masqueraded ping: the identifier is the port, so it changes too",
               eth4(ipv4(kClient4, kFrontend4, kIcmp, icmpEcho(8, 0x4242, 3))), kNode4, 0x9999,
               eth4(ipv4(kNode4, kFrontend4, kIcmp, icmpEcho(8, 0x9999, 3)))),
      snatCase("SnatIpv6Udp", "IPv6 UDP masquerade",
               eth6(ipv6(kClient6, kFrontend6, kUdp, udp(40000, 53, hello))), kNode6, 61000,
               eth6(ipv6(kNode6, kFrontend6, kUdp, udp(61000, 53, hello)))),
      reverseCase("ReverseNatIpv4TcpReply", "backend:8080 -> client becomes frontend:80 -> client",
                  eth4(ipv4(kBackend4, kClient4, kTcp, tcp(8080, 40000, hello))), tcp4Flow,
                  eth4(ipv4(kFrontend4, kClient4, kTcp, tcp(80, 40000, hello)))),
      reverseCase("ReverseNatIpv4UdpReplyUndoesSnat",
                  "backend -> node:61000 becomes frontend -> client:40000 (DNAT and SNAT undone)",
                  eth4(ipv4(kBackend4, kNode4, kUdp, udp(5353, 61000, hello))), udp4Flow,
                  eth4(ipv4(kFrontend4, kClient4, kUdp, udp(53, 40000, hello)))),
      reverseCase("ReverseNatIpv6TcpReply", "IPv6 backend reply",
                  eth6(ipv6(kBackend6, kClient6, kTcp, tcp(8443, 40000, hello))), tcp6Flow,
                  eth6(ipv6(kFrontend6, kClient6, kTcp, tcp(443, 40000, hello)))),
      reverseCase("ReverseNatIpv4EchoReplyRestoresIdentifier",
                  "echo reply to node id 0x9999 becomes frontend -> client id 0x4242",
                  eth4(ipv4(kBackend4, kNode4, kIcmp, icmpEcho(0, 0x9999, 3))), echo4Flow,
                  eth4(ipv4(kFrontend4, kClient4, kIcmp, icmpEcho(0, 0x4242, 3)))),
      reverseCase("ReverseNatIpv4PortUnreachableFromBackend",
                  "backend's port unreachable about client -> backend:5353: the quote and the "
                  "outer source both become the frontend",
                  eth4(ipv4(kBackend4, kClient4, kIcmp,
                            icmpError(3, 3,
                                      truncated(ipv4(kClient4, kBackend4, kUdp,
                                                     udp(40000, 5353, hello)),
                                                28)))),
                  udp4Flow,
                  eth4(ipv4(kFrontend4, kClient4, kIcmp,
                            icmpError(3, 3,
                                      truncated(ipv4(kClient4, kFrontend4, kUdp,
                                                     udp(40000, 53, hello)),
                                                28))))),
      reverseCase("ReverseNatIpv4FragNeededFromRouterKeepsRouterSource",
                  "PMTUD from a router on the way to the backend: quote restored, router "
                  "address kept, whole quoted TCP header (checksum included) updated",
                  eth4(ipv4(kRouter4, kClient4, kIcmp,
                            icmpError(3, 4,
                                      truncated(ipv4(kClient4, kBackend4, kTcp,
                                                     tcp(40000, 8080, hello)),
                                                40),
                                      1400))),
                  tcp4Flow,
                  eth4(ipv4(kRouter4, kClient4, kIcmp,
                            icmpError(3, 4,
                                      truncated(ipv4(kClient4, kFrontend4, kTcp,
                                                     tcp(40000, 80, hello)),
                                                40),
                                      1400)))),
      reverseCase("ReverseNatIpv4ErrorQuotingOnly8BytesOfTcp",
                  "RFC 792 minimum quote: TCP checksum not quoted, ports still rewritten",
                  eth4(ipv4(kBackend4, kNode4, kIcmp,
                            icmpError(3, 1,
                                      truncated(ipv4(kNode4, kBackend4, kTcp, tcp(61000, 8080)),
                                                28)))),
                  tcp4Flow,
                  eth4(ipv4(kFrontend4, kClient4, kIcmp,
                            icmpError(3, 1,
                                      truncated(ipv4(kClient4, kFrontend4, kTcp, tcp(40000, 80)),
                                                28))))),
      reverseCase("ReverseNatIpv4ErrorQuotingUdpWithoutChecksum",
                  "quoted UDP checksum 0 stays 0; the outer ICMP checksum still moves",
                  eth4(ipv4(kBackend4, kClient4, kIcmp,
                            icmpError(3, 3,
                                      ipv4(kClient4, kBackend4, kUdp, udp(40000, 5353, hello),
                                           noUdpChecksum)))),
                  udp4Flow,
                  eth4(ipv4(kFrontend4, kClient4, kIcmp,
                            icmpError(3, 3,
                                      ipv4(kClient4, kFrontend4, kUdp, udp(40000, 53, hello),
                                           noUdpChecksum))))),
      reverseCase("ReverseNatIpv4TimeExceededQuotingEcho",
                  "router's time exceeded about a masqueraded ping: quoted id restored",
                  eth4(ipv4(kRouter4, kNode4, kIcmp,
                            icmpError(11, 0,
                                      ipv4(kNode4, kBackend4, kIcmp, icmpEcho(8, 0x9999, 3))))),
                  echo4Flow,
                  eth4(ipv4(kRouter4, kClient4, kIcmp,
                            icmpError(11, 0,
                                      ipv4(kClient4, kFrontend4, kIcmp,
                                           icmpEcho(8, 0x4242, 3)))))),
      reverseCase("ReverseNatIpv6PacketTooBigFromBackendWithSnat",
                  "ICMPv6 too big from the backend to the SNAT address: outer pseudo-header, "
                  "quote and its checksum all restored",
                  eth6(ipv6(kBackend6, kNode6, kIcmp6,
                            icmpError(2, 0, ipv6(kNode6, kBackend6, kTcp, tcp(61000, 8443, hello)),
                                      1280))),
                  tcp6Flow,
                  eth6(ipv6(kFrontend6, kClient6, kIcmp6,
                            icmpError(2, 0,
                                      ipv6(kClient6, kFrontend6, kTcp, tcp(40000, 443, hello)),
                                      1280)))),
      reverseCase("ReverseNatIpv6PortUnreachableFromRouter",
                  "ICMPv6 unreachable from a router: router source kept",
                  eth6(ipv6(kRouter6, kClient6, kIcmp6,
                            icmpError(1, 3, ipv6(kClient6, kBackend6, kUdp, udp(40000, 5353))))),
                  udp6Flow,
                  eth6(ipv6(kRouter6, kClient6, kIcmp6,
                            icmpError(1, 3, ipv6(kClient6, kFrontend6, kUdp, udp(40000, 53)))))),
      reverseCase("ReverseNatIpv6TimeExceededQuotingEcho", "ICMPv6 time exceeded about a ping",
                  eth6(ipv6(kRouter6, kClient6, kIcmp6,
                            icmpError(3, 0,
                                      ipv6(kClient6, kBackend6, kIcmp6, icmpEcho(128, 7, 1))))),
                  echo6Flow,
                  eth6(ipv6(kRouter6, kClient6, kIcmp6,
                            icmpError(3, 0,
                                      ipv6(kClient6, kFrontend6, kIcmp6,
                                           icmpEcho(128, 7, 1)))))),
      dnatCase("DnatIpv4ErrorFromClient",
               "the client's port unreachable about frontend:53 -> client goes to the backend, "
               "quoting backend:5353",
               eth4(ipv4(kClient4, kFrontend4, kIcmp,
                         icmpError(3, 3,
                                   ipv4(kFrontend4, kClient4, kUdp, udp(53, 40000, hello))))),
               kBackend4, 5353,
               eth4(ipv4(kClient4, kBackend4, kIcmp,
                         icmpError(3, 3,
                                   ipv4(kBackend4, kClient4, kUdp, udp(5353, 40000, hello)))))),
      snatCase("SnatIpv6ErrorFromClient",
               "a pod's ICMPv6 error about a reply it got leaves from the node address, "
               "quoting node:61000",
               eth6(ipv6(kClient6, kFrontend6, kIcmp6,
                         icmpError(1, 4, ipv6(kFrontend6, kClient6, kTcp, tcp(443, 40000))))),
               kNode6, 61000,
               eth6(ipv6(kNode6, kFrontend6, kIcmp6,
                         icmpError(1, 4, ipv6(kFrontend6, kNode6, kTcp, tcp(443, 61000)))))),
  };
  NatCase mismatch = dnatCase("DnatToOtherFamilyDrops", "NAT46 is out of scope",
                              eth4(ipv4(kClient4, kFrontend4, kTcp, tcp(40000, 80))),
                              kBackend6, 8080, {});
  mismatch.reason = DropReason::kNatFamilyMismatch;
  cases.push_back(mismatch);
  NatCase reverseMismatch = reverseCase(
      "ReverseNatWithOtherFamilyDrops", "an IPv4 original for an IPv6 reply (NAT64): refused",
      eth6(ipv6(kBackend6, kClient6, kTcp, tcp(8443, 40000))), tcp4Flow, {});
  reverseMismatch.reason = DropReason::kNatFamilyMismatch;
  cases.push_back(reverseMismatch);
  return cases;
}
// clang-format on

class NatFixtureTest : public testing::TestWithParam<NatCase> {};

TEST_P(NatFixtureTest, RewritesToTheExpectedPacket) {
  const NatCase& c = GetParam();
  Bytes packet = c.input;
  const Framing framing =
      (packet[0] >> 4) == 4 || (packet[0] >> 4) == 6 ? Framing::kIp : Framing::kEthernet;
  ParsedPacket parsed;
  ASSERT_EQ(parsePacket(packet, framing, parsed), DropReason::kNone) << c.scenario;
  ParsedPacket before = parsed;
  ASSERT_EQ(toString(apply(packet, parsed, c.op, c.address, c.port, c.original)),
            toString(c.reason));
  const Bytes& want = c.expected.empty() ? c.input : c.expected;
  EXPECT_EQ(packet, want) << c.scenario;
  // The tuple NAT reports is what a fresh parse of the result finds.
  ParsedPacket reparsed;
  ASSERT_EQ(parsePacket(packet, framing, reparsed), DropReason::kNone);
  EXPECT_EQ(reparsed.tuple, parsed.tuple);
  EXPECT_EQ(reparsed.l4Offset, before.l4Offset);
  if (c.reason != DropReason::kNone) {
    EXPECT_EQ(parsed.tuple, before.tuple);  // a drop leaves the parse alone too
  }
}

std::string caseName(const testing::TestParamInfo<NatCase>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Nat, NatFixtureTest, testing::ValuesIn(natCases()), caseName);

TEST(NatTest, ABufferShorterThanTheParsedOneIsRefusedUntouched) {
  Bytes packet = eth4(ipv4(kClient4, kFrontend4, kTcp, tcp(40000, 80)));
  ParsedPacket parsed;
  ASSERT_EQ(parsePacket(packet, Framing::kEthernet, parsed), DropReason::kNone);
  Bytes copy = packet;
  EXPECT_EQ(dnat(std::span<uint8_t>(packet).first(packet.size() - 1), parsed, kBackend4, 8080),
            DropReason::kNatBufferMismatch);
  EXPECT_EQ(packet, copy);
}

TEST(NatTest, DnatThenSnatChainsOnOneParse) {
  Bytes packet = eth4(ipv4(kClient4, kFrontend4, kTcp, tcp(40000, 80, text("x"))));
  ParsedPacket parsed;
  ASSERT_EQ(parsePacket(packet, Framing::kEthernet, parsed), DropReason::kNone);
  ASSERT_EQ(dnat(packet, parsed, kBackend4, 8080), DropReason::kNone);
  ASSERT_EQ(snat(packet, parsed, kNode4, 61000), DropReason::kNone);
  EXPECT_EQ(packet, eth4(ipv4(kNode4, kBackend4, kTcp, tcp(61000, 8080, text("x")))));
  EXPECT_EQ(parsed.tuple, flow(kNode4, kBackend4, 61000, 8080, Protocol::kTcp));
  // And back: the reply, reverse NATed with the original flow.
  Bytes reply = eth4(ipv4(kBackend4, kNode4, kTcp, tcp(8080, 61000)));
  ASSERT_EQ(parsePacket(reply, Framing::kEthernet, parsed), DropReason::kNone);
  ASSERT_EQ(reverseNat(reply, parsed, flow(kClient4, kFrontend4, 40000, 80, Protocol::kTcp)),
            DropReason::kNone);
  EXPECT_EQ(reply, eth4(ipv4(kFrontend4, kClient4, kTcp, tcp(80, 40000))));
}

TEST(NatTest, AWrongChecksumStaysWrongByTheSameAmount) {
  // Incremental updates must not "repair" a corrupt packet into a valid one.
  Bytes packet = eth4(ipv4(kClient4, kFrontend4, kTcp, tcp(40000, 80)));
  packet[14 + 20 + 16] ^= 0x01;  // TCP checksum off by one
  packet[14 + 10] ^= 0x01;       // IPv4 header checksum off by one
  ParsedPacket parsed;
  ASSERT_EQ(parsePacket(packet, Framing::kEthernet, parsed), DropReason::kNone);
  ASSERT_EQ(dnat(packet, parsed, kBackend4, 8080), DropReason::kNone);
  Bytes good = eth4(ipv4(kClient4, kBackend4, kTcp, tcp(40000, 8080)));
  EXPECT_NE(packet, good);
  good[14 + 20 + 16] ^= 0x01;
  good[14 + 10] ^= 0x01;
  EXPECT_EQ(packet, good);
}

// A 2-byte payload that makes the UDP checksum of this datagram come out as 0
// (so it must be sent as 0xffff): with payload 0 the sum is S and the
// checksum ~S; a payload of ~S brings the sum to 0xffff.
Bytes payloadForZeroUdpChecksum(const IpAddress& src, const IpAddress& dst, uint16_t sport,
                                uint16_t dport) {
  Bytes segment = udp(sport, dport, {0, 0});
  fillL4Checksum(src, dst, kUdp, segment);
  return {segment[6], segment[7]};
}

TEST(NatTest, AUdpChecksumThatUpdatesToZeroIsSentAs0xffff) {
  // RFC 768: 0 would tell the receiver "no checksum". Random packets hit this
  // once in 65535, so it is forced here, for both families.
  for (bool v6 : {false, true}) {
    const IpAddress& client = v6 ? kClient6 : kClient4;
    const IpAddress& frontend = v6 ? kFrontend6 : kFrontend4;
    const IpAddress& backend = v6 ? kBackend6 : kBackend4;
    const Bytes payload = payloadForZeroUdpChecksum(client, backend, 40000, 5353);
    auto build = [&](const IpAddress& dst, uint16_t dport) {
      Bytes l4 = udp(40000, dport, payload);
      return v6 ? eth6(ipv6(client, dst, kUdp, l4)) : eth4(ipv4(client, dst, kUdp, l4));
    };
    Bytes packet = build(frontend, 53);
    ParsedPacket parsed;
    ASSERT_EQ(parsePacket(packet, Framing::kEthernet, parsed), DropReason::kNone);
    ASSERT_EQ(dnat(packet, parsed, backend, 5353), DropReason::kNone);
    EXPECT_EQ(packet, build(backend, 5353)) << (v6 ? "IPv6" : "IPv4");
    EXPECT_EQ(packet[parsed.l4Offset + 6], 0xff);
    EXPECT_EQ(packet[parsed.l4Offset + 7], 0xff);
  }
}

// --- Random packets ------------------------------------------------------------
// A packet described by a Spec is built from scratch; NAT applied to it must
// give exactly the packet built from the Spec with the rewrite applied, and
// every checksum in it must match a full recomputation.

enum class Kind { kTcp, kUdp, kUdpNoChecksum, kEcho, kError };

struct Spec {
  bool v6 = false;
  Kind kind = Kind::kTcp;
  Kind innerKind = Kind::kTcp;    // kError: what the quote is
  size_t quoteLength = 0;         // kError: bytes of the inner packet quoted, 0 = all
  IpAddress src, dst;             // the packet's, or for kError the quote's
  uint16_t sport = 0, dport = 0;  // ports; echo id in both
  IpAddress errorSrc, errorDst;   // kError: the outer header
  Bytes payload;
  int framing = 0;  // 0 bare IP, 1 Ethernet, 2 Ethernet + VLAN
  size_t padding = 0;
};

Bytes buildL3(const Spec& s, Kind kind, const IpAddress& src, const IpAddress& dst) {
  const uint8_t icmp = s.v6 ? kIcmp6 : kIcmp;
  uint8_t protocol = kTcp;
  Bytes l4;
  switch (kind) {
    case Kind::kTcp:
      l4 = tcp(s.sport, s.dport, s.payload);
      break;
    case Kind::kUdp:
    case Kind::kUdpNoChecksum:
      protocol = kUdp;
      l4 = udp(s.sport, s.dport, s.payload);
      break;
    case Kind::kEcho:
      protocol = icmp;
      l4 = icmpEcho(s.v6 ? 128 : 8, s.sport, 99, s.payload);
      break;
    case Kind::kError:
      break;
  }
  bool keep = kind == Kind::kUdpNoChecksum;
  return s.v6 ? ipv6(src, dst, protocol, l4, {.keepL4Checksum = keep})
              : ipv4(src, dst, protocol, l4, {.keepL4Checksum = keep});
}

Bytes build(const Spec& s) {
  Bytes l3;
  if (s.kind != Kind::kError) {
    l3 = buildL3(s, s.kind, s.src, s.dst);
  } else {
    Bytes quote = buildL3(s, s.innerKind, s.src, s.dst);
    if (s.quoteLength != 0) quote.resize(std::min(quote.size(), s.quoteLength));
    Bytes error = icmpError(s.v6 ? 1 : 3, 3, quote);
    l3 = s.v6 ? ipv6(s.errorSrc, s.errorDst, kIcmp6, error)
              : ipv4(s.errorSrc, s.errorDst, kIcmp, error);
  }
  if (s.framing == 0) return l3;
  Bytes frame = ethernet(l3, s.v6 ? kEtherTypeIpv6 : kEtherTypeIpv4,
                         s.framing == 2 ? std::optional<uint16_t>(42) : std::nullopt);
  return cat(frame, Bytes(s.padding, 0x5a));
}

IpAddress randomAddress(std::mt19937& rng, bool v6) {
  if (!v6) return IpAddress::v4FromHost(static_cast<uint32_t>(rng()));
  std::array<uint8_t, 16> b;
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return IpAddress::v6(b);
}

// Recomputes every checksum of a packet from scratch and compares it with
// the field: IPv4 header, L4 (or the ICMP error's, and the quote's IPv4
// header and, when quoted whole, its L4).
void expectChecksumsRecompute(const Bytes& b, const ParsedPacket& p, const Spec& s) {
  auto field = [&](size_t off) { return static_cast<uint16_t>(b[off] << 8 | b[off + 1]); };
  auto headerCheck = [&](size_t ip) {
    Bytes h(b.begin() + static_cast<ptrdiff_t>(ip), b.begin() + static_cast<ptrdiff_t>(ip + 20));
    put16(h, 10, 0);
    EXPECT_EQ(field(ip + 10), refChecksum(refSum(h.data(), h.size()))) << "IPv4 header at " << ip;
  };
  // L4 checksum of [l4, end) for the IP header at ip, field at l4 + off.
  auto l4Check = [&](size_t ip, size_t l4, size_t end, uint8_t protocol, size_t off) {
    Bytes seg(b.begin() + static_cast<ptrdiff_t>(l4), b.begin() + static_cast<ptrdiff_t>(end));
    put16(seg, off, 0);
    uint64_t sum = refSum(seg.data(), seg.size());
    if (protocol != kIcmp) {
      size_t n = s.v6 ? 16 : 4;
      sum += refSum(&b[ip + (s.v6 ? 8 : 12)], n) + refSum(&b[ip + (s.v6 ? 24 : 16)], n);
      sum += protocol + seg.size();
    }
    uint16_t want = refChecksum(sum);
    if (protocol == kUdp && want == 0) want = 0xffff;
    EXPECT_EQ(field(l4 + off), want) << "L4 checksum at " << l4;
  };
  auto l4Of = [&](Kind k, size_t ip, size_t l4, size_t end) {
    switch (k) {
      case Kind::kTcp:
        l4Check(ip, l4, end, kTcp, 16);
        break;
      case Kind::kUdp:
        l4Check(ip, l4, end, kUdp, 6);
        break;
      case Kind::kUdpNoChecksum:
        EXPECT_EQ(field(l4 + 6), 0);
        break;
      case Kind::kEcho:
        l4Check(ip, l4, end, s.v6 ? kIcmp6 : kIcmp, 2);
        break;
      case Kind::kError:
        break;
    }
  };
  if (!s.v6) headerCheck(p.l3Offset);
  if (s.kind != Kind::kError) {
    l4Of(s.kind, p.l3Offset, p.l4Offset, p.l3End);
    return;
  }
  l4Check(p.l3Offset, p.l4Offset, p.l3End, s.v6 ? kIcmp6 : kIcmp, 2);
  if (!s.v6) headerCheck(p.innerL3Offset);
  if (s.quoteLength == 0) l4Of(s.innerKind, p.innerL3Offset, p.innerL4Offset, p.l3End);
}

// A random packet of every kind the rewrites handle: TCP, UDP with and
// without a checksum, ICMP echo, and ICMP errors quoting each (whole or cut
// short), IPv4 and IPv6, bare or in Ethernet with and without VLAN.
Spec randomSpec(std::mt19937& rng) {
  Spec s;
  s.v6 = rng() % 2;
  const Kind kinds[] = {Kind::kTcp, Kind::kUdp, Kind::kUdpNoChecksum, Kind::kEcho, Kind::kError};
  s.kind = kinds[rng() % 5];
  s.innerKind = kinds[rng() % 4];
  s.src = randomAddress(rng, s.v6);
  s.dst = randomAddress(rng, s.v6);
  s.sport = static_cast<uint16_t>(rng());
  s.dport = static_cast<uint16_t>(rng());
  Kind l4Kind = s.kind == Kind::kError ? s.innerKind : s.kind;
  if (l4Kind == Kind::kEcho) s.dport = s.sport;
  s.payload = Bytes(rng() % 48);
  for (auto& x : s.payload) x = static_cast<uint8_t>(rng());
  s.framing = static_cast<int>(rng() % 3);
  s.padding = s.framing == 0 ? 0 : rng() % 8;
  if (s.kind == Kind::kError) {
    // From the quote's destination itself (its own error), or a router.
    s.errorSrc = rng() % 2 ? s.dst : randomAddress(rng, s.v6);
    s.errorDst = s.src;
    // Whole quote, or cut short: at least IP header + 8 bytes of L4.
    size_t ipHeader = s.v6 ? 40 : 20;
    s.quoteLength = rng() % 2 ? 0 : ipHeader + 8 + rng() % 16;
    // Half a quoted TCP checksum cannot be updated, and is left as it was;
    // the from-scratch build cannot express that, so skip that one length.
    if (s.quoteLength == ipHeader + 17) s.quoteLength = ipHeader + 16;
  }
  return s;
}

TEST(NatPropertyTest, RandomPacketsMatchAFromScratchBuildAndRecomputedChecksums) {
  std::mt19937 rng(20240601);  // fixed: failures reproduce
  constexpr int kPackets = 20000;
  std::map<std::string, int> counts;
  for (int i = 0; i < kPackets; ++i) {
    const Spec s = randomSpec(rng);
    const Kind l4Kind = s.kind == Kind::kError ? s.innerKind : s.kind;
    const Bytes input = build(s);
    const Framing framing = s.framing == 0 ? Framing::kIp : Framing::kEthernet;

    Bytes packet = input;
    ParsedPacket parsed;
    ASSERT_EQ(parsePacket(packet, framing, parsed), DropReason::kNone) << i;

    // Pick a rewrite and work out the Spec of the packet it should produce.
    Spec want = s;
    const Op op = static_cast<Op>(rng() % 3);
    IpAddress a = randomAddress(rng, s.v6);
    auto port = static_cast<uint16_t>(rng());
    FlowTuple original{randomAddress(rng, s.v6), randomAddress(rng, s.v6),
                       static_cast<uint16_t>(rng()), static_cast<uint16_t>(rng()),
                       parsed.tuple.protocol};
    if (l4Kind == Kind::kEcho) original.dstPort = original.srcPort;
    const bool error = s.kind == Kind::kError;
    const bool echo = l4Kind == Kind::kEcho;
    switch (op) {
      case Op::kDnat:
        if (!error) {
          want.dst = a;
          want.dport = port;
          if (echo) want.sport = port;
        } else {
          want.errorDst = a;
          want.src = a;
          want.sport = port;
          if (echo) want.dport = port;
        }
        break;
      case Op::kSnat:
        if (!error) {
          want.src = a;
          want.sport = port;
          if (echo) want.dport = port;
        } else {
          want.errorSrc = a;
          want.dst = a;
          want.dport = port;
          if (echo) want.sport = port;
        }
        break;
      case Op::kReverse:
        if (!error) {
          want.src = original.dst;
          want.dst = original.src;
          want.sport = original.dstPort;
          want.dport = original.srcPort;
        } else {
          if (s.errorSrc == s.dst) want.errorSrc = original.dst;
          want.errorDst = original.src;
          want.src = original.src;
          want.dst = original.dst;
          want.sport = original.srcPort;
          want.dport = original.dstPort;
        }
        break;
    }
    ASSERT_EQ(apply(packet, parsed, op, a, port, original), DropReason::kNone) << i;
    ASSERT_EQ(packet, build(want)) << "packet " << i << " op " << static_cast<int>(op);
    expectChecksumsRecompute(packet, parsed, want);
    ParsedPacket reparsed;
    ASSERT_EQ(parsePacket(packet, framing, reparsed), DropReason::kNone);
    ASSERT_EQ(reparsed.tuple, parsed.tuple) << i;
    if (testing::Test::HasFailure()) break;
    static const char* kKindNames[] = {"tcp", "udp", "udp_no_checksum", "echo", "error"};
    ++counts[std::string(s.v6 ? "v6 " : "v4 ") + kKindNames[static_cast<int>(s.kind)]];
  }
  for (const auto& [kind, n] : counts) {
    EXPECT_GT(n, 1000) << kind;  // every family x kind got real coverage
    std::cout << "  " << kind << ": " << n << "\n";
  }
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

// fullNat() is dnat() then snat(), byte for byte and in what it leaves in
// `parsed`, over random packets of every kind (its one-pass path for TCP and
// UDP, the two calls for echo and errors), with and without Ethernet/VLAN.
TEST(NatPropertyTest, FullNatIsDnatThenSnat) {
  std::mt19937 rng(20261207);
  std::map<int, int> kindsSeen;
  for (int i = 0; i < 20000; ++i) {
    const Spec s = randomSpec(rng);
    const Bytes input = build(s);
    const Framing framing = s.framing == 0 ? Framing::kIp : Framing::kEthernet;
    // Sometimes an address or port already what it becomes.
    const IpAddress dst = rng() % 8 == 0 ? s.dst : randomAddress(rng, s.v6);
    const IpAddress src = rng() % 8 == 0 ? s.src : randomAddress(rng, s.v6);
    const auto dport = rng() % 8 == 0 ? s.dport : static_cast<uint16_t>(rng());
    const auto sport = rng() % 8 == 0 ? s.sport : static_cast<uint16_t>(rng());

    Bytes one = input, two = input;
    ParsedPacket p1, p2;
    ASSERT_EQ(parsePacket(one, framing, p1), DropReason::kNone) << i;
    ASSERT_EQ(parsePacket(two, framing, p2), DropReason::kNone) << i;
    ASSERT_EQ(fullNat(one, p1, dst, dport, src, sport), DropReason::kNone) << i;
    ASSERT_EQ(dnat(two, p2, dst, dport), DropReason::kNone) << i;
    ASSERT_EQ(snat(two, p2, src, sport), DropReason::kNone) << i;
    ASSERT_EQ(one, two) << "packet " << i << " kind " << static_cast<int>(s.kind);
    ASSERT_EQ(p1.tuple, p2.tuple) << i;
    ++kindsSeen[static_cast<int>(s.kind)];
  }
  EXPECT_EQ(kindsSeen.size(), 5u);
  // A family other than the packet's is refused, the packet untouched.
  Bytes packet = eth4(ipv4(kClient4, kFrontend4, kTcp, tcp(40000, 80, text("x"))));
  const Bytes copy = packet;
  ParsedPacket parsed;
  ASSERT_EQ(parsePacket(packet, Framing::kEthernet, parsed), DropReason::kNone);
  EXPECT_EQ(fullNat(packet, parsed, kBackend6, 8080, kNode4, 61000), DropReason::kNatFamilyMismatch);
  EXPECT_EQ(packet, copy);
}

}  // namespace
}  // namespace sluice

namespace sluice {
namespace {

// applyTranslation() with the deltas prepared from the tuples writes what
// fullNat() writes, byte for byte, over random packets: TCP and UDP (with
// and without a checksum) are rewritten, fields sometimes already what they
// become, sometimes swapped (changes that cancel: a sum that folds to
// 0xffff); echo and errors are refused and left as they were, as is a
// tuple of the other family.
TEST(NatPropertyTest, PreparedTranslationIsFullNatByteForByte) {
  std::mt19937 rng(20261208);
  std::map<int, int> rewritten;
  int refused = 0;
  for (int i = 0; i < 20000; ++i) {
    const Spec s = randomSpec(rng);
    const Bytes input = build(s);
    const Framing framing = s.framing == 0 ? Framing::kIp : Framing::kEthernet;
    Bytes general = input, prepared = input;
    ParsedPacket p1, p2;
    ASSERT_EQ(parsePacket(general, framing, p1), DropReason::kNone) << i;
    ASSERT_EQ(parsePacket(prepared, framing, p2), DropReason::kNone) << i;
    const FlowTuple& from = p1.tuple;
    FlowTuple to{rng() % 8 == 0 ? from.src : randomAddress(rng, s.v6),
                 rng() % 8 == 0 ? from.dst : randomAddress(rng, s.v6),
                 rng() % 8 == 0 ? from.srcPort : static_cast<uint16_t>(rng()),
                 rng() % 8 == 0 ? from.dstPort : static_cast<uint16_t>(rng()), from.protocol};
    if (rng() % 8 == 0) to = from.reversed();
    const bool rewrites = s.kind == Kind::kTcp || s.kind == Kind::kUdp || s.kind == Kind::kUdpNoChecksum;
    const bool applied = applyTranslation(prepared, p2, to, translationDeltas(from, to));
    ASSERT_EQ(applied, rewrites) << i;
    if (!applied) {
      ASSERT_EQ(prepared, input) << i;
      ++refused;
      continue;
    }
    ASSERT_EQ(fullNat(general, p1, to.dst, to.dstPort, to.src, to.srcPort), DropReason::kNone) << i;
    ASSERT_EQ(prepared, general) << "packet " << i << " kind " << static_cast<int>(s.kind);
    ++rewritten[static_cast<int>(s.kind)];
  }
  EXPECT_EQ(rewritten.size(), 3u);
  EXPECT_GT(refused, 1000);
  Bytes packet = eth4(ipv4(kClient4, kFrontend4, kTcp, tcp(40000, 80, text("x"))));
  const Bytes copy = packet;
  ParsedPacket parsed;
  ASSERT_EQ(parsePacket(packet, Framing::kEthernet, parsed), DropReason::kNone);
  const FlowTuple v6{kNode6, kBackend6, 61000, 8080, Protocol::kTcp};
  EXPECT_FALSE(applyTranslation(packet, parsed, v6, translationDeltas(parsed.tuple, v6)));
  EXPECT_EQ(packet, copy);
}

}  // namespace
}  // namespace sluice
