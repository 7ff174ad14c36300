// Packet parsing for the userspace datapaths (DPDK, tests, fuzzing): one pass
// over an Ethernet frame or a bare IP packet that finds the L3/L4 headers and
// the FlowTuple NAT and conntrack key on.
//
// The parser never allocates, throws, or reads outside the buffer it is
// given; what it cannot handle it refuses with a DropReason. It does not
// verify checksums: NICs do on receive, and NAT's incremental updates carry a
// bad checksum through as bad, so the receiver still drops it.
//
// Threading: no state at all; any number of lcores may parse at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "dataplane/drop_reason.h"
#include "dataplane/flow.h"
#include "dataplane/ip_address.h"

namespace sluice {

// What the first byte of the buffer is.
enum class Framing : uint8_t {
  kEthernet,  // destination MAC (DPDK mbufs, AF_PACKET, XDP, pcap)
  kIp,        // the IP header (TUN devices, L3 interfaces); version nibble picks v4/v6
};

// Header sizes in bytes and EtherTypes (host order), from IEEE 802.3/802.1Q
// and the RFCs named.
inline constexpr size_t kEthernetHeaderLength = 14;
inline constexpr size_t kVlanTagLength = 4;
inline constexpr uint16_t kEtherTypeIpv4 = 0x0800;
inline constexpr uint16_t kEtherTypeIpv6 = 0x86dd;
inline constexpr uint16_t kEtherTypeVlan = 0x8100;  // 802.1Q C-tag
inline constexpr uint16_t kEtherTypeQinQ = 0x88a8;  // 802.1ad S-tag
inline constexpr size_t kIpv4HeaderLength = 20;     // RFC 791, IHL 5: options refused
inline constexpr size_t kIpv6HeaderLength = 40;     // RFC 8200
inline constexpr size_t kTcpHeaderLength = 20;      // RFC 793, data offset 5
inline constexpr size_t kUdpHeaderLength = 8;       // RFC 768
inline constexpr size_t kIcmpHeaderLength = 8;      // type, code, checksum, 4 bytes (id/seq)
// L4 bytes an ICMP error must quote for us to translate it: RFC 792 promises
// 8 (ports, or echo id); RFC 1812 and 4443 quote more when they can.
inline constexpr size_t kIcmpQuotedL4Length = 8;
// Extension headers walked before giving up. RFC 8200 §4.1's order allows
// Hop-by-Hop, Destination Options, Routing, Destination Options without a
// Fragment header or IPsec (both refused anyway), hence 4, Cilium's bound too.
inline constexpr int kMaxIpv6ExtHeaders = 4;

// ICMP types this parser recognises (RFC 792, RFC 4443).
inline constexpr uint8_t kIcmpEchoReply = 0;
inline constexpr uint8_t kIcmpDestUnreachable = 3;  // code 4: fragmentation needed (PMTUD)
inline constexpr uint8_t kIcmpEchoRequest = 8;
inline constexpr uint8_t kIcmpTimeExceeded = 11;
inline constexpr uint8_t kIcmpParameterProblem = 12;
inline constexpr uint8_t kIcmpV6DestUnreachable = 1;
inline constexpr uint8_t kIcmpV6PacketTooBig = 2;
inline constexpr uint8_t kIcmpV6TimeExceeded = 3;
inline constexpr uint8_t kIcmpV6ParameterProblem = 4;
inline constexpr uint8_t kIcmpV6EchoRequest = 128;
inline constexpr uint8_t kIcmpV6EchoReply = 129;

// The result of a successful parse. Offsets are bytes from the start of the
// parsed buffer, which the caller keeps owning; nothing points into it, so a
// ParsedPacket can be copied freely but is only meaningful with its buffer.
struct ParsedPacket {
  uint32_t l3Offset = 0;  // IP header
  uint32_t l4Offset = 0;  // TCP/UDP/ICMP header, after any IPv6 extension headers
  // One past the IP packet's last byte (IPv4 total length, IPv6 40 + payload
  // length): Ethernet padding after it is not part of the packet.
  uint32_t l3End = 0;
  // Bytes the L4 checksum covers: the UDP length field for UDP (which may be
  // less than the IP payload), l3End - l4Offset otherwise.
  uint32_t l4Length = 0;

  IpFamily family = IpFamily::kV4;
  Protocol protocol = Protocol::kTcp;  // the outer L4 protocol
  bool hasVlan = false;
  uint16_t vlanId = 0;  // 802.1Q VID (12 bits, host order) when hasVlan

  // ICMP/ICMPv6 only: the outer message's type and code.
  uint8_t icmpType = 0;
  uint8_t icmpCode = 0;
  bool isIcmpEcho = false;   // echo request or reply: tuple ports hold the identifier
  bool isIcmpError = false;  // an error quoting a packet: the inner* fields are set

  // ICMP errors only: the quoted packet, which travelled the other way. Its
  // bytes end at l3End too; only the first 8 bytes of its L4 are guaranteed.
  uint32_t innerL3Offset = 0;
  uint32_t innerL4Offset = 0;
  Protocol innerProtocol = Protocol::kTcp;
  bool innerIsIcmpEcho = false;

  // The packet's flow, ports in host order. For ICMP echo the identifier
  // stands in both ports; for an ICMP error it is the quoted packet's tuple
  // (flow.h), so conntrack finds the flow the error is about.
  FlowTuple tuple;
};

// Parses `buffer` into `out`. Returns DropReason::kNone on success; otherwise
// the first reason the packet cannot be handled, and `out` is unspecified.
// Bytes past the IP packet's end (padding, FCS) are ignored.
DropReason parsePacket(std::span<const uint8_t> buffer, Framing framing, ParsedPacket& out);

}  // namespace sluice
