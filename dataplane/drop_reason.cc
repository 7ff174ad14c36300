#include "dataplane/drop_reason.h"

namespace sluice {

std::string_view toString(DropReason reason) {
  // No default: -Wswitch (an error here) flags a reason added without a name.
  switch (reason) {
    case DropReason::kNone:
      return "none";
    case DropReason::kTruncatedL2:
      return "truncated_l2";
    case DropReason::kUnsupportedEtherType:
      return "unsupported_ethertype";
    case DropReason::kStackedVlan:
      return "stacked_vlan";
    case DropReason::kTruncatedL3:
      return "truncated_l3";
    case DropReason::kBadIpVersion:
      return "bad_ip_version";
    case DropReason::kBadIpv4HeaderLength:
      return "bad_ipv4_header_length";
    case DropReason::kIpv4Options:
      return "ipv4_options";
    case DropReason::kBadIpTotalLength:
      return "bad_ip_total_length";
    case DropReason::kFragment:
      return "fragment";
    case DropReason::kIpv6HopByHopNotFirst:
      return "ipv6_hop_by_hop_not_first";
    case DropReason::kIpv6ExtHeaderUnsupported:
      return "ipv6_ext_header_unsupported";
    case DropReason::kIpv6ExtHeaderLimit:
      return "ipv6_ext_header_limit";
    case DropReason::kIpv6RoutingHeader:
      return "ipv6_routing_header";
    case DropReason::kUnsupportedProtocol:
      return "unsupported_protocol";
    case DropReason::kTruncatedL4:
      return "truncated_l4";
    case DropReason::kBadTcpHeaderLength:
      return "bad_tcp_header_length";
    case DropReason::kBadUdpLength:
      return "bad_udp_length";
    case DropReason::kIcmpUnsupportedType:
      return "icmp_unsupported_type";
    case DropReason::kIcmpErrorTruncatedInner:
      return "icmp_error_truncated_inner";
    case DropReason::kIcmpErrorBadInner:
      return "icmp_error_bad_inner";
    case DropReason::kIcmpErrorUnsupportedInner:
      return "icmp_error_unsupported_inner";
    case DropReason::kNatFamilyMismatch:
      return "nat_family_mismatch";
    case DropReason::kNatBufferMismatch:
      return "nat_buffer_mismatch";
    case DropReason::kTtlExceeded:
      return "ttl_exceeded";
    case DropReason::kNoBackend:
      return "no_backend";
    case DropReason::kNoLocalBackend:
      return "no_local_backend";
    case DropReason::kSnatPortsExhausted:
      return "snat_ports_exhausted";
    case DropReason::kRejectFailed:
      return "reject_failed";
    case DropReason::kNoNextHop:
      return "no_next_hop";
    case DropReason::kHandoffRingFull:
      return "handoff_ring_full";
    case DropReason::kExceptionRingFull:
      return "exception_ring_full";
    case DropReason::kTxQueueFull:
      return "tx_queue_full";
    case DropReason::kEncapFailed:
      return "encap_failed";
  }
  return "unknown";
}

}  // namespace sluice
