#include "dataplane/dpdk/frame_ops.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "dataplane/checksum.h"

namespace sluice::dpdk {
namespace {

// Byte offsets inside an ARP packet for Ethernet/IPv4 (RFC 826).
constexpr size_t kArpLength = 28;
constexpr size_t kArpOper = 6, kArpSha = 8, kArpSpa = 14, kArpTha = 18, kArpTpa = 24;
// ICMPv6 types (RFC 4443, 4861, 2710, 3810).
constexpr uint8_t kNdRouterSolicit = 133, kNdRedirect = 137, kNdNeighborSolicit = 135,
                  kNdNeighborAdvert = 136;
constexpr uint8_t kMldQuery = 130, kMldDone = 132, kMldv2Report = 143;
// IP protocol numbers of routing and control protocols.
constexpr uint8_t kProtoIgmp = 2, kProtoOspf = 89, kProtoPim = 103, kProtoVrrp = 112;
constexpr uint16_t kPortBgp = 179, kPortBfd = 3784, kPortBfdMultihop = 4784, kPortDhcpServer = 67,
                   kPortDhcpClient = 68, kPortDhcp6Client = 546, kPortDhcp6Server = 547;
constexpr uint16_t kEtherTypeLldp = 0x88cc, kEtherTypeSlow = 0x8809;  // LACP, marker

uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t load32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
void store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void store32(uint8_t* p, uint32_t v) {
  store16(p, static_cast<uint16_t>(v >> 16));
  store16(p + 2, static_cast<uint16_t>(v));
}

// The L3 offset and EtherType past at most one 802.1Q tag; nullopt if the
// frame is too short to say.
struct L2 {
  uint32_t l3;
  uint16_t etherType;
};
std::optional<L2> l2Of(const Frame& f) {
  if (f.length < kEthernetHeaderLength) return std::nullopt;
  uint16_t type = load16(f.data + 12);
  uint32_t l3 = kEthernetHeaderLength;
  if (type == kEtherTypeVlan) {
    if (f.length < kEthernetHeaderLength + kVlanTagLength) return std::nullopt;
    type = load16(f.data + 16);
    l3 += kVlanTagLength;
  }
  return L2{l3, type};
}

void swapMacs(uint8_t* eth, const MacAddr* ours) {
  std::array<uint8_t, 6> dst;
  std::memcpy(dst.data(), eth, 6);
  std::memcpy(eth, eth + 6, 6);
  if (ours != nullptr) {
    std::memcpy(eth + 6, ours->data(), 6);
  } else {
    std::memcpy(eth + 6, dst.data(), 6);
  }
}

IpAddress addressAt(const uint8_t* p, bool v6) {
  if (!v6) return IpAddress::v4({p[0], p[1], p[2], p[3]});
  std::array<uint8_t, 16> b;
  std::memcpy(b.data(), p, 16);
  return IpAddress::v6(b);
}

// Writes a fresh IPv4 (20 B, no options) or IPv6 (40 B) header at `ip` and
// returns the header length.
uint32_t writeIpHeader(uint8_t* ip, bool v6, std::span<const uint8_t> src,
                       std::span<const uint8_t> dst, uint8_t protocol, uint32_t payload,
                       uint8_t ttl) {
  if (!v6) {
    ip[0] = 0x45;
    ip[1] = 0;
    store16(ip + 2, static_cast<uint16_t>(kIpv4HeaderLength + payload));
    store32(ip + 4, 0);  // id 0, no fragment flags: as Linux sends RSTs
    ip[8] = ttl;
    ip[9] = protocol;
    store16(ip + 10, 0);
    std::memcpy(ip + 12, src.data(), 4);
    std::memcpy(ip + 16, dst.data(), 4);
    store16(ip + 10, internetChecksum({ip, kIpv4HeaderLength}));
    return kIpv4HeaderLength;
  }
  store32(ip, 0x60000000);  // version 6, traffic class 0, flow label 0
  store16(ip + 4, static_cast<uint16_t>(payload));
  ip[6] = protocol;
  ip[7] = ttl;
  std::memcpy(ip + 8, src.data(), 16);
  std::memcpy(ip + 24, dst.data(), 16);
  return kIpv6HeaderLength;
}

}  // namespace

std::optional<IpAddress> arpRequestTarget(const Frame& f) {
  const auto l2 = l2Of(f);
  if (!l2 || l2->etherType != kEtherTypeArp || f.length < l2->l3 + kArpLength) return std::nullopt;
  const uint8_t* a = f.data + l2->l3;
  // Ethernet hardware (1), IPv4 protocol, 6- and 4-byte addresses, request.
  if (load16(a) != 1 || load16(a + 2) != kEtherTypeIpv4 || a[4] != 6 || a[5] != 4 ||
      load16(a + kArpOper) != 1) {
    return std::nullopt;
  }
  if (std::memcmp(a + kArpSpa, a + kArpTpa, 4) == 0) return std::nullopt;  // gratuitous
  return addressAt(a + kArpTpa, false);
}

void makeArpReply(Frame& f, const MacAddr& mac) {
  const auto l2 = l2Of(f);
  uint8_t* a = f.data + l2->l3;
  std::array<uint8_t, 10> asker;  // sender MAC + IP
  std::memcpy(asker.data(), a + kArpSha, 10);
  std::array<uint8_t, 4> target;
  std::memcpy(target.data(), a + kArpTpa, 4);
  store16(a + kArpOper, 2);
  std::memcpy(a + kArpSha, mac.data(), 6);
  std::memcpy(a + kArpSpa, target.data(), 4);
  std::memcpy(a + kArpTha, asker.data(), 10);
  std::memcpy(f.data, asker.data(), 6);
  std::memcpy(f.data + 6, mac.data(), 6);
}

std::optional<IpAddress> ndSolicitationTarget(const Frame& f) {
  const auto l2 = l2Of(f);
  if (!l2 || l2->etherType != kEtherTypeIpv6) return std::nullopt;
  const uint32_t l3 = l2->l3;
  if (f.length < l3 + kIpv6HeaderLength + 24) return std::nullopt;
  const uint8_t* ip = f.data + l3;
  const uint8_t* icmp = ip + kIpv6HeaderLength;
  if ((ip[0] >> 4) != 6 || ip[6] != static_cast<uint8_t>(Protocol::kIcmpV6) ||
      ip[7] != kNdHopLimit || icmp[0] != kNdNeighborSolicit || icmp[1] != 0) {
    return std::nullopt;
  }
  static constexpr std::array<uint8_t, 16> kUnspecified{};
  if (std::memcmp(ip + 8, kUnspecified.data(), 16) == 0) return std::nullopt;  // DAD
  return addressAt(icmp + 8, true);
}

bool makeNdAdvertisement(Frame& f, const MacAddr& mac) {
  const auto l2 = l2Of(f);
  const uint32_t l3 = l2->l3;
  // ICMPv6 NA: type, code, checksum, flags (4), target (16), then the
  // target link-layer address option (type 2, length 1 = 8 bytes).
  constexpr uint32_t kNaLength = 4 + 4 + 16 + 8;
  if (f.capacity < l3 + kIpv6HeaderLength + kNaLength) return false;
  uint8_t* ip = f.data + l3;
  std::array<uint8_t, 16> asker, target;
  std::memcpy(asker.data(), ip + 8, 16);
  std::memcpy(target.data(), ip + kIpv6HeaderLength + 8, 16);
  swapMacs(f.data, &mac);
  writeIpHeader(ip, true, target, asker, static_cast<uint8_t>(Protocol::kIcmpV6), kNaLength,
                kNdHopLimit);
  uint8_t* na = ip + kIpv6HeaderLength;
  na[0] = kNdNeighborAdvert;
  na[1] = 0;
  store16(na + 2, 0);
  store32(na + 4, 0x60000000);  // Solicited | Override (RFC 4861 4.4); not a router
  std::memcpy(na + 8, target.data(), 16);
  na[24] = 2;  // target link-layer address
  na[25] = 1;  // in units of 8 bytes
  std::memcpy(na + 26, mac.data(), 6);
  store16(na + 2, transportChecksum(target, asker, Protocol::kIcmpV6, {na, kNaLength}));
  f.length = l3 + kIpv6HeaderLength + kNaLength;
  return true;
}

DropReason makeRefusal(Frame& f, const ParsedPacket& p) {
  const bool v6 = p.family == IpFamily::kV6;
  const size_t addrLen = v6 ? 16 : 4;
  uint8_t* ip = f.data + p.l3Offset;
  std::array<uint8_t, 16> src{}, dst{};
  std::memcpy(src.data(), ip + (v6 ? 8 : 12), addrLen);
  std::memcpy(dst.data(), ip + (v6 ? 24 : 16), addrLen);
  const std::span<const uint8_t> from(dst.data(), addrLen), to(src.data(), addrLen);
  const uint32_t ipLen = v6 ? kIpv6HeaderLength : kIpv4HeaderLength;

  if (p.protocol == Protocol::kTcp) {
    const uint8_t* tcp = f.data + p.l4Offset;
    const uint8_t flags = tcp[13];
    if (flags & 0x04) return DropReason::kNoBackend;  // never answer a RST
    const uint32_t dataOffset = static_cast<uint32_t>(tcp[12] >> 4) * 4;
    const uint32_t payload = p.l3End - p.l4Offset - dataOffset;
    const uint32_t inSeq = load32(tcp + 4), inAck = load32(tcp + 8);
    const uint16_t sport = load16(tcp), dport = load16(tcp + 2);
    uint32_t seq = 0, ack = 0;
    uint8_t outFlags = 0x04;  // RST
    if (flags & 0x10) {
      seq = inAck;  // RFC 9293: <SEQ=SEG.ACK><CTL=RST>
    } else {
      ack = inSeq + payload + ((flags & 0x02) ? 1 : 0) + ((flags & 0x01) ? 1 : 0);
      outFlags |= 0x10;  // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
    }
    if (f.capacity < p.l3Offset + ipLen + kTcpHeaderLength) return DropReason::kRejectFailed;
    swapMacs(f.data, nullptr);
    writeIpHeader(ip, v6, from, to, static_cast<uint8_t>(Protocol::kTcp), kTcpHeaderLength,
                  kDefaultTtl);
    uint8_t* out = ip + ipLen;
    store16(out, dport);
    store16(out + 2, sport);
    store32(out + 4, seq);
    store32(out + 8, ack);
    out[12] = 5 << 4;
    out[13] = outFlags;
    store16(out + 14, 0);  // window
    store16(out + 16, 0);
    store16(out + 18, 0);  // urgent pointer
    store16(out + 16, transportChecksum(from, to, Protocol::kTcp, {out, kTcpHeaderLength}));
    f.length = p.l3Offset + ipLen + kTcpHeaderLength;
    return DropReason::kNone;
  }

  // Port unreachable quoting the IP header and 8 bytes of L4 (what the
  // eBPF mode quotes: RFC 792's minimum, and all an IPv4 host must quote).
  const uint32_t quote = std::min<uint32_t>(p.l3End - p.l3Offset, ipLen + kUdpHeaderLength);
  std::array<uint8_t, kIpv6HeaderLength + kUdpHeaderLength> quoted;
  std::memcpy(quoted.data(), ip, quote);
  const uint32_t icmpLen = kIcmpHeaderLength + quote;
  if (f.capacity < p.l3Offset + ipLen + icmpLen) return DropReason::kRejectFailed;
  swapMacs(f.data, nullptr);
  const auto proto = v6 ? Protocol::kIcmpV6 : Protocol::kIcmp;
  writeIpHeader(ip, v6, from, to, static_cast<uint8_t>(proto), icmpLen, kDefaultTtl);
  uint8_t* icmp = ip + ipLen;
  icmp[0] = v6 ? kIcmpV6DestUnreachable : kIcmpDestUnreachable;
  icmp[1] = v6 ? 4 : 3;  // port unreachable (RFC 4443 / RFC 792)
  store16(icmp + 2, 0);
  store32(icmp + 4, 0);
  std::memcpy(icmp + kIcmpHeaderLength, quoted.data(), quote);
  store16(icmp + 2, transportChecksum(from, to, proto, {icmp, icmpLen}));
  f.length = p.l3Offset + ipLen + icmpLen;
  return DropReason::kNone;
}

bool isTranslatableIcmpError(const Frame& f, const ParsedPacket& p) {
  if (p.innerProtocol != Protocol::kTcp && p.innerProtocol != Protocol::kUdp) return false;
  const bool v6 = p.family == IpFamily::kV6;
  const uint8_t* outer = f.data + p.l3Offset;
  const uint8_t* inner = f.data + p.innerL3Offset;
  const size_t addrLen = v6 ? 16 : 4;
  // The outer destination and the quoted source.
  if (std::memcmp(outer + (v6 ? 24 : 16), inner + (v6 ? 8 : 12), addrLen) != 0) return false;
  if (v6) {
    return p.innerL4Offset == p.innerL3Offset + kIpv6HeaderLength &&
           load16(inner + 4) >= kIcmpQuotedL4Length;
  }
  return load16(inner + 2) >= kIpv4HeaderLength + kIcmpQuotedL4Length;
}

bool isControlTraffic(const Frame& f) {
  const auto l2 = l2Of(f);
  if (!l2) return false;
  switch (l2->etherType) {
    case kEtherTypeArp:
    case kEtherTypeLldp:
    case kEtherTypeSlow:
      return true;
    case kEtherTypeIpv4:
    case kEtherTypeIpv6:
      break;
    default:
      return false;
  }
  const bool v6 = l2->etherType == kEtherTypeIpv6;
  const uint8_t* ip = f.data + l2->l3;
  uint32_t ipLen = kIpv4HeaderLength;
  if (!v6) {
    if (f.length < l2->l3 + kIpv4HeaderLength) return false;
    ipLen = std::max<uint32_t>(uint32_t{ip[0] & 0x0fu} * 4, kIpv4HeaderLength);
  } else {
    if (f.length < l2->l3 + kIpv6HeaderLength) return false;
    ipLen = kIpv6HeaderLength;
  }
  const uint8_t proto = v6 ? ip[6] : ip[9];
  if (proto == kProtoIgmp || proto == kProtoOspf || proto == kProtoPim || proto == kProtoVrrp)
    return true;
  if (f.length < l2->l3 + ipLen + 4) return false;
  const uint8_t* l4 = ip + ipLen;
  if (v6 && proto == static_cast<uint8_t>(Protocol::kIcmpV6)) {
    return (l4[0] >= kNdRouterSolicit && l4[0] <= kNdRedirect) ||
           (l4[0] >= kMldQuery && l4[0] <= kMldDone) || l4[0] == kMldv2Report;
  }
  const uint16_t sport = load16(l4), dport = load16(l4 + 2);
  if (proto == static_cast<uint8_t>(Protocol::kTcp)) return sport == kPortBgp || dport == kPortBgp;
  if (proto == static_cast<uint8_t>(Protocol::kUdp)) {
    for (uint16_t port : {kPortBfd, kPortBfdMultihop, kPortDhcpServer, kPortDhcpClient,
                          kPortDhcp6Client, kPortDhcp6Server}) {
      if (dport == port) return true;
    }
  }
  return false;
}

std::optional<PeekedDestination> peekDestination(const Frame& f) {
  const auto l2 = l2Of(f);
  if (!l2) return std::nullopt;
  const uint32_t l3 = l2->l3;
  const uint8_t* ip = f.data + l3;
  PeekedDestination d;
  uint32_t l4 = 0;
  if (l2->etherType == kEtherTypeIpv4) {
    if (f.length < l3 + kIpv4HeaderLength || (ip[0] >> 4) != 4) return std::nullopt;
    d.address = addressAt(ip + 16, false);
    d.protocol = ip[9];
    d.firstFragment = (load16(ip + 6) & 0x1fff) == 0;
    const uint32_t ihl = uint32_t{ip[0] & 0x0fu} * 4;
    if (ihl < kIpv4HeaderLength) return d;  // no telling where L4 starts
    l4 = l3 + ihl;
  } else if (l2->etherType == kEtherTypeIpv6) {
    if (f.length < l3 + kIpv6HeaderLength || (ip[0] >> 4) != 6) return std::nullopt;
    d.address = addressAt(ip + 24, true);
    uint8_t next = ip[6];
    l4 = l3 + kIpv6HeaderLength;
    // Hop-by-Hop (0), Routing (43), Fragment (44), Destination Options (60).
    for (int i = 0; i < kMaxIpv6ExtHeaders + 1; ++i) {
      if (next != 0 && next != 43 && next != 44 && next != 60) break;
      if (f.length < l4 + 8) return d;
      const uint8_t* h = f.data + l4;
      if (next == 44) {
        d.firstFragment = d.firstFragment && (load16(h + 2) & 0xfff8) == 0;
        l4 += 8;
      } else {
        l4 += (uint32_t{h[1]} + 1) * 8;
      }
      next = h[0];
    }
    d.protocol = next;
  } else {
    return std::nullopt;
  }
  if (d.firstFragment && f.length >= l4 + 4) d.port = load16(f.data + l4 + 2);
  return d;
}

DropReason encapsulate(Frame& f, const ParsedPacket& p, const IpAddress& source,
                       const IpAddress& backend, uint32_t flowHash, uint32_t mtu) {
  const bool v6 = p.family == IpFamily::kV6;
  const auto outer = static_cast<uint32_t>(v6 ? kIpv6HeaderLength : kIpv4HeaderLength);
  const uint32_t inner = p.l3End - p.l3Offset;
  if (source.family() != p.family || backend.family() != p.family || f.headroom < outer ||
      inner + outer > mtu || inner + outer > 0xffff) {
    return DropReason::kEncapFailed;
  }
  const uint8_t* in = f.data + p.l3Offset;
  // The inner header's traffic class (DSCP + ECN) and, for IPv4, DF.
  const uint8_t trafficClass =
      v6 ? static_cast<uint8_t>((in[0] & 0x0f) << 4 | in[1] >> 4) : in[1];
  const bool dontFragment = !v6 && (in[6] & 0x40) != 0;
  std::memmove(f.data - outer, f.data, p.l3Offset);
  f.data -= outer;
  f.headroom -= outer;
  f.capacity += outer;
  f.length = p.l3End + outer;
  uint8_t* h = f.data + p.l3Offset;
  if (v6) {
    const uint32_t label = flowHash & 0xfffff;
    store32(h, uint32_t{6} << 28 | uint32_t{trafficClass} << 20 | label);
    store16(h + 4, static_cast<uint16_t>(inner));
    h[6] = kIpProtoIpv6Encap;
    h[7] = kDefaultTtl;
    std::memcpy(h + 8, source.bytes().data(), 16);
    std::memcpy(h + 24, backend.bytes().data(), 16);
    return DropReason::kNone;
  }
  h[0] = 0x45;
  h[1] = trafficClass;
  store16(h + 2, static_cast<uint16_t>(inner + outer));
  store16(h + 4, 0);  // identification: unused without fragmentation
  store16(h + 6, dontFragment ? 0x4000 : 0);
  h[8] = kDefaultTtl;
  h[9] = kIpProtoIpip;
  store16(h + 10, 0);
  std::memcpy(h + 12, source.bytes().data(), 4);
  std::memcpy(h + 16, backend.bytes().data(), 4);
  store16(h + 10, internetChecksum({h, kIpv4HeaderLength}));
  return DropReason::kNone;
}

}  // namespace sluice::dpdk
