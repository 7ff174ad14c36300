#include "dataplane/nat.h"

#include <cstring>
#include <utility>

#include "dataplane/checksum.h"

namespace sluice {

namespace {

enum class Side : uint8_t { kSrc, kDst };

// Field offsets in bytes from the start of their header (RFC 791, 8200, 793,
// 768, 792/4443).
constexpr uint32_t kIpv4ChecksumOffset = 10;
constexpr uint32_t kIpv4SrcOffset = 12;
constexpr uint32_t kIpv4DstOffset = 16;
constexpr uint32_t kIpv6SrcOffset = 8;
constexpr uint32_t kIpv6DstOffset = 24;
constexpr uint32_t kTcpChecksumOffset = 16;
constexpr uint32_t kUdpChecksumOffset = 6;
constexpr uint32_t kIcmpChecksumOffset = 2;
constexpr uint32_t kIcmpIdOffset = 4;

uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

void store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// One IP header and the L4 header after it: the packet's own, or the packet
// an ICMP error quotes (whose L4 may be cut short after 8 bytes).
struct Headers {
  uint8_t* ip;
  uint8_t* l4;
  uint32_t l4Available;  // bytes from l4 to the end of the IP packet
  IpFamily family;
  Protocol protocol;
  bool icmpEcho;
};

Headers outerHeaders(uint8_t* p, const ParsedPacket& parsed) {
  return {.ip = p + parsed.l3Offset,
          .l4 = p + parsed.l4Offset,
          .l4Available = parsed.l3End - parsed.l4Offset,
          .family = parsed.family,
          .protocol = parsed.protocol,
          .icmpEcho = parsed.isIcmpEcho};
}

Headers innerHeaders(uint8_t* p, const ParsedPacket& parsed) {
  return {.ip = p + parsed.innerL3Offset,
          .l4 = p + parsed.innerL4Offset,
          .l4Available = parsed.l3End - parsed.innerL4Offset,
          .family = parsed.family,
          .protocol = parsed.innerProtocol,
          .icmpEcho = parsed.innerIsIcmpEcho};
}

uint32_t addressOffset(IpFamily family, Side side) {
  if (family == IpFamily::kV4) return side == Side::kSrc ? kIpv4SrcOffset : kIpv4DstOffset;
  return side == Side::kSrc ? kIpv6SrcOffset : kIpv6DstOffset;
}

// Addresses are 4 or 16 bytes; constant sizes let the compiler inline the
// compare and copy instead of calling libc (a fifth of a DNAT otherwise).
bool sameAddress(const uint8_t* a, const uint8_t* b, size_t n) {
  return n == 4 ? std::memcmp(a, b, 4) == 0 : std::memcmp(a, b, 16) == 0;
}

// The change from one address to another (4 or 16 bytes) as checksum
// words, 32 bits at a time (addBytes() goes 16 bits at a time, in a loop
// the compiler keeps: a fifth of a full NAT).
[[gnu::always_inline]] inline void addAddressChange(ChecksumDelta& d, const uint8_t* from,
                                                     const uint8_t* to, size_t n) {
  // Network order; compilers turn this into one load and a byte swap.
  auto load32 = [](const uint8_t* p) {
    return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
  };
  d.add32(load32(from), load32(to));
  if (n == 16) {
    d.add32(load32(from + 4), load32(to + 4));
    d.add32(load32(from + 8), load32(to + 8));
    d.add32(load32(from + 12), load32(to + 12));
  }
}

void copyAddress(uint8_t* to, const uint8_t* from, size_t n) {
  if (n == 4) {
    std::memcpy(to, from, 4);
  } else {
    std::memcpy(to, from, 16);
  }
}

// Writes `addr` (4 or 16 bytes, the header's family) over one side's address
// and keeps the IPv4 header checksum right. Returns the change to the address
// words, for the pseudo-header; adds every word it changed to `enclosing`.
ChecksumDelta rewriteAddress(const Headers& h, Side side, std::span<const uint8_t> addr,
                             ChecksumDelta& enclosing) {
  ChecksumDelta delta;
  uint8_t* field = h.ip + addressOffset(h.family, side);
  if (sameAddress(field, addr.data(), addr.size())) return delta;
  addAddressChange(delta, field, addr.data(), addr.size());
  copyAddress(field, addr.data(), addr.size());
  enclosing.add(delta);
  if (h.family == IpFamily::kV4) {
    uint8_t* checkField = h.ip + kIpv4ChecksumOffset;
    uint16_t oldCheck = load16(checkField);
    uint16_t newCheck = delta.applyTo(oldCheck);
    store16(checkField, newCheck);
    enclosing.add16(oldCheck, newCheck);
  }
  return delta;
}

// Writes `port` over one side's port (or the echo identifier, either side)
// and updates the L4 checksum with that and `pseudo`, the change to the
// pseudo-header. Adds every word it changed to `enclosing`.
void rewritePort(const Headers& h, Side side, uint16_t port, const ChecksumDelta& pseudo,
                 ChecksumDelta& enclosing) {
  ChecksumDelta delta;
  // ICMPv4 has no pseudo-header (RFC 792); TCP, UDP and ICMPv6 do.
  if (h.protocol != Protocol::kIcmp) delta.add(pseudo);
  const bool icmp = h.protocol == Protocol::kIcmp || h.protocol == Protocol::kIcmpV6;
  uint8_t* portField = h.l4 + (icmp ? kIcmpIdOffset : side == Side::kSrc ? 0 : 2);
  uint16_t oldPort = load16(portField);
  if (oldPort != port) {
    store16(portField, port);
    delta.add16(oldPort, port);
    enclosing.add16(oldPort, port);
  }
  if (delta.empty()) return;

  uint32_t checkOffset = kUdpChecksumOffset;
  if (icmp) checkOffset = kIcmpChecksumOffset;
  if (h.protocol == Protocol::kTcp) checkOffset = kTcpChecksumOffset;
  // A quoted TCP header may stop before its checksum (only 8 bytes are
  // promised); the ports are still rewritten, as Linux does.
  if (checkOffset + 2 > h.l4Available) return;
  uint8_t* checkField = h.l4 + checkOffset;
  uint16_t oldCheck = load16(checkField);
  // UDP without a checksum stays without one. Over IPv6 a zero is invalid
  // outside tunnels (RFC 6935), but it is the receiver's call, not ours.
  if (h.protocol == Protocol::kUdp && oldCheck == kUdpNoChecksum) return;
  uint16_t newCheck = delta.applyTo(oldCheck);
  if (h.protocol == Protocol::kUdp) newCheck = udpChecksumForWire(newCheck);
  store16(checkField, newCheck);
  enclosing.add16(oldCheck, newCheck);
}

void rewriteEndpoint(const Headers& h, Side side, const IpAddress& addr, uint16_t port,
                     ChecksumDelta& enclosing) {
  ChecksumDelta pseudo = rewriteAddress(h, side, addr.bytes(), enclosing);
  rewritePort(h, side, port, pseudo, enclosing);
}

// An ICMP error's own address: the IPv4 header checksum, or for ICMPv6 the
// message checksum through its pseudo-header, collected in `icmpDelta`.
void rewriteErrorAddress(const Headers& outer, Side side, const IpAddress& addr,
                         ChecksumDelta& icmpDelta) {
  ChecksumDelta ignored;
  ChecksumDelta pseudo = rewriteAddress(outer, side, addr.bytes(), ignored);
  if (outer.family == IpFamily::kV6) icmpDelta.add(pseudo);
}

// The ICMP error's checksum covers the whole quoted packet, so every word
// rewritten inside it lands here too.
void finishError(const Headers& outer, const ChecksumDelta& icmpDelta) {
  if (icmpDelta.empty()) return;
  uint8_t* checkField = outer.l4 + kIcmpChecksumOffset;
  store16(checkField, icmpDelta.applyTo(load16(checkField)));
}

void setTupleSide(FlowTuple& tuple, Side side, const IpAddress& addr, uint16_t port, bool echo) {
  if (side == Side::kSrc) {
    tuple.src = addr;
    tuple.srcPort = port;
  } else {
    tuple.dst = addr;
    tuple.dstPort = port;
  }
  if (echo) tuple.srcPort = tuple.dstPort = port;
}

DropReason check(std::span<uint8_t> packet, const ParsedPacket& parsed, const IpAddress& a,
                 const IpAddress& b) {
  if (a.family() != parsed.family || b.family() != parsed.family) {
    return DropReason::kNatFamilyMismatch;
  }
  if (packet.size() < parsed.l3End) return DropReason::kNatBufferMismatch;
  return DropReason::kNone;
}

// What every translation below comes down to for a TCP or UDP packet that
// is not an ICMP error (all but a few packets), in two steps: the checksum
// changes of rewriting tuple `from` into `to` (only the fields that differ
// count, as in rewriteAddress() and rewritePort()), then the fields written
// and those changes applied once each. The DPDK pipeline keeps the first
// step's result with a flow (applyTranslation). N is the address length, so
// the compares, copies and checksum words are straight-line code: the
// general path, which takes the length at run time, cost a full NAT about
// 230 instructions (bench/dpdk/pipeline_counts.sh).
template <size_t N>
TranslationDeltas deltasOf(const FlowTuple& from, const FlowTuple& to) {
  ChecksumDelta pseudo;
  auto address = [&](const IpAddress& a, const IpAddress& b) {
    const uint8_t* x = a.bytes().data();
    const uint8_t* y = b.bytes().data();
    if (!sameAddress(x, y, N)) addAddressChange(pseudo, x, y, N);
  };
  address(from.dst, to.dst);
  address(from.src, to.src);
  ChecksumDelta l4 = pseudo;
  if (from.dstPort != to.dstPort) l4.add16(from.dstPort, to.dstPort);
  if (from.srcPort != to.srcPort) l4.add16(from.srcPort, to.srcPort);
  return {N == 4 ? pseudo.folded() : uint16_t{0}, l4.folded()};
}

template <size_t N>
[[gnu::always_inline]] inline void applyDeltas(const Headers& h, const FlowTuple& to,
                                               TranslationDeltas d) {
  // Fields that do not change are written with what they hold.
  std::memcpy(h.ip + (N == 4 ? kIpv4DstOffset : kIpv6DstOffset), to.dst.bytes().data(), N);
  std::memcpy(h.ip + (N == 4 ? kIpv4SrcOffset : kIpv6SrcOffset), to.src.bytes().data(), N);
  if (N == 4 && d.ipv4Header != 0) {
    uint8_t* checkField = h.ip + kIpv4ChecksumOffset;
    store16(checkField, ChecksumDelta::ofFolded(d.ipv4Header).applyTo(load16(checkField)));
  }
  store16(h.l4 + 2, to.dstPort);
  store16(h.l4, to.srcPort);
  const bool udp = h.protocol == Protocol::kUdp;
  const uint32_t checkOffset = udp ? kUdpChecksumOffset : kTcpChecksumOffset;
  if (d.l4 == 0 || checkOffset + 2 > h.l4Available) return;
  uint8_t* checkField = h.l4 + checkOffset;
  const uint16_t oldCheck = load16(checkField);
  if (udp && oldCheck == kUdpNoChecksum) return;
  const uint16_t newCheck = ChecksumDelta::ofFolded(d.l4).applyTo(oldCheck);
  store16(checkField, udp ? udpChecksumForWire(newCheck) : newCheck);
}

// deltasOf() and applyDeltas() when they apply (returns false otherwise:
// ICMP, an ICMP error, another protocol), with `parsed.tuple` updated.
// Endpoints given as nullptr stay.
[[gnu::always_inline]] inline bool translateTransport(uint8_t* packet, ParsedPacket& parsed,
                                                      const IpAddress* dst, uint16_t dstPort,
                                                      const IpAddress* src, uint16_t srcPort) {
  if (parsed.isIcmpError ||
      (parsed.protocol != Protocol::kTcp && parsed.protocol != Protocol::kUdp)) {
    return false;
  }
  FlowTuple to = parsed.tuple;
  if (dst != nullptr) {
    to.dst = *dst;
    to.dstPort = dstPort;
  }
  if (src != nullptr) {
    to.src = *src;
    to.srcPort = srcPort;
  }
  const Headers h = outerHeaders(packet, parsed);
  if (parsed.family == IpFamily::kV4) {
    applyDeltas<4>(h, to, deltasOf<4>(parsed.tuple, to));
  } else {
    applyDeltas<16>(h, to, deltasOf<16>(parsed.tuple, to));
  }
  parsed.tuple = to;
  return true;
}

// DNAT and SNAT share everything but the side: `side` is the side of the
// flow's tuple being rewritten.
DropReason rewriteForward(std::span<uint8_t> packet, ParsedPacket& parsed, Side side,
                          const IpAddress& addr, uint16_t port) {
  if (DropReason r = check(packet, parsed, addr, addr); r != DropReason::kNone) return r;
  const Headers outer = outerHeaders(packet.data(), parsed);
  if (!parsed.isIcmpError) {
    ChecksumDelta unenclosed;  // no checksum covers the packet from outside
    rewriteEndpoint(outer, side, addr, port, unenclosed);
    setTupleSide(parsed.tuple, side, addr, port, parsed.isIcmpEcho);
    return DropReason::kNone;
  }
  ChecksumDelta icmpDelta;
  // The error goes the other way from the packet it quotes: the flow's
  // destination is the error's source address and the quote's source.
  const Side errorSide = side == Side::kDst ? Side::kSrc : Side::kDst;
  rewriteErrorAddress(outer, side, addr, icmpDelta);
  rewriteEndpoint(innerHeaders(packet.data(), parsed), errorSide, addr, port, icmpDelta);
  finishError(outer, icmpDelta);
  setTupleSide(parsed.tuple, errorSide, addr, port, parsed.innerIsIcmpEcho);
  return DropReason::kNone;
}

}  // namespace

DropReason dnat(std::span<uint8_t> packet, ParsedPacket& parsed, const IpAddress& dst,
                uint16_t dstPort) {
  if (DropReason r = check(packet, parsed, dst, dst); r != DropReason::kNone) return r;
  if (translateTransport(packet.data(), parsed, &dst, dstPort, nullptr, 0)) return DropReason::kNone;
  return rewriteForward(packet, parsed, Side::kDst, dst, dstPort);
}

DropReason snat(std::span<uint8_t> packet, ParsedPacket& parsed, const IpAddress& src,
                uint16_t srcPort) {
  if (DropReason r = check(packet, parsed, src, src); r != DropReason::kNone) return r;
  if (translateTransport(packet.data(), parsed, nullptr, 0, &src, srcPort)) return DropReason::kNone;
  return rewriteForward(packet, parsed, Side::kSrc, src, srcPort);
}

DropReason fullNat(std::span<uint8_t> packet, ParsedPacket& parsed, const IpAddress& dst,
                   uint16_t dstPort, const IpAddress& src, uint16_t srcPort) {
  // Checked once for both rewrites: a packet dnat() accepts, snat() does too.
  if (DropReason r = check(packet, parsed, dst, src); r != DropReason::kNone) return r;
  if (translateTransport(packet.data(), parsed, &dst, dstPort, &src, srcPort)) {
    return DropReason::kNone;
  }
  (void)rewriteForward(packet, parsed, Side::kDst, dst, dstPort);
  return rewriteForward(packet, parsed, Side::kSrc, src, srcPort);
}

DropReason reverseNat(std::span<uint8_t> packet, ParsedPacket& parsed, const FlowTuple& original) {
  if (DropReason r = check(packet, parsed, original.src, original.dst); r != DropReason::kNone) {
    return r;
  }
  // Source back to the frontend, destination back to the client.
  if (translateTransport(packet.data(), parsed, &original.src, original.srcPort, &original.dst,
                         original.dstPort)) {
    return DropReason::kNone;
  }
  const Headers outer = outerHeaders(packet.data(), parsed);
  if (!parsed.isIcmpError) {
    ChecksumDelta unenclosed;
    rewriteEndpoint(outer, Side::kSrc, original.dst, original.dstPort, unenclosed);
    rewriteEndpoint(outer, Side::kDst, original.src, original.srcPort, unenclosed);
    setTupleSide(parsed.tuple, Side::kSrc, original.dst, original.dstPort, parsed.isIcmpEcho);
    setTupleSide(parsed.tuple, Side::kDst, original.src, original.srcPort, parsed.isIcmpEcho);
    return DropReason::kNone;
  }
  ChecksumDelta icmpDelta;
  const Headers inner = innerHeaders(packet.data(), parsed);
  const size_t addrLength = original.src.bytes().size();
  // Sent by the backend itself when its address is the quote's destination
  // (before that is restored below).
  const bool fromBackend =
      sameAddress(outer.ip + addressOffset(outer.family, Side::kSrc),
                  inner.ip + addressOffset(inner.family, Side::kDst), addrLength);
  rewriteErrorAddress(outer, Side::kDst, original.src, icmpDelta);
  if (fromBackend) rewriteErrorAddress(outer, Side::kSrc, original.dst, icmpDelta);
  rewriteEndpoint(inner, Side::kSrc, original.src, original.srcPort, icmpDelta);
  rewriteEndpoint(inner, Side::kDst, original.dst, original.dstPort, icmpDelta);
  finishError(outer, icmpDelta);
  setTupleSide(parsed.tuple, Side::kSrc, original.src, original.srcPort, parsed.innerIsIcmpEcho);
  setTupleSide(parsed.tuple, Side::kDst, original.dst, original.dstPort, parsed.innerIsIcmpEcho);
  return DropReason::kNone;
}

TranslationDeltas translationDeltas(const FlowTuple& from, const FlowTuple& to) {
  return from.dst.isV6() ? deltasOf<16>(from, to) : deltasOf<4>(from, to);
}

bool applyTranslation(std::span<uint8_t> packet, const ParsedPacket& parsed, const FlowTuple& to,
                      TranslationDeltas deltas) {
  if (parsed.isIcmpError ||
      (parsed.protocol != Protocol::kTcp && parsed.protocol != Protocol::kUdp) ||
      to.dst.family() != parsed.family || to.src.family() != parsed.family ||
      packet.size() < parsed.l3End) {
    return false;
  }
  const Headers h = outerHeaders(packet.data(), parsed);
  if (parsed.family == IpFamily::kV4) {
    applyDeltas<4>(h, to, deltas);
  } else {
    applyDeltas<16>(h, to, deltas);
  }
  return true;
}

}  // namespace sluice
