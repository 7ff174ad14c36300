#include "dataplane/dpdk/counters.h"

namespace sluice::dpdk {

std::string_view toString(Event event) {
  // No default: -Wswitch flags an event added without a name.
  switch (event) {
    case Event::kSvcNew:
      return "svc_new";
    case Event::kSvcEstablished:
      return "svc_established";
    case Event::kSvcReselect:
      return "svc_reselect";
    case Event::kRevNat:
      return "rev_nat";
    case Event::kAffinityHit:
      return "affinity_hit";
    case Event::kTerminatingFallback:
      return "terminating_fallback";
    case Event::kRejectTcpRst:
      return "reject_tcp_rst";
    case Event::kRejectIcmp:
      return "reject_icmp";
    case Event::kPassNonService:
      return "pass_non_service";
    case Event::kHairpin:
      return "hairpin";
    case Event::kSnat:
      return "snat";
    case Event::kIcmpErrRev:
      return "icmp_err_rev";
    case Event::kArpReply:
      return "arp_reply";
    case Event::kNdReply:
      return "nd_reply";
    case Event::kException:
      return "exception";
    case Event::kExceptionPriority:
      return "exception_priority";
    case Event::kHandoff:
      return "handoff";
    case Event::kDsr:
      return "dsr";
    case Event::kCount:
      break;
  }
  return "unknown";
}

}  // namespace sluice::dpdk
