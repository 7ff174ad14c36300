// Packet parsing as data (STYLE.md, after Katran's fixtures): each case is a
// scenario, the input bytes, and the expected drop reason or parse result.
#include "dataplane/packet.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/drop_reason.h"

#include "tests/dataplane/packet_fixtures.h"

namespace sluice {
namespace {

using namespace sluice::pkt;  // NOLINT: the packet builder's vocabulary

// --- Fixtures ----------------------------------------------------------------

const IpAddress kClient4 = addr("10.0.0.1");
const IpAddress kFrontend4 = addr("10.96.0.10");
const IpAddress kBackend4 = addr("10.244.1.5");
const IpAddress kRouter4 = addr("10.244.0.1");
const IpAddress kClient6 = addr("fd00::1");
const IpAddress kFrontend6 = addr("fd00:96::10");
const IpAddress kBackend6 = addr("fd00:244::5");
const IpAddress kRouter6 = addr("fd00:244::1");

constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;
constexpr uint8_t kIcmp = 1;
constexpr uint8_t kIcmp6 = 58;
constexpr uint8_t kHopByHop = 0;
constexpr uint8_t kRouting = 43;
constexpr uint8_t kFragmentHeader = 44;
constexpr uint8_t kDestOptions = 60;

// What a successful parse must report.
struct Want {
  FlowTuple tuple{};
  uint32_t l3Offset = 0;
  uint32_t l4Offset = 0;
  uint32_t l3End = 0;
  uint32_t l4Length = 0;
  bool icmpEcho = false;
  bool icmpError = false;
  uint32_t innerL3Offset = 0;
  uint32_t innerL4Offset = 0;
  std::optional<uint16_t> vlanId{};
};

struct ParseCase {
  std::string name;      // gtest name
  std::string scenario;  // one line: what the packet is and why this is the answer
  Bytes input;
  Framing framing = Framing::kEthernet;
  DropReason reason = DropReason::kNone;
  Want want;  // when reason is kNone
};

void PrintTo(const ParseCase& c, std::ostream* os) { *os << c.scenario; }

FlowTuple tuple(const IpAddress& src, const IpAddress& dst, uint16_t sport, uint16_t dport,
                Protocol p) {
  return {src, dst, sport, dport, p};
}

ParseCase ok(std::string name, std::string scenario, Bytes input, Want want,
             Framing framing = Framing::kEthernet) {
  return {std::move(name), std::move(scenario), std::move(input),
          framing,         DropReason::kNone,   std::move(want)};
}

ParseCase drop(std::string name, std::string scenario, Bytes input, DropReason reason,
               Framing framing = Framing::kEthernet) {
  return {std::move(name), std::move(scenario), std::move(input), framing, reason, {}};
}

// Fixture tables are laid out by hand, one case per block.
// clang-format off
std::vector<ParseCase> validCases() {
  const Bytes hello = text("hello");
  // Quoted forward packets (client -> backend after DNAT), for ICMP errors.
  const Bytes udp4Fwd = ipv4(kClient4, kBackend4, kUdp, udp(40000, 53, hello));
  const Bytes tcp4Fwd = ipv4(kClient4, kBackend4, kTcp, tcp(40000, 8080, hello));
  const Bytes echo4Fwd = ipv4(kClient4, kBackend4, kIcmp, icmpEcho(8, 0x4242, 1));
  const Bytes tcp6Fwd = ipv6(kClient6, kBackend6, kTcp, tcp(40000, 8080, hello));
  const Bytes udp6FwdExt = ipv6(kClient6, kBackend6, kUdp, udp(40000, 53, hello),
                                {.exts = {{kDestOptions, {1, 4, 0, 0, 0, 0}}}});
  return {
      ok("Ipv4Tcp", "IPv4 TCP client -> frontend over Ethernet",
         eth4(ipv4(kClient4, kFrontend4, kTcp, tcp(40000, 80, hello))),
         {.tuple = tuple(kClient4, kFrontend4, 40000, 80, Protocol::kTcp),
          .l3Offset = 14, .l4Offset = 34, .l3End = 14 + 20 + 20 + 5, .l4Length = 25}),
      ok("Ipv4TcpWithOptions", "TCP options (data offset 8) are fine: only IP options are refused",
         eth4(ipv4(kClient4, kFrontend4, kTcp,
                   tcp(40000, 80, hello, {2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 1, 1, 0}))),
         {.tuple = tuple(kClient4, kFrontend4, 40000, 80, Protocol::kTcp),
          .l3Offset = 14, .l4Offset = 34, .l3End = 14 + 20 + 32 + 5, .l4Length = 37}),
      ok("Ipv4Udp", "IPv4 UDP DNS query to a ClusterIP",
         eth4(ipv4(kClient4, kFrontend4, kUdp, udp(40000, 53, hello))),
         {.tuple = tuple(kClient4, kFrontend4, 40000, 53, Protocol::kUdp),
          .l3Offset = 14, .l4Offset = 34, .l3End = 14 + 20 + 8 + 5, .l4Length = 13}),
      ok("Ipv4UdpZeroChecksum", "UDP over IPv4 with checksum 0 (none) still parses",
         eth4(ipv4(kClient4, kFrontend4, kUdp, udp(40000, 53, hello), {.keepL4Checksum = true})),
         {.tuple = tuple(kClient4, kFrontend4, 40000, 53, Protocol::kUdp),
          .l3Offset = 14, .l4Offset = 34, .l3End = 47, .l4Length = 13}),
      ok("Ipv4UdpShorterThanPayload",
         "UDP length 8 inside a 12-byte IP payload: the checksum covers 8 bytes",
         eth4(ipv4(kClient4, kFrontend4, kUdp, cat(udp(40000, 53), {0, 0, 0, 0}))),
         {.tuple = tuple(kClient4, kFrontend4, 40000, 53, Protocol::kUdp),
          .l3Offset = 14, .l4Offset = 34, .l3End = 14 + 20 + 12, .l4Length = 8}),
      ok("Ipv4TcpRawIp", "bare IPv4 packet (TUN / L3 device framing)",
         ipv4(kClient4, kFrontend4, kTcp, tcp(40000, 80)),
         {.tuple = tuple(kClient4, kFrontend4, 40000, 80, Protocol::kTcp),
          .l3Offset = 0, .l4Offset = 20, .l3End = 40, .l4Length = 20},
         Framing::kIp),
      ok("Ipv4TcpVlan", "802.1Q VLAN 100 (PCP 5) carrying IPv4 TCP",
         ethernet(ipv4(kClient4, kFrontend4, kTcp, tcp(40000, 80)), kEtherTypeIpv4, 0xa064),
         {.tuple = tuple(kClient4, kFrontend4, 40000, 80, Protocol::kTcp),
          .l3Offset = 18, .l4Offset = 38, .l3End = 58, .l4Length = 20, .vlanId = 100}),
      ok("Ipv4EthernetPadding",
         "a 60-byte minimum frame: the 16 bytes of padding after the IP packet are ignored",
         cat(eth4(ipv4(kClient4, kFrontend4, kUdp, udp(40000, 53, {1, 2}))), Bytes(16, 0)),
         {.tuple = tuple(kClient4, kFrontend4, 40000, 53, Protocol::kUdp),
          .l3Offset = 14, .l4Offset = 34, .l3End = 14 + 30, .l4Length = 10}),
      ok("Ipv4IcmpEchoRequest", "ping to a frontend: the identifier 0x4242 stands in both ports",
         eth4(ipv4(kClient4, kFrontend4, kIcmp, icmpEcho(8, 0x4242, 7, hello))),
         {.tuple = tuple(kClient4, kFrontend4, 0x4242, 0x4242, Protocol::kIcmp),
          .l3Offset = 14, .l4Offset = 34, .l3End = 14 + 20 + 13, .l4Length = 13,
          .icmpEcho = true}),
      ok("Ipv4IcmpEchoReply", "echo reply from a backend",
         eth4(ipv4(kBackend4, kClient4, kIcmp, icmpEcho(0, 0x4242, 7))),
         {.tuple = tuple(kBackend4, kClient4, 0x4242, 0x4242, Protocol::kIcmp),
          .l3Offset = 14, .l4Offset = 34, .l3End = 42, .l4Length = 8, .icmpEcho = true}),
      ok("Ipv4PortUnreachableQuotingUdp",
         "backend's port unreachable quoting the IP header + 8 bytes of the client's UDP",
         eth4(ipv4(kBackend4, kClient4, kIcmp, icmpError(3, 3, truncated(udp4Fwd, 28)))),
         {.tuple = tuple(kClient4, kBackend4, 40000, 53, Protocol::kUdp),
          .l3Offset = 14, .l4Offset = 34, .l3End = 14 + 20 + 8 + 28, .l4Length = 36,
          .icmpError = true, .innerL3Offset = 42, .innerL4Offset = 62}),
      ok("Ipv4FragNeededQuotingTcp",
         "router's fragmentation needed (PMTUD, MTU 1400) quoting the whole TCP header",
         eth4(ipv4(kRouter4, kClient4, kIcmp, icmpError(3, 4, truncated(tcp4Fwd, 40), 1400))),
         {.tuple = tuple(kClient4, kBackend4, 40000, 8080, Protocol::kTcp),
          .l3Offset = 14, .l4Offset = 34, .l3End = 14 + 20 + 8 + 40, .l4Length = 48,
          .icmpError = true, .innerL3Offset = 42, .innerL4Offset = 62}),
      ok("Ipv4TimeExceededQuotingEcho", "TTL expired in transit quoting an echo request",
         eth4(ipv4(kRouter4, kClient4, kIcmp, icmpError(11, 0, echo4Fwd))),
         {.tuple = tuple(kClient4, kBackend4, 0x4242, 0x4242, Protocol::kIcmp),
          .l3Offset = 14, .l4Offset = 34, .l3End = 14 + 20 + 8 + 28, .l4Length = 36,
          .icmpError = true, .innerL3Offset = 42, .innerL4Offset = 62}),
      ok("Ipv4ParameterProblemQuotingUdp", "parameter problem (pointer 8) quoting UDP",
         eth4(ipv4(kBackend4, kClient4, kIcmp, icmpError(12, 0, udp4Fwd, 8u << 24))),
         {.tuple = tuple(kClient4, kBackend4, 40000, 53, Protocol::kUdp),
          .l3Offset = 14, .l4Offset = 34, .l3End = 14 + 20 + 8 + 33, .l4Length = 41,
          .icmpError = true, .innerL3Offset = 42, .innerL4Offset = 62}),
      ok("Ipv6Tcp", "IPv6 TCP client -> frontend over Ethernet",
         eth6(ipv6(kClient6, kFrontend6, kTcp, tcp(40000, 443, hello))),
         {.tuple = tuple(kClient6, kFrontend6, 40000, 443, Protocol::kTcp),
          .l3Offset = 14, .l4Offset = 54, .l3End = 14 + 40 + 25, .l4Length = 25}),
      ok("Ipv6UdpRawIp", "bare IPv6 UDP packet",
         ipv6(kClient6, kFrontend6, kUdp, udp(40000, 53, hello)),
         {.tuple = tuple(kClient6, kFrontend6, 40000, 53, Protocol::kUdp),
          .l3Offset = 0, .l4Offset = 40, .l3End = 53, .l4Length = 13},
         Framing::kIp),
      ok("Ipv6TcpVlan", "802.1Q VLAN 7 carrying IPv6 TCP",
         ethernet(ipv6(kClient6, kFrontend6, kTcp, tcp(40000, 443)), kEtherTypeIpv6, 7),
         {.tuple = tuple(kClient6, kFrontend6, 40000, 443, Protocol::kTcp),
          .l3Offset = 18, .l4Offset = 58, .l3End = 78, .l4Length = 20, .vlanId = 7}),
      ok("Ipv6ExtHeadersSkipped",
         "Hop-by-Hop (8 B), Destination Options (16 B), Routing with 0 segments left (24 B), "
         "Destination Options (8 B) are skipped to TCP",
         eth6(ipv6(kClient6, kFrontend6, kTcp, tcp(40000, 443),
                   {.exts = {{kHopByHop, {1, 4, 0, 0, 0, 0}},
                             {kDestOptions, Bytes(14, 0)},
                             {kRouting, cat({0, 0, 0, 0, 0, 0}, Bytes(16, 0xaa))},
                             {kDestOptions, {}}}})),
         {.tuple = tuple(kClient6, kFrontend6, 40000, 443, Protocol::kTcp),
          .l3Offset = 14, .l4Offset = 14 + 40 + 8 + 16 + 24 + 8, .l3End = 14 + 40 + 56 + 20,
          .l4Length = 20}),
      ok("Ipv6IcmpEchoRequest", "ICMPv6 echo request: identifier in both ports",
         eth6(ipv6(kClient6, kFrontend6, kIcmp6, icmpEcho(128, 0x0102, 1, hello))),
         {.tuple = tuple(kClient6, kFrontend6, 0x0102, 0x0102, Protocol::kIcmpV6),
          .l3Offset = 14, .l4Offset = 54, .l3End = 14 + 40 + 13, .l4Length = 13,
          .icmpEcho = true}),
      ok("Ipv6IcmpEchoReply", "ICMPv6 echo reply",
         eth6(ipv6(kBackend6, kClient6, kIcmp6, icmpEcho(129, 0x0102, 1))),
         {.tuple = tuple(kBackend6, kClient6, 0x0102, 0x0102, Protocol::kIcmpV6),
          .l3Offset = 14, .l4Offset = 54, .l3End = 62, .l4Length = 8, .icmpEcho = true}),
      ok("Ipv6PacketTooBigQuotingTcp", "router's packet too big (MTU 1280) quoting TCP",
         eth6(ipv6(kRouter6, kClient6, kIcmp6, icmpError(2, 0, tcp6Fwd, 1280))),
         {.tuple = tuple(kClient6, kBackend6, 40000, 8080, Protocol::kTcp),
          .l3Offset = 14, .l4Offset = 54, .l3End = 14 + 40 + 8 + 65, .l4Length = 73,
          .icmpError = true, .innerL3Offset = 62, .innerL4Offset = 102}),
      ok("Ipv6PortUnreachableQuotingUdpWithExtHeader",
         "port unreachable quoting UDP behind a Destination Options header",
         eth6(ipv6(kBackend6, kClient6, kIcmp6, icmpError(1, 4, truncated(udp6FwdExt, 56)))),
         {.tuple = tuple(kClient6, kBackend6, 40000, 53, Protocol::kUdp),
          .l3Offset = 14, .l4Offset = 54, .l3End = 14 + 40 + 8 + 56, .l4Length = 64,
          .icmpError = true, .innerL3Offset = 62, .innerL4Offset = 110}),
      ok("Ipv6TimeExceededQuotingEcho", "hop limit exceeded quoting an ICMPv6 echo request",
         eth6(ipv6(kRouter6, kClient6, kIcmp6,
                   icmpError(3, 0, ipv6(kClient6, kBackend6, kIcmp6, icmpEcho(128, 9, 1))))),
         {.tuple = tuple(kClient6, kBackend6, 9, 9, Protocol::kIcmpV6),
          .l3Offset = 14, .l4Offset = 54, .l3End = 14 + 40 + 8 + 48, .l4Length = 56,
          .icmpError = true, .innerL3Offset = 62, .innerL4Offset = 102}),
      ok("Ipv6ParameterProblemQuotingTcp", "ICMPv6 parameter problem quoting TCP",
         eth6(ipv6(kBackend6, kClient6, kIcmp6, icmpError(4, 0, truncated(tcp6Fwd, 48), 6))),
         {.tuple = tuple(kClient6, kBackend6, 40000, 8080, Protocol::kTcp),
          .l3Offset = 14, .l4Offset = 54, .l3End = 14 + 40 + 8 + 48, .l4Length = 56,
          .icmpError = true, .innerL3Offset = 62, .innerL4Offset = 102}),
  };
}

std::vector<ParseCase> dropCases() {
  const Bytes tcp4 = ipv4(kClient4, kFrontend4, kTcp, tcp(40000, 80));
  const Bytes udp4Fwd = ipv4(kClient4, kBackend4, kUdp, udp(40000, 53, text("hello")));
  const Bytes udp6Fwd = ipv6(kClient6, kBackend6, kUdp, udp(40000, 53));
  auto v6 = [](uint8_t protocol, const Bytes& l4, const Ip6Fields& f = {}) {
    return eth6(ipv6(kClient6, kFrontend6, protocol, l4, f));
  };
  auto v4 = [](uint8_t protocol, const Bytes& l4, const Ip4Fields& f = {}) {
    return eth4(ipv4(kClient4, kFrontend4, protocol, l4, f));
  };
  Bytes badDataOffset = tcp(40000, 80);
  badDataOffset[12] = 0x40;
  Bytes hugeDataOffset = tcp(40000, 80);
  hugeDataOffset[12] = 0xf0;
  Bytes shortUdpLength = udp(40000, 53, text("hi"));
  put16(shortUdpLength, 4, 7);
  Bytes longUdpLength = udp(40000, 53, text("hi"));
  put16(longUdpLength, 4, 11);
  return {
      drop("Empty", "zero-length buffer", {}, DropReason::kTruncatedL2),
      drop("ShortEthernet", "13 bytes: one short of the Ethernet header",
           truncated(eth4(tcp4), 13), DropReason::kTruncatedL2),
      drop("ShortVlanTag", "802.1Q tag cut after 2 bytes",
           truncated(ethernet(tcp4, kEtherTypeIpv4, 5), 16), DropReason::kTruncatedL2),
      drop("Arp", "ARP: not ours", ethernet(Bytes(28, 0), 0x0806),
           DropReason::kUnsupportedEtherType),
      drop("QinQ", "802.1ad S-tag outermost", ethernet(ethernet(tcp4, 0x0800, 5), 0x88a8),
           DropReason::kStackedVlan),
      drop("DoubleVlan", "two 802.1Q tags",
           ethernet(cat({0x00, 0x05, 0x08, 0x00}, tcp4), kEtherTypeVlan, 6),
           DropReason::kStackedVlan),
      drop("EtherTypeSaysIpv4ButV6", "IPv4 EtherType in front of an IPv6 header",
           ethernet(ipv6(kClient6, kFrontend6, kTcp, tcp(1, 2)), kEtherTypeIpv4),
           DropReason::kBadIpVersion),
      drop("EtherTypeSaysIpv6ButV4", "IPv6 EtherType in front of an IPv4 header (padded to 40)",
           ethernet(cat(tcp4, Bytes(20, 0)), kEtherTypeIpv6), DropReason::kBadIpVersion),
      drop("RawIpEmpty", "empty L3 buffer", {}, DropReason::kTruncatedL3, Framing::kIp),
      drop("RawIpVersion5", "version nibble 5", cat({0x55}, Bytes(39, 0)),
           DropReason::kBadIpVersion, Framing::kIp),
      drop("ShortIpv4Header", "19 bytes of IPv4 header", truncated(eth4(tcp4), 14 + 19),
           DropReason::kTruncatedL3),
      drop("ShortIpv6Header", "39 bytes of IPv6 header",
           truncated(v6(kTcp, tcp(40000, 80)), 14 + 39), DropReason::kTruncatedL3),
      drop("Ipv4Ihl4", "IHL 4 (16 bytes) cannot hold the addresses",
           v4(kTcp, tcp(40000, 80), {.versionIhl = 0x44}), DropReason::kBadIpv4HeaderLength),
      drop("Ipv4Options", "IHL 6 with a 4-byte router-alert option: options are refused",
           v4(kTcp, tcp(40000, 80), {.options = {0x94, 0x04, 0, 0}}), DropReason::kIpv4Options),
      drop("Ipv4TotalLengthPastBuffer", "total length 1500 in a 54-byte frame (cut capture)",
           v4(kTcp, tcp(40000, 80), {.totalLength = 1500}), DropReason::kBadIpTotalLength),
      drop("Ipv4TotalLengthBelowHeader", "total length 19 < the 20-byte header",
           v4(kTcp, tcp(40000, 80), {.totalLength = 19}), DropReason::kBadIpTotalLength),
      drop("Ipv4FirstFragment", "MF set, offset 0: refused, later fragments could not follow",
           v4(kTcp, tcp(40000, 80), {.flagsFragment = 0x2000}), DropReason::kFragment),
      drop("Ipv4LaterFragment", "offset 185 (1480 bytes), no ports in it",
           v4(kUdp, Bytes(20, 0), {.flagsFragment = 185}), DropReason::kFragment),
      drop("Ipv6PayloadLengthPastBuffer", "payload length 1000 in a short frame",
           v6(kTcp, tcp(40000, 80), {.payloadLength = 1000}), DropReason::kBadIpTotalLength),
      drop("Ipv6Jumbogram", "payload length 0 (jumbogram)",
           v6(kTcp, tcp(40000, 80), {.payloadLength = 0}), DropReason::kBadIpTotalLength),
      drop("Ipv6FragmentHeader", "IPv6 Fragment header",
           v6(kUdp, udp(40000, 53), {.exts = {{kFragmentHeader, {0, 1, 0, 0, 0, 1}}}}),
           DropReason::kFragment),
      drop("Ipv6HopByHopSecond", "Hop-by-Hop after Destination Options (RFC 8200 §4.3)",
           v6(kTcp, tcp(40000, 80), {.exts = {{kDestOptions, {}}, {kHopByHop, {}}}}),
           DropReason::kIpv6HopByHopNotFirst),
      drop("Ipv6Ah", "Authentication Header: NAT would break it anyway",
           v6(kTcp, tcp(40000, 80), {.exts = {{51, Bytes(10, 0)}}}),
           DropReason::kIpv6ExtHeaderUnsupported),
      drop("Ipv6TooManyExtHeaders", "five Destination Options headers (limit 4)",
           v6(kTcp, tcp(40000, 80),
              {.exts = {{kDestOptions, {}}, {kDestOptions, {}}, {kDestOptions, {}},
                        {kDestOptions, {}}, {kDestOptions, {}}}}),
           DropReason::kIpv6ExtHeaderLimit),
      drop("Ipv6RoutingSegmentsLeft", "SRv6 routing header with 1 segment left",
           v6(kTcp, tcp(40000, 80), {.exts = {{kRouting, cat({4, 1, 0, 0, 0, 0}, Bytes(16, 1))}}}),
           DropReason::kIpv6RoutingHeader),
      drop("Ipv6ExtHeaderPastPayload", "Destination Options claiming 16 bytes in an 8-byte payload",
           v6(kDestOptions, {kTcp, 1, 0, 0, 0, 0, 0, 0}),
           DropReason::kTruncatedL3),
      drop("Ipv6Esp", "ESP: encrypted, no ports", v6(50, Bytes(16, 0)),
           DropReason::kUnsupportedProtocol),
      drop("Ipv6NoNextHeader", "No Next Header (59)", v6(59, Bytes(8, 0)),
           DropReason::kUnsupportedProtocol),
      drop("Ipv4Gre", "GRE (47)", v4(47, Bytes(8, 0)), DropReason::kUnsupportedProtocol),
      drop("Ipv4Sctp", "SCTP: CRC32c cannot be updated incrementally", v4(132, Bytes(12, 0)),
           DropReason::kUnsupportedProtocol),
      drop("Ipv4CarryingIcmpV6", "ICMPv6 inside IPv4", v4(kIcmp6, icmpEcho(128, 1, 1)),
           DropReason::kUnsupportedProtocol),
      drop("Ipv6CarryingIcmpV4", "ICMP inside IPv6", v6(kIcmp, icmpEcho(8, 1, 1)),
           DropReason::kUnsupportedProtocol),
      drop("ShortTcp", "19 bytes of TCP header", v4(kTcp, truncated(tcp(40000, 80), 19)),
           DropReason::kTruncatedL4),
      drop("TcpDataOffset4", "TCP data offset 4 (16 bytes)", v4(kTcp, badDataOffset),
           DropReason::kBadTcpHeaderLength),
      drop("TcpDataOffsetPastPacket", "TCP data offset 15 (60 bytes) in a 20-byte segment",
           v4(kTcp, hugeDataOffset), DropReason::kTruncatedL4),
      drop("ShortUdp", "7 bytes of UDP header", v4(kUdp, truncated(udp(40000, 53), 7)),
           DropReason::kTruncatedL4),
      drop("UdpLengthBelowHeader", "UDP length 7", v4(kUdp, shortUdpLength),
           DropReason::kBadUdpLength),
      drop("UdpLengthPastPacket", "UDP length 11 in a 10-byte payload", v6(kUdp, longUdpLength),
           DropReason::kBadUdpLength),
      drop("ShortIcmp", "7 bytes of ICMP", v4(kIcmp, truncated(icmpEcho(8, 1, 1), 7)),
           DropReason::kTruncatedL4),
      drop("IcmpRedirect", "ICMP redirect: never translated", v4(kIcmp, icmpError(5, 1, udp4Fwd)),
           DropReason::kIcmpUnsupportedType),
      drop("IcmpV6NeighborSolicitation", "NDP is the host's",
           v6(kIcmp6, cat({135, 0, 0, 0, 0, 0, 0, 0}, Bytes(16, 0))),
           DropReason::kIcmpUnsupportedType),
      drop("IcmpErrorQuoting7BytesOfL4", "quote ends one byte short of the 8 L4 bytes",
           v4(kIcmp, icmpError(3, 3, truncated(udp4Fwd, 27))),
           DropReason::kIcmpErrorTruncatedInner),
      drop("IcmpErrorQuotingPartialIpHeader", "quote holds 19 bytes of the inner IPv4 header",
           v4(kIcmp, icmpError(3, 3, truncated(udp4Fwd, 19))),
           DropReason::kIcmpErrorTruncatedInner),
      drop("IcmpErrorInnerOptions", "quoted header has options (IHL 6)",
           v4(kIcmp, icmpError(3, 3, ipv4(kClient4, kBackend4, kUdp, udp(1, 2),
                                          {.options = {1, 1, 1, 1}}))),
           DropReason::kIcmpErrorBadInner),
      drop("IcmpErrorInnerFragment", "quoted packet is a non-first fragment",
           v4(kIcmp, icmpError(3, 3, ipv4(kClient4, kBackend4, kUdp, udp(1, 2),
                                          {.flagsFragment = 100}))),
           DropReason::kIcmpErrorBadInner),
      drop("IcmpV4ErrorQuotingIpv6", "ICMPv4 error quoting an IPv6 packet",
           v4(kIcmp, icmpError(3, 3, udp6Fwd)), DropReason::kIcmpErrorBadInner),
      drop("IcmpErrorAboutIcmpError", "RFC 1122: no errors about errors",
           v4(kIcmp, icmpError(3, 3, ipv4(kClient4, kBackend4, kIcmp,
                                          icmpError(3, 3, truncated(udp4Fwd, 28))))),
           DropReason::kIcmpErrorUnsupportedInner),
      drop("IcmpErrorQuotingGre", "quoted GRE: nothing to translate",
           v4(kIcmp, icmpError(3, 3, ipv4(kClient4, kBackend4, 47, Bytes(8, 0)))),
           DropReason::kIcmpErrorUnsupportedInner),
      drop("IcmpV6ErrorQuotingFragment", "quoted IPv6 packet has a Fragment header",
           v6(kIcmp6, icmpError(1, 4, ipv6(kClient6, kBackend6, kUdp, udp(1, 2),
                                           {.exts = {{kFragmentHeader, {0, 0, 0, 0, 0, 1}}}}))),
           DropReason::kIcmpErrorBadInner),
      drop("IcmpV6ErrorQuoteEndsInExtHeader", "quote ends inside the inner Destination Options",
           v6(kIcmp6, icmpError(1, 4, truncated(ipv6(kClient6, kBackend6, kUdp, udp(1, 2),
                                                     {.exts = {{kDestOptions, Bytes(14, 0)}}}),
                                                50))),
           DropReason::kIcmpErrorTruncatedInner),
  };
}
// clang-format on

class PacketFixtureTest : public testing::TestWithParam<ParseCase> {};

TEST_P(PacketFixtureTest, ParsesAsTheFixtureSays) {
  const ParseCase& c = GetParam();
  // An exact-size heap copy, so ASan builds catch any read past the end.
  Bytes buffer = c.input;
  ParsedPacket p;
  DropReason got = parsePacket(buffer, c.framing, p);
  ASSERT_EQ(toString(got), toString(c.reason)) << c.scenario;
  if (c.reason != DropReason::kNone) return;
  const Want& w = c.want;
  EXPECT_EQ(p.tuple, w.tuple) << p.tuple.src.toString() << ":" << p.tuple.srcPort << " -> "
                              << p.tuple.dst.toString() << ":" << p.tuple.dstPort;
  EXPECT_EQ(p.family, w.tuple.src.family());
  EXPECT_EQ(p.l3Offset, w.l3Offset);
  EXPECT_EQ(p.l4Offset, w.l4Offset);
  EXPECT_EQ(p.l3End, w.l3End);
  EXPECT_EQ(p.l4Length, w.l4Length);
  EXPECT_EQ(p.isIcmpEcho, w.icmpEcho);
  EXPECT_EQ(p.isIcmpError, w.icmpError);
  EXPECT_EQ(p.hasVlan, w.vlanId.has_value());
  EXPECT_EQ(p.vlanId, w.vlanId.value_or(0));
  if (w.icmpError) {
    EXPECT_EQ(p.innerL3Offset, w.innerL3Offset);
    EXPECT_EQ(p.innerL4Offset, w.innerL4Offset);
    EXPECT_EQ(p.innerProtocol, w.tuple.protocol);
    EXPECT_EQ(p.innerIsIcmpEcho,
              w.tuple.protocol == Protocol::kIcmp || w.tuple.protocol == Protocol::kIcmpV6);
  } else {
    EXPECT_EQ(p.protocol, w.tuple.protocol);
  }
}

std::string caseName(const testing::TestParamInfo<ParseCase>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Valid, PacketFixtureTest, testing::ValuesIn(validCases()), caseName);
INSTANTIATE_TEST_SUITE_P(Drop, PacketFixtureTest, testing::ValuesIn(dropCases()), caseName);

// Every prefix of every valid fixture: a parse either drops or describes only
// bytes inside the prefix. Each prefix is its own exact-size allocation so
// ASan flags a read even one byte past it.
TEST(PacketTruncationTest, EveryPrefixOfAValidPacketDropsOrStaysInsideIt) {
  size_t prefixes = 0;
  for (const ParseCase& c : validCases()) {
    for (size_t k = 0; k < c.input.size(); ++k) {
      Bytes prefix(c.input.begin(), c.input.begin() + static_cast<ptrdiff_t>(k));
      ParsedPacket p;
      DropReason r = parsePacket(prefix, c.framing, p);
      ++prefixes;
      if (r != DropReason::kNone) continue;
      // Only padding may be cut off and still parse.
      EXPECT_LE(p.l3End, k) << c.name << " prefix " << k;
      EXPECT_EQ(p.l3End, c.want.l3End) << c.name << " prefix " << k;
    }
  }
  EXPECT_GT(prefixes, 1500u);  // the loop really ran
}

TEST(PacketTruncationTest, TruncatedPacketsReportTheLayerTheyEndIn) {
  Bytes frame = eth4(ipv4(kClient4, kFrontend4, kTcp, tcp(40000, 80)));
  ParsedPacket p;
  EXPECT_EQ(parsePacket(Bytes(frame.begin(), frame.begin() + 10), Framing::kEthernet, p),
            DropReason::kTruncatedL2);
  EXPECT_EQ(parsePacket(Bytes(frame.begin(), frame.begin() + 20), Framing::kEthernet, p),
            DropReason::kTruncatedL3);
  // Past the IP header the total length no longer fits the buffer.
  EXPECT_EQ(parsePacket(Bytes(frame.begin(), frame.begin() + 40), Framing::kEthernet, p),
            DropReason::kBadIpTotalLength);
}

TEST(PacketTest, ParsedPacketHoldsNoPointerIntoTheBuffer) {
  Bytes frame = eth4(ipv4(kClient4, kFrontend4, kUdp, udp(40000, 53)));
  ParsedPacket p;
  ASSERT_EQ(parsePacket(frame, Framing::kEthernet, p), DropReason::kNone);
  frame.assign(frame.size(), 0);  // the tuple was copied out, not referenced
  EXPECT_EQ(p.tuple, tuple(kClient4, kFrontend4, 40000, 53, Protocol::kUdp));
}

TEST(DropReasonTest, EveryReasonHasAUniqueSnakeCaseName) {
  std::set<std::string_view> names;
  for (size_t i = 0; i < kDropReasonCount; ++i) {
    std::string_view name = toString(static_cast<DropReason>(i));
    EXPECT_NE(name, "unknown") << i;
    EXPECT_EQ(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_"), name.npos) << name;
    EXPECT_TRUE(names.insert(name).second) << name;
  }
  EXPECT_EQ(toString(static_cast<DropReason>(kDropReasonCount)), "unknown");
  EXPECT_EQ(static_cast<int>(DropReason::kNone), 0);
}

}  // namespace
}  // namespace sluice
