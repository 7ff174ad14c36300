// IpvsMode's introspection: capabilities, the stats snapshot, and the
// mode-neutral describe() read from the kernel (a dump for the frontends,
// /proc/net/ip_vs_conn for the flows).
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "ipvs/ipvs_mode.h"

namespace sluice::ipvs {

namespace {

// /proc/net/ip_vs_conn prints IPv4 as 8 hex digits (host order of the
// network-order value, i.e. "0A60000A" is 10.96.0.10) and IPv6 with %pI6
// (full colon groups); ports as 4 hex digits.
std::optional<IpAddress> procAddress(const std::string& text) {
  if (text.find(':') != std::string::npos) {
    auto a = IpAddress::parse(text);
    if (!a) return std::nullopt;
    return *a;
  }
  char* end = nullptr;
  const unsigned long v = std::strtoul(text.c_str(), &end, 16);
  if (end == text.c_str() || *end != '\0') return std::nullopt;
  return IpAddress::v4FromHost(static_cast<uint32_t>(v));
}

uint16_t procPort(const std::string& text) {
  return static_cast<uint16_t>(std::strtoul(text.c_str(), nullptr, 16));
}

std::optional<Protocol> procProtocol(const std::string& text) {
  if (text == "TCP") return Protocol::kTcp;
  if (text == "UDP") return Protocol::kUdp;
  if (text == "SCTP") return Protocol::kSctp;
  return std::nullopt;
}

DescribedBackend describeDest(const DestState& d) {
  DescribedBackend b;
  b.endpoint = {d.dest.address, d.dest.port};
  b.weight = static_cast<uint16_t>(std::min<uint32_t>(d.dest.weight, UINT16_MAX));
  b.state = d.dest.weight == 0 ? BackendState::kTerminating : BackendState::kActive;
  b.activeConnections = d.dest.activeConnections;
  b.inactiveConnections = d.dest.inactiveConnections;
  return b;
}

}  // namespace

ModeCapabilities IpvsMode::capabilities() const {
  ModeCapabilities caps;
  // Maglev maps to the kernel's mh scheduler, whose table size is a kernel
  // build option (ipvs/README.md); unmetRequests() says so per Service.
  caps.fixedMaglevTableSize = kKernelMhTableSize;
  caps.missing[ModeFeature::kSocketLb] =
      "IPVS translates packets at the node, not sockets at connect(): a host process's socket "
      "stays connected to the frontend, and node traffic to a ClusterIP leaves with the "
      "ClusterIP as its source";
  caps.missing[ModeFeature::kDsr] =
      "destinations are masqueraded (NAT): replies return through the node";
  if (!conntrack_) {
    caps.missing[ModeFeature::kUdpStaleFlowCleanup] =
        "conntrack entries of a removed UDP backend are not flushed (" + conntrackError_ +
        "): clients keep sending to it until the entry times out";
  }
  if (!options_.sourceRangesEnforced) {
    caps.missing[ModeFeature::kLoadBalancerSourceRanges] =
        "not enforced without the mode's nftables table: every client reaches the "
        "LoadBalancer IPs";
  }
  return caps;
}

void IpvsMode::publishStats() {
  // O(draining virtual servers), not O(table): this runs after every apply.
  ProxyStats s;
  size_t draining = 0;
  for (const ServiceKey& key : drainingKeys_) draining += programmed_.at(key).draining();
  s.backends = destinations_;
  s.services = byOwner_.size();
  s.frontends = programmed_.size();
  s.applies = applies_;
  s.applyErrors = applyErrors_;
  const NetlinkCounters& n = client_->counters();
  s.counters["netlink.requests"] = n.requestsSent;
  s.counters["netlink.send_calls"] = n.sendCalls;
  s.counters["netlink.receive_calls"] = n.receiveCalls;
  s.counters["netlink.round_trips"] = n.roundTrips;
  s.counters["ipvs.batches"] = batches_;
  s.counters["ipvs.apply_requests"] = applyRequests_;
  s.counters["ipvs.change_failures"] = changeFailures_;
  s.counters["ipvs.draining"] = draining;
  s.counters["ipvs.drained"] = drained_;
  s.counters["ipvs.drain_timeouts"] = drainTimeouts_;
  s.counters["conntrack.flushed"] = conntrackFlushed_;
  s.counters["conntrack.errors"] = conntrackErrors_;
  if (conntrack_) s.counters["conntrack.netlink_requests"] = conntrack_->counters().requestsSent;
  std::lock_guard lock(statsMu_);
  stats_ = std::move(s);
}

ProxyStats IpvsMode::stats() const {
  std::lock_guard lock(statsMu_);
  return stats_;
}

Result<std::vector<DescribedFrontend>> IpvsMode::describeFrontends() const {
  std::lock_guard lock(mu_);
  auto dumped = dumpKernel();
  if (!dumped) return dumped.error();
  std::vector<DescribedFrontend> out;
  for (const auto& [key, st] : *dumped) {
    if (key.isFwmark()) continue;  // not sluice's (it programs none)
    DescribedFrontend f;
    f.frontend = Frontend{key.address, key.port, key.protocol, FrontendScope::kClusterIp};
    if (auto p = programmed_.find(key); p != programmed_.end()) {
      f.service = p->second.owner.ns.empty() ? "" : p->second.owner.toString();
      f.frontend.scope = p->second.scope;
    }
    f.scheduler = st.svc.scheduler;
    f.maglev = st.svc.scheduler == "mh";
    f.maglevSize = f.maglev ? kKernelMhTableSize : 0;
    f.affinity = (st.svc.flags & ServiceFlags::kPersistent) != 0;
    f.affinityTimeoutSeconds = f.affinity ? st.svc.timeoutSeconds : 0;
    for (const auto& [ep, d] : st.dests) {
      DescribedBackend b = describeDest(d);
      (b.state == BackendState::kActive ? f.active : f.terminating) += 1;
      f.backends.push_back(b);
    }
    out.push_back(std::move(f));
  }
  return out;
}

Result<DescribedSelection> IpvsMode::describeSelection(const sluice::ServiceKey& key) const {
  std::lock_guard lock(mu_);
  auto owned = byOwner_.find(key);
  if (owned == byOwner_.end())
    return Error::notFound("service " + key.toString() + ": not programmed");
  DescribedSelection sel;
  sel.service = key.toString();
  // The kernel's mh lookup table is not readable from userspace: the
  // destinations are all there is to show.
  for (const ServiceKey& k : owned->second) {
    const VsState& st = programmed_.at(k);
    for (const auto& [ep, d] : st.dests) sel.backends.push_back(describeDest(d));
    break;
  }
  return sel;
}

Result<std::vector<DescribedFlow>> IpvsMode::describeFlows(size_t limit) const {
  // The connection table of this network namespace, IPv4 and IPv6.
  // thread-self: /proc/net follows the process's first thread, and the agent
  // may have moved only its calling thread into the node's namespace.
  std::ifstream plain("/proc/thread-self/net/ip_vs_conn");
  std::istream* src = &plain;
  if (!plain) {
    return Error{ErrorCode::kFailedPrecondition,
                 "/proc/net/ip_vs_conn is not readable (is ip_vs loaded?)"};
  }
  std::vector<DescribedFlow> out;
  std::string line;
  std::getline(*src, line);  // header
  while (std::getline(*src, line) && (limit == 0 || out.size() < limit)) {
    std::istringstream fields(line);
    std::string proto, from, fport, to, tport, dest, dport, state, expires;
    if (!(fields >> proto >> from >> fport >> to >> tport >> dest >> dport >> state >> expires)) {
      continue;
    }
    auto p = procProtocol(proto);
    auto f = procAddress(from);
    auto t = procAddress(to);
    auto d = procAddress(dest);
    if (!p || !f || !t || !d) continue;
    DescribedFlow flow;
    flow.protocol = *p;
    flow.source = {*f, procPort(fport)};
    flow.destination = {*t, procPort(tport)};
    flow.backend = Endpoint{*d, procPort(dport)};
    flow.tcpFlags = state;
    flow.flags.push_back("expires=" + expires + "s");
    out.push_back(std::move(flow));
  }
  return out;
}

}  // namespace sluice::ipvs
