#include "dataplane/packet.h"

#include <array>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>

namespace sluice {

static_assert(std::is_trivially_destructible_v<IpAddress>, "setV4/setV6 reuse its storage");

namespace {

// IANA protocol numbers of IPv6 extension headers and payloads that are not
// L4 protocols we handle (RFC 8200, 4302, 4303, 6275, 7401, 5533, 3692).
constexpr uint8_t kNextHopByHop = 0;
constexpr uint8_t kNextRouting = 43;
constexpr uint8_t kNextFragment = 44;
constexpr uint8_t kNextAh = 51;
constexpr uint8_t kNextDestOptions = 60;
constexpr uint8_t kNextMobility = 135;
constexpr uint8_t kNextHip = 139;
constexpr uint8_t kNextShim6 = 140;
constexpr uint8_t kNextExperiment1 = 253;
constexpr uint8_t kNextExperiment2 = 254;

// IPv4 flags/fragment-offset word: MF is 0x2000, the offset the low 13 bits;
// DF (0x4000) is fine.
constexpr uint16_t kIpv4FragmentMask = 0x3fff;

uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

// Address fields are constructed in place. `field = IpAddress::v4(...)`
// would go through a stack temporary that the out-of-line factory writes with
// narrow stores and the assignment reads back with a wide load: a
// store-forwarding stall per address, which took an IPv4 parse from ~6 to
// ~14 ns. IpAddress is trivially destructible, so reusing its storage is fine.
void setV4(IpAddress& field, const uint8_t* p) {
  ::new (&field) IpAddress(IpAddress::v4({p[0], p[1], p[2], p[3]}));
}

void setV6(IpAddress& field, const uint8_t* p) {
  std::array<uint8_t, 16> bytes;
  std::memcpy(bytes.data(), p, 16);
  ::new (&field) IpAddress(IpAddress::v6(bytes));
}

// An IP header parsed at some offset: where its L4 starts and what it is.
struct L3 {
  uint32_t l4Offset = 0;
  uint8_t nextHeader = 0;
};

// Walks IPv6 extension headers starting with `l3.nextHeader` at `l3.l4Offset`,
// none running past `end`; on success both name the L4 header. A header that
// runs past `end` is kTruncatedL3.
DropReason skipIpv6ExtHeaders(const uint8_t* buf, uint32_t end, L3& l3) {
  for (int count = 0;; ++count) {
    switch (l3.nextHeader) {
      case kNextHopByHop:
      case kNextRouting:
      case kNextDestOptions: {
        if (l3.nextHeader == kNextHopByHop && count != 0) return DropReason::kIpv6HopByHopNotFirst;
        if (count == kMaxIpv6ExtHeaders) return DropReason::kIpv6ExtHeaderLimit;
        // Each is at least 8 bytes: next header, length in 8-octet units
        // beyond the first, then (Routing) type and segments left.
        if (end - l3.l4Offset < 8) return DropReason::kTruncatedL3;
        const uint8_t* h = buf + l3.l4Offset;
        uint32_t length = (uint32_t{h[1]} + 1) * 8;
        if (end - l3.l4Offset < length) return DropReason::kTruncatedL3;
        if (l3.nextHeader == kNextRouting && h[3] != 0) return DropReason::kIpv6RoutingHeader;
        l3.nextHeader = h[0];
        l3.l4Offset += length;
        break;
      }
      case kNextFragment:
        return DropReason::kFragment;
      case kNextAh:
      case kNextMobility:
      case kNextHip:
      case kNextShim6:
      case kNextExperiment1:
      case kNextExperiment2:
        return DropReason::kIpv6ExtHeaderUnsupported;
      default:
        return DropReason::kNone;  // an upper-layer protocol (or ESP / No Next Header)
    }
  }
}

bool isIcmpEchoType(IpFamily family, uint8_t type) {
  return family == IpFamily::kV4 ? (type == kIcmpEchoRequest || type == kIcmpEchoReply)
                                 : (type == kIcmpV6EchoRequest || type == kIcmpV6EchoReply);
}

bool isIcmpErrorType(IpFamily family, uint8_t type) {
  // ICMPv4 source quench (4, deprecated by RFC 6633) and redirect (5, never
  // to be translated) are left out on purpose.
  if (family == IpFamily::kV4) {
    return type == kIcmpDestUnreachable || type == kIcmpTimeExceeded ||
           type == kIcmpParameterProblem;
  }
  return type == kIcmpV6DestUnreachable || type == kIcmpV6PacketTooBig ||
         type == kIcmpV6TimeExceeded || type == kIcmpV6ParameterProblem;
}

// The L4 protocols we handle, given the IP version: ICMP only in IPv4,
// ICMPv6 only in IPv6. SCTP is refused: its CRC32c cannot be updated
// incrementally, so NAT would have to re-read the whole packet.
bool toProtocol(IpFamily family, uint8_t number, Protocol& out) {
  switch (number) {
    case static_cast<uint8_t>(Protocol::kTcp):
      out = Protocol::kTcp;
      return true;
    case static_cast<uint8_t>(Protocol::kUdp):
      out = Protocol::kUdp;
      return true;
    case static_cast<uint8_t>(Protocol::kIcmp):
      out = Protocol::kIcmp;
      return family == IpFamily::kV4;
    case static_cast<uint8_t>(Protocol::kIcmpV6):
      out = Protocol::kIcmpV6;
      return family == IpFamily::kV6;
    default:
      return false;
  }
}

// The packet an ICMP error quotes, from out.innerL3Offset to out.l3End: an IP
// header of the outer's version (no options, not a fragment) and 8 bytes of
// TCP, UDP or ICMP echo. The quote is usually cut short, so its IP length
// fields are not checked against what is there.
DropReason parseInner(const uint8_t* buf, ParsedPacket& out) {
  const uint32_t end = out.l3End;
  const uint32_t off = out.innerL3Offset;
  const uint8_t* ip = buf + off;
  L3 l3;
  if (out.family == IpFamily::kV4) {
    if (end - off < kIpv4HeaderLength) return DropReason::kIcmpErrorTruncatedInner;
    if (ip[0] != 0x45) return DropReason::kIcmpErrorBadInner;  // version 4, IHL 5
    if ((load16(ip + 6) & kIpv4FragmentMask) != 0) return DropReason::kIcmpErrorBadInner;
    l3 = {off + static_cast<uint32_t>(kIpv4HeaderLength), ip[9]};
    setV4(out.tuple.src, ip + 12);
    setV4(out.tuple.dst, ip + 16);
  } else {
    if (end - off < kIpv6HeaderLength) return DropReason::kIcmpErrorTruncatedInner;
    if ((ip[0] >> 4) != 6) return DropReason::kIcmpErrorBadInner;
    l3 = {off + static_cast<uint32_t>(kIpv6HeaderLength), ip[6]};
    DropReason ext = skipIpv6ExtHeaders(buf, end, l3);
    if (ext == DropReason::kTruncatedL3) return DropReason::kIcmpErrorTruncatedInner;
    if (ext != DropReason::kNone) return DropReason::kIcmpErrorBadInner;
    setV6(out.tuple.src, ip + 8);
    setV6(out.tuple.dst, ip + 24);
  }
  out.innerL4Offset = l3.l4Offset;
  if (!toProtocol(out.family, l3.nextHeader, out.innerProtocol)) {
    return DropReason::kIcmpErrorUnsupportedInner;
  }
  if (end - l3.l4Offset < kIcmpQuotedL4Length) return DropReason::kIcmpErrorTruncatedInner;
  const uint8_t* l4 = buf + l3.l4Offset;
  out.tuple.protocol = out.innerProtocol;
  if (out.innerProtocol == Protocol::kTcp || out.innerProtocol == Protocol::kUdp) {
    out.tuple.srcPort = load16(l4);
    out.tuple.dstPort = load16(l4 + 2);
    return DropReason::kNone;
  }
  if (!isIcmpEchoType(out.family, l4[0])) return DropReason::kIcmpErrorUnsupportedInner;
  out.innerIsIcmpEcho = true;
  out.tuple.srcPort = out.tuple.dstPort = load16(l4 + 4);
  return DropReason::kNone;
}

// L4 header at out.l4Offset, ending at out.l3End.
DropReason parseL4(const uint8_t* buf, ParsedPacket& out) {
  const uint32_t avail = out.l3End - out.l4Offset;
  const uint8_t* l4 = buf + out.l4Offset;
  out.l4Length = avail;
  out.tuple.protocol = out.protocol;
  switch (out.protocol) {
    case Protocol::kTcp: {
      if (avail < kTcpHeaderLength) return DropReason::kTruncatedL4;
      uint32_t dataOffset = static_cast<uint32_t>(l4[12] >> 4) * 4;
      if (dataOffset < kTcpHeaderLength) return DropReason::kBadTcpHeaderLength;
      if (dataOffset > avail) return DropReason::kTruncatedL4;
      out.tuple.srcPort = load16(l4);
      out.tuple.dstPort = load16(l4 + 2);
      return DropReason::kNone;
    }
    case Protocol::kUdp: {
      if (avail < kUdpHeaderLength) return DropReason::kTruncatedL4;
      uint16_t length = load16(l4 + 4);
      if (length < kUdpHeaderLength || length > avail) return DropReason::kBadUdpLength;
      out.l4Length = length;
      out.tuple.srcPort = load16(l4);
      out.tuple.dstPort = load16(l4 + 2);
      return DropReason::kNone;
    }
    case Protocol::kIcmp:
    case Protocol::kIcmpV6: {
      if (avail < kIcmpHeaderLength) return DropReason::kTruncatedL4;
      out.icmpType = l4[0];
      out.icmpCode = l4[1];
      if (isIcmpEchoType(out.family, out.icmpType)) {
        out.isIcmpEcho = true;
        out.tuple.srcPort = out.tuple.dstPort = load16(l4 + 4);
        return DropReason::kNone;
      }
      if (!isIcmpErrorType(out.family, out.icmpType)) return DropReason::kIcmpUnsupportedType;
      out.isIcmpError = true;
      out.innerL3Offset = out.l4Offset + static_cast<uint32_t>(kIcmpHeaderLength);
      return parseInner(buf, out);
    }
    case Protocol::kSctp:
      break;  // toProtocol never yields it (see there)
  }
  return DropReason::kUnsupportedProtocol;
}

DropReason parseIpv4(const uint8_t* buf, uint32_t size, ParsedPacket& out) {
  const uint32_t off = out.l3Offset;
  if (size - off < kIpv4HeaderLength) return DropReason::kTruncatedL3;
  const uint8_t* ip = buf + off;
  if ((ip[0] >> 4) != 4) return DropReason::kBadIpVersion;
  uint32_t headerLength = uint32_t{ip[0] & 0x0fu} * 4;
  if (headerLength < kIpv4HeaderLength) return DropReason::kBadIpv4HeaderLength;
  if (headerLength > kIpv4HeaderLength) return DropReason::kIpv4Options;
  uint16_t totalLength = load16(ip + 2);
  if (totalLength < kIpv4HeaderLength || totalLength > size - off) {
    return DropReason::kBadIpTotalLength;
  }
  if ((load16(ip + 6) & kIpv4FragmentMask) != 0) return DropReason::kFragment;
  out.family = IpFamily::kV4;
  out.l4Offset = off + static_cast<uint32_t>(kIpv4HeaderLength);
  out.l3End = off + totalLength;
  if (!toProtocol(IpFamily::kV4, ip[9], out.protocol)) return DropReason::kUnsupportedProtocol;
  setV4(out.tuple.src, ip + 12);
  setV4(out.tuple.dst, ip + 16);
  return parseL4(buf, out);
}

DropReason parseIpv6(const uint8_t* buf, uint32_t size, ParsedPacket& out) {
  const uint32_t off = out.l3Offset;
  if (size - off < kIpv6HeaderLength) return DropReason::kTruncatedL3;
  const uint8_t* ip = buf + off;
  if ((ip[0] >> 4) != 6) return DropReason::kBadIpVersion;
  uint16_t payloadLength = load16(ip + 4);
  // 0 is a jumbogram (RFC 2675), whose real length is in a Hop-by-Hop
  // option; no link we serve has an MTU above 65535.
  if (payloadLength == 0 || payloadLength > size - off - kIpv6HeaderLength) {
    return DropReason::kBadIpTotalLength;
  }
  out.family = IpFamily::kV6;
  out.l3End = off + static_cast<uint32_t>(kIpv6HeaderLength) + payloadLength;
  L3 l3{off + static_cast<uint32_t>(kIpv6HeaderLength), ip[6]};
  if (DropReason r = skipIpv6ExtHeaders(buf, out.l3End, l3); r != DropReason::kNone) return r;
  out.l4Offset = l3.l4Offset;
  if (!toProtocol(IpFamily::kV6, l3.nextHeader, out.protocol)) {
    return DropReason::kUnsupportedProtocol;
  }
  setV6(out.tuple.src, ip + 8);
  setV6(out.tuple.dst, ip + 24);
  return parseL4(buf, out);
}

}  // namespace

DropReason parsePacket(std::span<const uint8_t> buffer, Framing framing, ParsedPacket& out) {
  // Field by field rather than `out = ParsedPacket{}`: that builds a
  // temporary with narrow stores and copies it with wide loads, a
  // store-forwarding stall that cost a third of the parse. The tuple's
  // addresses, protocol and ports are always written on success.
  out.l3Offset = out.l4Offset = out.l3End = out.l4Length = 0;
  out.hasVlan = out.isIcmpEcho = out.isIcmpError = out.innerIsIcmpEcho = false;
  out.vlanId = 0;
  out.icmpType = out.icmpCode = 0;
  out.innerL3Offset = out.innerL4Offset = 0;
  out.innerProtocol = Protocol::kTcp;
  const uint8_t* buf = buffer.data();
  // Offsets are 32-bit; an IP packet is at most ~64 KiB, so capping the size
  // only ever hides bytes no header can reach.
  const auto size = static_cast<uint32_t>(buffer.size() < std::numeric_limits<uint32_t>::max()
                                              ? buffer.size()
                                              : std::numeric_limits<uint32_t>::max());
  if (framing == Framing::kIp) {
    if (size < 1) return DropReason::kTruncatedL3;
    switch (buf[0] >> 4) {
      case 4:
        return parseIpv4(buf, size, out);
      case 6:
        return parseIpv6(buf, size, out);
      default:
        return DropReason::kBadIpVersion;
    }
  }

  if (size < kEthernetHeaderLength) return DropReason::kTruncatedL2;
  uint16_t etherType = load16(buf + 12);
  out.l3Offset = kEthernetHeaderLength;
  if (etherType == kEtherTypeVlan) {
    if (size < kEthernetHeaderLength + kVlanTagLength) return DropReason::kTruncatedL2;
    out.hasVlan = true;
    out.vlanId = load16(buf + 14) & 0x0fff;
    etherType = load16(buf + 16);
    out.l3Offset += kVlanTagLength;
    if (etherType == kEtherTypeVlan || etherType == kEtherTypeQinQ) {
      return DropReason::kStackedVlan;
    }
  } else if (etherType == kEtherTypeQinQ) {
    return DropReason::kStackedVlan;
  }
  switch (etherType) {
    case kEtherTypeIpv4:
      return parseIpv4(buf, size, out);
    case kEtherTypeIpv6:
      return parseIpv6(buf, size, out);
    default:
      return DropReason::kUnsupportedEtherType;
  }
}

}  // namespace sluice
