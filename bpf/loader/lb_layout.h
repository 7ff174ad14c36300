// How the service model maps onto the sl_* maps of bpf/abi/lb.h: keys and
// values of one frontend or backend, backend-set membership, and the slot
// layout that keeps unchanged backends in place. Pure functions, no kernel:
// EbpfMode composes them with the maps; unit tests can call them directly.
#pragma once

#include <compare>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "bpf/abi/lb.h"
#include "dataplane/service.h"

namespace sluice::bpf {

// A backend's identity within its service (as diffBackends() matches them).
struct EndpointKey {
  IpAddress address;
  uint16_t port = 0;
  friend auto operator<=>(const EndpointKey&, const EndpointKey&) = default;
};
inline EndpointKey endpointKey(const Backend& b) { return {b.address, b.port}; }

// The address as the maps store it: 4 words, IPv4 in word 0 (lb.h).
void storeAddress(const IpAddress& addr, __be32 (&out)[4]);
IpAddress loadAddress(const __be32 (&addr)[4], uint8_t family);

sl_svc_key frontendKey(const Frontend& f);
sl_backend backendValue(const Backend& b, uint32_t svcId);

// SL_SVC_F_* of one frontend (scope, affinity, Local, Maglev).
uint32_t frontendFlags(const Service& svc, const Frontend& f);

// sl_slot_key.set_id / sl_maglev key of a service's backend set.
inline uint32_t setId(uint32_t svcId, IpFamily family, bool local) {
  return svcId | (family == IpFamily::kV6 ? SL_SVC_ID_V6 : 0u) | (local ? SL_SVC_ID_LOCAL : 0u);
}

// The Maglev key of a backend: its stable identity "10.0.0.1:8080" or
// "[fd00::1]:8080", so a backend keeps its slots while it lives.
std::string maglevBackendKey(const Backend& b);

// Which backends a set holds is Service::backendSet() (dataplane/service.h),
// the rule every mode shares.

// `wanted` ordered so that every id also in `previous` keeps its position
// where it can: a removed id's position is taken by the previous last id,
// new ids are appended (in `wanted`'s order). Removing one of N backends so
// moves at most one other; adding one moves none.
std::vector<uint32_t> keepPositions(std::span<const uint32_t> previous,
                                    std::span<const uint32_t> wanted);

}  // namespace sluice::bpf
