// EbpfMode's mode-neutral description (dataplane/mode_description.h): what
// the maps hold now, read with dump(), in the terms every mode shares, and
// what this node's eBPF mode cannot do (capabilities()).
#include <arpa/inet.h>
#include <time.h>

#include "bpf/loader/ebpf_mode.h"
#include "bpf/loader/lb_layout.h"

namespace sluice {

namespace {

Endpoint endpoint(const __be32 (&addr)[4], uint8_t family, __be16 port) {
  return {bpf::loadAddress(addr, family), ntohs(port)};
}

BackendState stateOf(uint8_t s) {
  switch (s) {
    case SL_BACKEND_TERMINATING: return BackendState::kTerminating;
    case SL_BACKEND_QUARANTINED: return BackendState::kQuarantined;
    default: return BackendState::kActive;
  }
}

FrontendScope scopeOf(uint32_t flags) {
  if (flags & SL_SVC_F_NODE_PORT) return FrontendScope::kNodePort;
  if (flags & SL_SVC_F_LOADBALANCER) return FrontendScope::kLoadBalancer;
  if (flags & SL_SVC_F_EXTERNAL_IP) return FrontendScope::kExternalIp;
  return FrontendScope::kClusterIp;
}

DescribedBackend describeBackend(uint32_t id, const sl_backend& b, uint32_t slot) {
  DescribedBackend out;
  out.id = id;
  out.endpoint = endpoint(b.addr, b.family, b.port);
  out.state = stateOf(b.state);
  out.nodeLocal = (b.flags & SL_BACKEND_F_LOCAL) != 0;
  out.slot = slot;
  return out;
}

std::string tcpFlagNames(uint8_t flags) {
  static const char* names[] = {"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"};
  std::string out;
  for (int i = 0; i < 8; ++i) {
    if (flags & (1u << i)) out += (out.empty() ? "" : "|") + std::string(names[i]);
  }
  return out;
}

uint64_t monotonicNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

ModeCapabilities EbpfMode::capabilities() const {
  ModeCapabilities caps;
  caps.missing[ModeFeature::kSctp] =
      "SCTP is not translated by the eBPF programs: SCTP to a frontend reaches no backend";
  caps.missing[ModeFeature::kDsr] = "direct server return is not implemented: replies go back through the node";
  caps.missing[ModeFeature::kLoadBalancerSourceRanges] =
      "not enforced by the eBPF programs: every client reaches the LoadBalancer IPs";
  // What this kernel's probes found missing (kernel_features.h), then what
  // failed at run time although the probes passed.
  for (auto& [feature, effect] : kernel().degradations()) caps.missing[feature] = std::move(effect);
  if (netnsCookie_ == 0 && !caps.missing.count(ModeFeature::kSocketLb)) {
    caps.missing[ModeFeature::kSocketLb] =
        "configured to translate the sockets of every namespace in the cgroup "
        "(netnsCookie 0): two nodes on one host interfere";
  }
  if (auto r = terminator_->available(); !r && !caps.missing.count(ModeFeature::kUdpStaleFlowCleanup)) {
    caps.missing[ModeFeature::kUdpStaleFlowCleanup] =
        "UDP sockets of node processes connected to a Service keep their backend after it is "
        "removed, until the application reconnects (" + r.error().message + ")";
  }
  return caps;
}

Result<std::vector<DescribedFrontend>> EbpfMode::describeFrontends() const {
  auto dumped = dump();
  if (!dumped) return dumped.error();
  const EbpfDump& d = *dumped;
  std::map<sl_svc_key, std::string, bpf::BytesLess> owners;
  {
    std::lock_guard lock(entriesMu_);
    for (const auto& [k, key] : programmer_->frontendOwners()) owners[k] = key.toString();
  }
  std::vector<DescribedFrontend> out;
  for (const auto& [k, v] : d.services) {
    DescribedFrontend f;
    const Endpoint e = endpoint(k.addr, k.family, k.port);
    f.frontend = {e.address, e.port, static_cast<Protocol>(k.proto), scopeOf(v.flags)};
    if (auto it = owners.find(k); it != owners.end()) f.service = it->second;
    f.serviceId = v.svc_id;
    f.affinity = (v.flags & SL_SVC_F_AFFINITY) != 0;
    f.local = (v.flags & SL_SVC_F_LOCAL) != 0;
    f.maglev = (v.flags & SL_SVC_F_MAGLEV) != 0;
    f.active = v.active_count;
    f.terminating = v.terminating_count;
    f.affinityTimeoutSeconds = v.affinity_timeout_s;
    f.maglevSize = v.maglev_size;
    const uint32_t set = bpf::setId(v.svc_id, k.family == SL_FAMILY_V6 ? IpFamily::kV6 : IpFamily::kV4, f.local);
    const uint32_t n = f.local ? v.local_active_count + v.local_terminating_count
                               : v.active_count + v.terminating_count;
    if (f.maglev) {
      // Maglev sets have no slots: the service's backends of this
      // frontend's family (and locality), unordered.
      for (const auto& [id, b] : d.backends) {
        if ((b.svc_id & SL_SVC_ID_MASK) != (v.svc_id & SL_SVC_ID_MASK) || b.family != k.family) continue;
        if (f.local && !(b.flags & SL_BACKEND_F_LOCAL)) continue;
        f.backends.push_back(describeBackend(id, b, 0));
      }
    } else {
      for (uint32_t slot = 0; slot < n; ++slot) {
        auto s = d.slots.find(sl_slot_key{set, slot});
        if (s == d.slots.end()) continue;
        auto b = d.backends.find(s->second);
        if (b == d.backends.end()) continue;
        f.backends.push_back(describeBackend(b->first, b->second, slot + 1));
      }
    }
    out.push_back(std::move(f));
  }
  return out;
}

Result<DescribedSelection> EbpfMode::describeSelection(const ServiceKey& key) const {
  uint32_t svcId = 0;
  {
    std::lock_guard lock(entriesMu_);
    auto id = programmer_->serviceId(key);
    if (!id) return Error::notFound("service " + key.toString() + ": not programmed");
    svcId = *id;
  }
  auto dumped = dump();
  if (!dumped) return dumped.error();
  DescribedSelection out;
  out.service = key.toString();
  out.serviceId = svcId;
  for (const auto& [setId, slots] : dumped->maglev) {
    if ((setId & SL_SVC_ID_MASK) != svcId) continue;
    out.tables.push_back({setId, (setId & SL_SVC_ID_V6) ? IpFamily::kV6 : IpFamily::kV4,
                          (setId & SL_SVC_ID_LOCAL) != 0, slots});
  }
  for (const auto& [id, b] : dumped->backends) {
    if ((b.svc_id & SL_SVC_ID_MASK) == svcId) out.backends.push_back(describeBackend(id, b, 0));
  }
  return out;
}

Result<std::vector<DescribedFlow>> EbpfMode::describeFlows(size_t limit) const {
  auto dumped = dump();
  if (!dumped) return dumped.error();
  const uint64_t now = monotonicNs();
  std::vector<DescribedFlow> out;
  for (const auto& [k, v] : dumped->conntrack) {
    if (limit != 0 && out.size() >= limit) break;
    DescribedFlow f;
    f.reply = k.dir == SL_CT_DIR_REPLY;
    f.protocol = static_cast<Protocol>(k.proto);
    f.source = endpoint(k.saddr, k.family, k.sport);
    f.destination = endpoint(k.daddr, k.family, k.dport);
    f.backendId = v.backend_id;
    if (auto b = dumped->backends.find(v.backend_id); b != dumped->backends.end()) {
      f.backend = endpoint(b->second.addr, b->second.family, b->second.port);
    }
    if (f.reply || (v.flags & SL_CT_F_SNAT)) f.nat = endpoint(v.nat_addr, k.family, v.nat_port);
    if (v.flags & SL_CT_F_HAIRPIN) f.flags.push_back("hairpin");
    if (v.flags & SL_CT_F_NODE_FRONTEND) f.flags.push_back("node-frontend");
    if (v.flags & SL_CT_F_SNAT) f.flags.push_back("snat");
    f.setId = v.set_id;
    f.tcpFlags = tcpFlagNames(v.tcp_flags);
    f.idleMs = now > v.last_seen_ns ? (now - v.last_seen_ns) / 1000000 : 0;
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace sluice
