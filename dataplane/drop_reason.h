// DropReason: why a userspace datapath stage (packet parse, NAT, and the DPDK
// stages built on them) refuses a packet. There is one enum for every stage so
// that drops land in one per-lcore counter array indexed by the value, and a
// dump names each reason the same way whatever the mode (STYLE.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice {

// Values index counter arrays and are stable: append new reasons at the end
// and move kDropReasonCount with them. kNone is "not dropped" and is never
// counted.
enum class DropReason : uint8_t {
  kNone = 0,

  // L2
  kTruncatedL2,           // shorter than the Ethernet header (14 B) or its VLAN tag (4 B)
  kUnsupportedEtherType,  // neither IPv4 nor IPv6 (ARP, LLDP, ...): the host stack's business
  kStackedVlan,           // 802.1ad S-tag or a second 802.1Q tag: only one C-tag is parsed

  // L3
  kTruncatedL3,          // shorter than the fixed IP header (20/40 B), or an IPv6
                         // extension header runs past the end of the IP packet
  kBadIpVersion,         // version nibble is not 4/6, or disagrees with the EtherType
  kBadIpv4HeaderLength,  // IHL < 5: the header would end before its own addresses
  // IHL > 5. Refused, as Cilium and Katran refuse them: options are all but
  // unused on the Internet (RFC 7126 recommends dropping most), and accepting
  // them would make every L4 offset variable for no real traffic.
  kIpv4Options,
  kBadIpTotalLength,  // IPv4 total length < header or past the buffer; IPv6 payload
                      // length past the buffer, or 0 (jumbograms are not supported)
  // IPv4 MF set or offset != 0; IPv6 Fragment header. Non-first fragments carry
  // no ports, and there is no reassembly here, so no fragment can be NATed
  // consistently; the fast paths drop them too.
  kFragment,
  kIpv6HopByHopNotFirst,      // RFC 8200 §4.3: Hop-by-Hop may only follow the IPv6 header
  kIpv6ExtHeaderUnsupported,  // AH, Mobility, HIP, Shim6 or experimental (253/254)
  kIpv6ExtHeaderLimit,        // more than kMaxIpv6ExtHeaders extension headers
  // A Routing header with Segments Left > 0: the destination address is not
  // the final one, and the L4 pseudo-header uses the final one (RFC 8200
  // §8.1), so rewriting the destination would break the L4 checksum.
  kIpv6RoutingHeader,

  // L4
  kUnsupportedProtocol,  // not TCP, UDP, or the ICMP of the packet's IP version
  kTruncatedL4,          // fewer bytes than the TCP header (20 B or data offset), UDP 8 B, ICMP 8 B
  kBadTcpHeaderLength,   // TCP data offset < 5
  kBadUdpLength,         // UDP length < 8 or past the end of the IP packet
  // ICMP type that is neither echo nor an error we translate (redirects,
  // router/neighbor discovery, MLD, timestamps): the host stack handles them.
  kIcmpUnsupportedType,
  kIcmpErrorTruncatedInner,    // quotes less than the inner IP header + 8 bytes of L4
  kIcmpErrorBadInner,          // quoted IP header malformed, with options, a fragment,
                               // or of the other IP version
  kIcmpErrorUnsupportedInner,  // quoted L4 is not TCP, UDP or ICMP echo (RFC 1122
                               // 3.2.2: no errors about ICMP errors)

  // NAT
  kNatFamilyMismatch,  // asked to rewrite to an address of the other family (NAT46/64)
  kNatBufferMismatch,  // buffer shorter than the one parsed: a caller bug, counted not crashed

  // Forwarding stages that decrement TTL / hop limit (the DPDK path). Parsing
  // never returns it: locally delivered packets do not decrement.
  kTtlExceeded,

  // Service stages of the DPDK path (named as bpf/abi/metrics.h names the
  // same reasons, so a dump reads the same in either mode).
  kNoBackend,       // refused: no ready or terminating endpoint (answered with RST/ICMP)
  kNoLocalBackend,  // a Local traffic policy and no endpoint on this node: dropped, not refused
  // Every SNAT port of this lcore's share is taken towards this backend
  // (or none maps back to this lcore under the NIC's RSS).
  kSnatPortsExhausted,
  kRejectFailed,  // the RST / ICMP unreachable did not fit the buffer
  kNoNextHop,     // a remote backend and no gateway MAC to send it to
  // The lock-free rings between lcores are bounded: a full one drops rather
  // than waits, so a slow consumer never stalls the producer's burst.
  kHandoffRingFull,    // to the lcore that owns the flow (software RSS)
  kExceptionRingFull,  // to the control thread's exception path (kernel-bound)
  kTxQueueFull,        // the port's TX ring did not take the burst
  kEncapFailed,        // DSR: no headroom for the outer IP header, or MTU exceeded
};

inline constexpr size_t kDropReasonCount = static_cast<size_t>(DropReason::kEncapFailed) + 1;

// snake_case name for counters and logs, e.g. "ipv4_options" (exported as
// "drop.ipv4_options"); "unknown" for a value outside the enum.
std::string_view toString(DropReason reason);

}  // namespace sluice
