#include "bpf/loader/lb_layout.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_set>

namespace sluice::bpf {

void storeAddress(const IpAddress& addr, __be32 (&out)[4]) {
  std::memset(out, 0, sizeof(out));
  auto bytes = addr.bytes();
  std::memcpy(out, bytes.data(), bytes.size());
}

IpAddress loadAddress(const __be32 (&addr)[4], uint8_t family) {
  if (family == SL_FAMILY_V4) {
    std::array<uint8_t, 4> b{};
    std::memcpy(b.data(), addr, 4);
    return IpAddress::v4(b);
  }
  std::array<uint8_t, 16> b{};
  std::memcpy(b.data(), addr, 16);
  return IpAddress::v6(b);
}

namespace {
uint8_t familyOf(const IpAddress& a) { return a.isV4() ? SL_FAMILY_V4 : SL_FAMILY_V6; }
}  // namespace

sl_svc_key frontendKey(const Frontend& f) {
  sl_svc_key k;
  std::memset(&k, 0, sizeof(k));
  storeAddress(f.address, k.addr);
  k.port = htons(f.port);
  k.proto = static_cast<uint8_t>(f.protocol);
  k.family = familyOf(f.address);
  return k;
}

sl_backend backendValue(const Backend& b, uint32_t svcId) {
  sl_backend v;
  std::memset(&v, 0, sizeof(v));
  storeAddress(b.address, v.addr);
  v.port = htons(b.port);
  v.family = familyOf(b.address);
  switch (b.state) {
    case BackendState::kActive: v.state = SL_BACKEND_ACTIVE; break;
    case BackendState::kTerminating: v.state = SL_BACKEND_TERMINATING; break;
    case BackendState::kQuarantined: v.state = SL_BACKEND_QUARANTINED; break;
  }
  v.flags = b.nodeLocal ? SL_BACKEND_F_LOCAL : 0;
  v.svc_id = svcId;
  return v;
}

uint32_t frontendFlags(const Service& svc, const Frontend& f) {
  uint32_t flags = 0;
  switch (f.scope) {
    case FrontendScope::kClusterIp: flags |= SL_SVC_F_CLUSTER_IP; break;
    case FrontendScope::kNodePort: flags |= SL_SVC_F_NODE_PORT; break;
    case FrontendScope::kLoadBalancer: flags |= SL_SVC_F_LOADBALANCER; break;
    case FrontendScope::kExternalIp: flags |= SL_SVC_F_EXTERNAL_IP; break;
  }
  if (svc.affinity.clientIp) flags |= SL_SVC_F_AFFINITY;
  if (svc.isLocal(f.scope)) flags |= SL_SVC_F_LOCAL;
  if (svc.algorithm == LbAlgorithm::kMaglev) flags |= SL_SVC_F_MAGLEV;
  return flags;
}

std::string maglevBackendKey(const Backend& b) {
  const std::string addr = b.address.toString();
  return (b.address.isV6() ? "[" + addr + "]" : addr) + ":" + std::to_string(b.port);
}

std::vector<uint32_t> keepPositions(std::span<const uint32_t> previous,
                                    std::span<const uint32_t> wanted) {
  const std::unordered_set<uint32_t> want(wanted.begin(), wanted.end());
  std::vector<uint32_t> out(previous.begin(), previous.end());
  // Drop ids no longer wanted (and duplicates, which a corrupt adopted map
  // could hold), filling each hole with the current last id.
  std::unordered_set<uint32_t> seen;
  for (size_t i = 0; i < out.size();) {
    if (!want.count(out[i]) || seen.count(out[i])) {
      out[i] = out.back();
      out.pop_back();
    } else {
      seen.insert(out[i]);
      ++i;
    }
  }
  for (uint32_t id : wanted) {
    if (seen.insert(id).second) out.push_back(id);
  }
  return out;
}

}  // namespace sluice::bpf
