#include "ipvs/ipvs_plan.h"

#include <algorithm>

namespace sluice::ipvs {

namespace {

constexpr const char* kSchedulerOption = "ipvs-scheduler";

}  // namespace

bool knownScheduler(const std::string& name) {
  static const std::set<std::string> kNames = {"rr", "wrr", "lc", "wlc", "sh",
                                               "mh", "sed", "nq", "dh",  "lblc"};
  return kNames.count(name) != 0;
}

size_t VsState::draining() const {
  return static_cast<size_t>(
      std::count_if(dests.begin(), dests.end(), [](const auto& d) { return d.second.draining; }));
}

std::vector<VirtualServer> virtualServersOf(const sluice::Service& s, const PlanOptions& options,
                                            std::string* warning) {
  std::string scheduler = s.algorithm == LbAlgorithm::kMaglev ? "mh" : options.defaultScheduler;
  if (auto it = s.modeOptions.find(kSchedulerOption); it != s.modeOptions.end()) {
    if (knownScheduler(it->second)) {
      scheduler = it->second;
    } else if (warning != nullptr) {
      *warning = "service " + s.key.toString() + ": ipvs-scheduler \"" + it->second +
                 "\": not an IPVS scheduler (rr, wrr, lc, wlc, sh, mh, sed, nq); using " +
                 scheduler;
    }
  }
  uint32_t flags = 0;
  if (scheduler == "mh") {
    flags |= ServiceFlags::kMhFallback | (options.mhPort ? ServiceFlags::kMhPort : 0);
  } else if (scheduler == "sh") {
    flags |= ServiceFlags::kShFallback;
  }
  if (s.affinity.clientIp) flags |= ServiceFlags::kPersistent;

  std::vector<VirtualServer> out;
  out.reserve(s.frontends.size());
  for (const Frontend& f : s.frontends) {
    VirtualServer vs;
    vs.svc.key = ServiceKey::tuple(f.address, f.port, s.protocol);
    vs.svc.scheduler = scheduler;
    vs.svc.flags = flags;
    if (s.affinity.clientIp) vs.svc.timeoutSeconds = s.affinity.timeoutSeconds;
    vs.owner = s.key;
    vs.scope = f.scope;
    const sluice::Service::BackendSet set = s.backendSet(s.isLocal(f.scope), f.address.family());
    const bool fallback = set.active.empty();
    auto add = [&](size_t i, bool takesNew) {
      const Backend& b = s.backends[i];
      Destination d;
      d.address = b.address;
      d.port = b.port;
      d.weight = takesNew ? b.weight : 0;
      d.forward = ForwardMethod::kMasquerade;
      vs.dests[{b.address, b.port}] = d;
    };
    for (size_t i : set.active) add(i, true);
    for (size_t i : set.terminating) add(i, fallback);
    out.push_back(std::move(vs));
  }
  return out;
}

ConntrackFilter udpFlushFilter(const ServiceKey& key, const Destination& dest) {
  ConntrackFilter f;
  f.family = key.family;
  f.protocol = Protocol::kUdp;
  f.originalDestination = key.address;
  f.originalDestinationPort = key.port;
  f.replySource = dest.address;
  f.replySourcePort = dest.port;
  return f;
}

std::optional<VsState> reconcile(const ServiceKey& key, const VsState* current,
                                 const VirtualServer* wanted, Clock::time_point now,
                                 const PlanOptions& options, Batch& batch,
                                 std::vector<ConntrackFilter>& flushes) {
  const bool udp = key.protocol == Protocol::kUdp;
  if (wanted == nullptr) {
    if (current == nullptr) return std::nullopt;
    // Deleting the service ends its connections (expire_nodest_conn): what
    // kube-proxy does when a Service goes. UDP conntrack entries go too.
    batch.deleteService(key);
    if (udp) {
      for (const auto& [ep, d] : current->dests) flushes.push_back(udpFlushFilter(key, d.dest));
    }
    return std::nullopt;
  }

  VsState next;
  next.svc = wanted->svc;
  next.owner = wanted->owner;
  next.scope = wanted->scope;
  if (current == nullptr) {
    if (wanted->dests.empty()) return std::nullopt;  // refused by nftables, see below
    batch.addService(wanted->svc);
    for (const auto& [ep, d] : wanted->dests) {
      batch.addDestination(key, d);
      next.dests[ep] = DestState{d, false, {}};
    }
    return next;
  }

  if (!current->svc.sameConfig(wanted->svc)) batch.updateService(wanted->svc);
  for (const auto& [ep, d] : wanted->dests) {
    auto it = current->dests.find(ep);
    if (it == current->dests.end()) {
      batch.addDestination(key, d);
    } else if (!it->second.dest.sameConfig(d)) {
      batch.updateDestination(key, d);
    }
    next.dests[ep] = DestState{d, false, {}};
  }
  for (const auto& [ep, cur] : current->dests) {
    if (wanted->dests.count(ep)) continue;
    if (udp || (cur.draining && now >= cur.deadline)) {
      batch.deleteDestination(key, ep.first, ep.second);
      if (udp) flushes.push_back(udpFlushFilter(key, cur.dest));
      continue;
    }
    DestState drain = cur;
    if (!drain.draining) {
      drain.draining = true;
      drain.deadline = now + options.drainTimeout;
    }
    if (drain.dest.weight != 0) {
      drain.dest.weight = 0;
      batch.updateDestination(key, drain.dest);
    }
    next.dests[ep] = drain;
  }
  if (next.dests.empty()) {
    // Nothing to send to and nothing draining: no virtual server, so the
    // nftables refusal answers new flows the same way for pods and for the
    // node itself (a virtual server without destinations makes IPVS drop
    // the node's own UDP with EPERM and answer pods with a rate-limited
    // ICMP error).
    batch.deleteService(key);
    return std::nullopt;
  }
  return next;
}

}  // namespace sluice::ipvs
