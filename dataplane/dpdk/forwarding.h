// How the dpdk mode forwards a Service's flows: NAT (the default) or direct
// server return, chosen per Service with the annotation
//   sluice.io/dpdk-forwarding: dsr | nat
// which the agent's translator copies into Service::modeOptions as
// "dpdk-forwarding". Read by the process's tables (service_tables.h) and by
// the agent's dpdk mode, which warns about a value it does not know.
#pragma once

#include <optional>

#include "dataplane/service.h"

namespace sluice::dpdk {

inline constexpr const char* kForwardingOption = "dpdk-forwarding";

// Whether `s` asks for direct server return; nullopt for a value that is
// neither "dsr" nor "nat" (the service is NATed).
inline std::optional<bool> wantsDsr(const Service& s) {
  auto it = s.modeOptions.find(kForwardingOption);
  if (it == s.modeOptions.end() || it->second == "nat") return false;
  if (it->second == "dsr") return true;
  return std::nullopt;
}

}  // namespace sluice::dpdk
