#include "dataplane/proxy_mode.h"

#include <algorithm>

namespace sluice {

std::string_view toString(ModeFeature feature) {
  switch (feature) {
    case ModeFeature::kMaglev: return "maglev";
    case ModeFeature::kMaglevTableSize: return "maglev-table-size";
    case ModeFeature::kSessionAffinity: return "session-affinity";
    case ModeFeature::kExternalTrafficLocal: return "external-traffic-local";
    case ModeFeature::kInternalTrafficLocal: return "internal-traffic-local";
    case ModeFeature::kTerminatingFallback: return "terminating-fallback";
    case ModeFeature::kSctp: return "sctp";
    case ModeFeature::kIpv6: return "ipv6";
    case ModeFeature::kSocketLb: return "socket-lb";
    case ModeFeature::kUdpStaleFlowCleanup: return "udp-stale-flow-cleanup";
    case ModeFeature::kIcmpErrorTranslation: return "icmp-error-translation";
    case ModeFeature::kDsr: return "dsr";
    case ModeFeature::kLoadBalancerSourceRanges: return "load-balancer-source-ranges";
    case ModeFeature::kXdpEarlyDrop: return "xdp-early-drop";
    case ModeFeature::kSocketLbPeerName: return "socket-lb-peer-name";
    case ModeFeature::kSocketLbErrno: return "socket-lb-errno";
  }
  return "unknown";
}

std::vector<UnmetRequest> unmetRequests(const Service& s, const ModeCapabilities& caps) {
  std::vector<UnmetRequest> out;
  auto lacks = [&](ModeFeature f, const std::string& what) {
    auto it = caps.missing.find(f);
    if (it != caps.missing.end()) out.push_back({f, what + ": " + it->second});
  };
  if (s.algorithm == LbAlgorithm::kMaglev) {
    lacks(ModeFeature::kMaglev, "Maglev selection");
    if (caps.supports(ModeFeature::kMaglev)) {
      if (caps.fixedMaglevTableSize && *caps.fixedMaglevTableSize != s.maglevTableSize) {
        out.push_back({ModeFeature::kMaglevTableSize,
                       "Maglev table size " + std::to_string(s.maglevTableSize) +
                           ": this mode's tables have a fixed size of " +
                           std::to_string(*caps.fixedMaglevTableSize) + " slots"});
      } else {
        lacks(ModeFeature::kMaglevTableSize,
              "Maglev table size " + std::to_string(s.maglevTableSize));
      }
    }
  }
  if (s.affinity.clientIp) {
    lacks(ModeFeature::kSessionAffinity, "sessionAffinity ClientIP (timeout " +
                                             std::to_string(s.affinity.timeoutSeconds) + " s)");
  }
  const bool anyCluster = std::any_of(s.frontends.begin(), s.frontends.end(), [](const Frontend& f) {
    return f.scope == FrontendScope::kClusterIp;
  });
  const bool anyExternal = std::any_of(s.frontends.begin(), s.frontends.end(), [](const Frontend& f) {
    return f.scope != FrontendScope::kClusterIp;
  });
  if (s.externalPolicy == TrafficPolicy::kLocal && anyExternal) {
    lacks(ModeFeature::kExternalTrafficLocal, "externalTrafficPolicy Local");
  }
  if (s.internalPolicy == TrafficPolicy::kLocal && anyCluster) {
    lacks(ModeFeature::kInternalTrafficLocal, "internalTrafficPolicy Local");
  }
  if (s.protocol == Protocol::kSctp) lacks(ModeFeature::kSctp, "protocol SCTP");
  if (std::any_of(s.frontends.begin(), s.frontends.end(),
                  [](const Frontend& f) { return f.address.isV6(); })) {
    lacks(ModeFeature::kIpv6, "IPv6 frontends");
  }
  const bool anyLb = std::any_of(s.frontends.begin(), s.frontends.end(), [](const Frontend& f) {
    return f.scope == FrontendScope::kLoadBalancer;
  });
  if (anyLb && !s.sourceRanges.empty()) {
    lacks(ModeFeature::kLoadBalancerSourceRanges, "loadBalancerSourceRanges");
  }
  const bool anyActive = std::any_of(s.backends.begin(), s.backends.end(), [](const Backend& b) {
    return b.state == BackendState::kActive;
  });
  const bool anyTerminating = std::any_of(s.backends.begin(), s.backends.end(), [](const Backend& b) {
    return b.state == BackendState::kTerminating;
  });
  if (!anyActive && anyTerminating) {
    lacks(ModeFeature::kTerminatingFallback, "terminating endpoints as the fallback");
  }
  return out;
}

}  // namespace sluice
