// In-place frame operations of the DPDK pipeline that are not NAT
// (dataplane/nat.h): answering ARP and IPv6 neighbor solicitations for
// service addresses, refusing a flow with a TCP RST or an ICMP port
// unreachable, recognising control-plane traffic for the exception path's
// priority ring, and judging a malformed packet the parser refused.
//
// Every function rewrites the frame it is given in place (no allocation,
// no copy beyond a 48-byte quote): the reply leaves on the port the request
// came from, in the same mbuf. `Frame` is one contiguous buffer: the
// first (only) segment of an mbuf, whose data room bounds how far a reply
// may grow.
//
// Threading: stateless; any lcore.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "dataplane/dpdk/mac.h"
#include "dataplane/drop_reason.h"
#include "dataplane/ip_address.h"
#include "dataplane/packet.h"

namespace sluice::dpdk {

struct Frame {
  uint8_t* data = nullptr;
  uint32_t length = 0;    // bytes of frame
  uint32_t capacity = 0;  // bytes the buffer holds from data on
  uint32_t headroom = 0;  // bytes the buffer holds before data (an mbuf's data_off)

  std::span<uint8_t> bytes() const { return {data, length}; }
};

inline constexpr uint16_t kEtherTypeArp = 0x0806;
// RFC 4861: ND messages are sent and accepted with hop limit 255 only.
inline constexpr uint8_t kNdHopLimit = 255;
// The TTL / hop limit of packets this node originates (RST, ICMP errors):
// Linux's default (net.ipv4.ip_default_ttl, hop_limit).
inline constexpr uint8_t kDefaultTtl = 64;
// The outer headers of direct server return (encapsulate()).
inline constexpr uint8_t kIpProtoIpip = 4;         // IPv4 in IPv4 (RFC 2003)
inline constexpr uint8_t kIpProtoIpv6Encap = 41;   // IPv6 in IPv6 (RFC 2473)

// An ARP request (Ethernet, IPv4) for some address: its target, or nullopt
// for anything else (replies, gratuitous announcements: sender == target).
std::optional<IpAddress> arpRequestTarget(const Frame& f);
// Turns that request into the reply "target is at `mac`", back to the asker.
void makeArpReply(Frame& f, const MacAddr& mac);

// An IPv6 neighbor solicitation's target address, or nullopt (not an NS,
// or duplicate address detection: source ::, nobody to answer to).
std::optional<IpAddress> ndSolicitationTarget(const Frame& f);
// Turns it into a solicited neighbor advertisement for the target, with
// `mac` as target link-layer address. Returns false when the frame has no
// room for the advertisement (it never does not: 86 bytes).
bool makeNdAdvertisement(Frame& f, const MacAddr& mac);

// Refuses the parsed TCP segment or UDP datagram as its destination would
// with no listener: RST (RST|ACK for a segment without ACK, RFC 9293
// 3.10.7.1) or ICMP(v6) port unreachable quoting the IP header and the
// first 8 L4 bytes; Ethernet addresses swapped, VLAN tag kept. Returns
// kNone, or why not: a RST is never answered (kNoBackend: dropped), the
// buffer has no room (kRejectFailed).
DropReason makeRefusal(Frame& f, const ParsedPacket& p);

// Direct server return: wraps the parsed IP packet, unchanged, in an outer
// header from `source` to `backend` of the same family: IPv4 protocol 4
// (IPIP, RFC 2003) or IPv6 next header 41 (RFC 2473), TTL / hop limit 64,
// the inner DSCP/ECN and (IPv4) DF bit copied; IPv6 gets a flow label from
// `flowHash` so the backend's RSS spreads flows. The Ethernet header (and
// VLAN tag) moves into the headroom; Ethernet padding is cut. Returns
// kNone, or kEncapFailed when the headroom is short or the outer packet
// would pass `mtu` (the caller drops: a DSR flow is never half-NATed).
DropReason encapsulate(Frame& f, const ParsedPacket& p, const IpAddress& source,
                       const IpAddress& backend, uint32_t flowHash, uint32_t mtu);

// Whether an ICMP error parsePacket() accepted is one the pipeline may
// translate (the eBPF mode's checks, bpf/lib/icmp_err.h): addressed to the
// quoted packet's source, quoting TCP or UDP right after a quoted IP
// header (IPv6 extension headers: no such service flow exists) whose
// length fields cover the 8 quoted L4 bytes. Others pass unchanged.
bool isTranslatableIcmpError(const Frame& f, const ParsedPacket& p);

// Traffic the exception path must deliver to the kernel even when bulk
// exception traffic is being dropped: ARP, LLDP/LACP, IPv6 ND/RA, routing
// protocols (OSPF, BGP, VRRP, PIM, IGMP, BFD), DHCP.
bool isControlTraffic(const Frame& f);

// What to do with a frame parsePacket() refused with `reason` (the eBPF
// mode's policy, bpf/lib/parse.h): malformed IP and TCP/UDP headers are
// dropped; IPv4 options, first fragments and IPv6 routing headers only when
// they belong to a service flow (`isService` decides, given the readable
// destination and, when readable, port and protocol); the rest (non-IP,
// non-first fragments, other protocols, ICMP errors quoting something we
// cannot translate) passes unchanged.
enum class MalformedVerdict : uint8_t { kPass, kDrop };
template <typename IsService>
MalformedVerdict judgeMalformed(const Frame& f, DropReason reason, IsService&& isService);

// The destination address, and the destination port and protocol when the
// L4 header is readable, of an IP frame the parser refused (for
// judgeMalformed's service check).
struct PeekedDestination {
  IpAddress address;
  std::optional<uint16_t> port;
  uint8_t protocol = 0;       // IP protocol / last next-header seen
  bool firstFragment = true;  // false for a non-first fragment (no ports)
};
std::optional<PeekedDestination> peekDestination(const Frame& f);

template <typename IsService>
MalformedVerdict judgeMalformed(const Frame& f, DropReason reason, IsService&& isService) {
  switch (reason) {
    case DropReason::kIpv4Options:
    case DropReason::kFragment:
    case DropReason::kIpv6RoutingHeader: {
      const auto d = peekDestination(f);
      if (!d || !d->firstFragment) return MalformedVerdict::kPass;
      // Only TCP and UDP flows are translated; IGMP with Router Alert or
      // fragmented ICMP must keep reaching the stack.
      if (d->protocol != static_cast<uint8_t>(Protocol::kTcp) &&
          d->protocol != static_cast<uint8_t>(Protocol::kUdp)) {
        return MalformedVerdict::kPass;
      }
      return isService(*d) ? MalformedVerdict::kDrop : MalformedVerdict::kPass;
    }
    case DropReason::kTruncatedL4:
    case DropReason::kBadTcpHeaderLength:
    case DropReason::kBadUdpLength: {
      // A truncated ICMP header is the stack's business, as all ICMP that
      // is not an error about a service flow.
      const auto d = peekDestination(f);
      if (d && d->protocol != static_cast<uint8_t>(Protocol::kTcp) &&
          d->protocol != static_cast<uint8_t>(Protocol::kUdp)) {
        return MalformedVerdict::kPass;
      }
      return MalformedVerdict::kDrop;
    }
    case DropReason::kTruncatedL2:
    case DropReason::kTruncatedL3:
    case DropReason::kBadIpVersion:
    case DropReason::kBadIpv4HeaderLength:
    case DropReason::kBadIpTotalLength:
    case DropReason::kIpv6HopByHopNotFirst:
    case DropReason::kIpv6ExtHeaderLimit:
      return MalformedVerdict::kDrop;
    default:
      return MalformedVerdict::kPass;
  }
}

}  // namespace sluice::dpdk
