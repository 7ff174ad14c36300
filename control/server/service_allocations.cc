#include "control/server/service_allocations.h"

#include <algorithm>
#include <set>

namespace sluice::server {
namespace {

bool usesClusterIp(const api::ServiceSpec& s) { return s.type() != "ExternalName" && s.clusterip() != "None"; }

bool usesNodePorts(const api::ServiceSpec& s) {
  return s.type() == "NodePort" ||
         (s.type() == "LoadBalancer" && (!s.has_allocateloadbalancernodeports() || s.allocateloadbalancernodeports()));
}

std::string goStrings(const std::string& ip) { return "[]string{\"" + ip + "\"}"; }

std::string lbIngressIp(const api::Service& s) {
  if (s.spec().type() != "LoadBalancer") return "";
  for (const auto& i : s.status().loadbalancer().ingress()) {
    if (!i.ip().empty()) return i.ip();
  }
  return "";
}

}  // namespace

Result<std::unique_ptr<ServiceAllocations>> ServiceAllocations::create(const ServiceNetworkOptions& o) {
  auto ips = IpAllocator::create(o.serviceCidr, true);
  if (!ips) return ips.error().wrap("service CIDR");
  auto ports = PortAllocator::create(o.nodePortFirst, o.nodePortLast);
  if (!ports) return ports.error().wrap("node port range");
  auto lb = IpAllocator::create(o.loadBalancerPool, false);
  if (!lb) return lb.error().wrap("load balancer pool");
  return std::unique_ptr<ServiceAllocations>(
      new ServiceAllocations(std::move(*ips), std::move(*ports), std::move(*lb)));
}

ServiceAllocations::Change ServiceAllocations::assign(api::Service& svc, const api::Service* old,
                                                      api::FieldErrors& errs) {
  std::lock_guard lock(mu_);
  Change ch;
  api::ServiceSpec& spec = *svc.mutable_spec();
  size_t errorsBefore = errs.size();

  // Cluster IP.
  std::string oldIp = old != nullptr && usesClusterIp(old->spec()) ? old->spec().clusterip() : "";
  if (usesClusterIp(spec)) {
    if (spec.clusterip().empty()) {
      auto ip = ips_.allocateNext();
      if (!ip) {
        errs.add({api::FieldErrorType::kInternal, "spec.clusterIPs", {}, "failed to allocate a serviceIP: " + ip.error().message});
      } else {
        spec.set_clusterip(*ip);
        ch.ipsTaken.push_back(*ip);
      }
    } else if (spec.clusterip() != oldIp) {
      auto r = ips_.allocate(spec.clusterip());
      if (!r) {
        errs.invalid("spec.clusterIPs", api::BadValue::raw(goStrings(spec.clusterip())),
                     "failed to allocate IP " + spec.clusterip() + ": " + r.error().message);
      } else {
        ch.ipsTaken.push_back(spec.clusterip());
      }
    }
  }
  if (!oldIp.empty() && (!usesClusterIp(spec) || spec.clusterip() != oldIp)) ch.ipsFreed.push_back(oldIp);
  if (spec.type() == "ExternalName") {
    spec.clear_clusterips();
    spec.clear_ipfamilies();
    spec.clear_ipfamilypolicy();
  } else if (!spec.clusterip().empty()) {
    spec.clear_clusterips();
    spec.add_clusterips(spec.clusterip());
    if (spec.ipfamilies().empty()) spec.add_ipfamilies("IPv4");
    if (!spec.has_ipfamilypolicy()) spec.set_ipfamilypolicy("SingleStack");
  }

  // Node ports. Ports the old object held stay with the Service.
  std::set<int> oldPorts;
  if (old != nullptr) {
    for (const auto& p : old->spec().ports()) {
      if (p.nodeport() != 0) oldPorts.insert(p.nodeport());
    }
  }
  std::set<int> mine;
  bool wantPorts = usesNodePorts(spec);
  bool external = spec.type() == "NodePort" || spec.type() == "LoadBalancer";
  for (int i = 0; i < spec.ports_size(); ++i) {
    auto* p = spec.mutable_ports(i);
    if (!external) continue;
    if (p->nodeport() != 0) {
      if (mine.count(p->nodeport()) || oldPorts.count(p->nodeport())) {
        mine.insert(p->nodeport());
        continue;
      }
      auto r = ports_.allocate(p->nodeport());
      if (!r) {
        errs.invalid(api::child(api::index("spec.ports", static_cast<size_t>(i)), "nodePort"), p->nodeport(),
                     r.error().message);
      } else {
        ch.portsTaken.push_back(p->nodeport());
        mine.insert(p->nodeport());
      }
    } else if (wantPorts) {
      auto r = ports_.allocateNext();
      if (!r) {
        errs.add({api::FieldErrorType::kInternal, api::child(api::index("spec.ports", static_cast<size_t>(i)), "nodePort"),
                  {}, "failed to allocate a nodePort: " + r.error().message});
      } else {
        p->set_nodeport(*r);
        ch.portsTaken.push_back(*r);
        mine.insert(*r);
      }
    }
  }
  for (int p : oldPorts) {
    if (!mine.count(p)) ch.portsFreed.push_back(p);
  }

  // Load balancer ingress.
  std::string oldLb = old != nullptr ? lbIngressIp(*old) : "";
  if (!oldLb.empty() && !lb_.contains(oldLb)) oldLb.clear();  // not ours (set through /status)
  std::string lbIp;
  if (spec.type() == "LoadBalancer") {
    const std::string& wanted = spec.loadbalancerip();
    if (!oldLb.empty() && (wanted.empty() || wanted == oldLb)) {
      lbIp = oldLb;
    } else if (!wanted.empty()) {
      if (lb_.contains(wanted)) {
        auto r = lb_.allocate(wanted);
        if (!r) {
          errs.invalid("spec.loadBalancerIP", wanted, "failed to allocate IP " + wanted + ": " + r.error().message);
        } else {
          lbIp = wanted;
          ch.lbTaken.push_back(wanted);
        }
      }
    } else {
      auto r = lb_.allocateNext();
      if (r) {
        lbIp = *r;
        ch.lbTaken.push_back(*r);
      }
    }
    auto* lbStatus = svc.mutable_status()->mutable_loadbalancer();
    lbStatus->clear_ingress();
    if (!lbIp.empty()) {
      auto* ing = lbStatus->add_ingress();
      ing->set_ip(lbIp);
      ing->set_ipmode("VIP");
    }
  } else {
    svc.mutable_status()->mutable_loadbalancer()->clear_ingress();
  }
  if (!oldLb.empty() && lbIp != oldLb) ch.lbFreed.push_back(oldLb);

  if (errs.size() != errorsBefore) {
    releaseLocked(ch, true);
    return {};
  }
  return ch;
}

void ServiceAllocations::releaseLocked(const Change& c, bool taken) {
  for (const auto& ip : taken ? c.ipsTaken : c.ipsFreed) ips_.release(ip);
  for (int p : taken ? c.portsTaken : c.portsFreed) ports_.release(p);
  for (const auto& ip : taken ? c.lbTaken : c.lbFreed) lb_.release(ip);
}

void ServiceAllocations::commit(const Change& c) {
  std::lock_guard lock(mu_);
  releaseLocked(c, false);
}

void ServiceAllocations::rollback(const Change& c) {
  std::lock_guard lock(mu_);
  releaseLocked(c, true);
}

void ServiceAllocations::release(const api::Service& svc) {
  std::lock_guard lock(mu_);
  if (usesClusterIp(svc.spec())) ips_.release(svc.spec().clusterip());
  std::set<int> done;
  for (const auto& p : svc.spec().ports()) {
    if (p.nodeport() != 0 && done.insert(p.nodeport()).second) ports_.release(p.nodeport());
  }
  std::string lb = lbIngressIp(svc);
  if (!lb.empty()) lb_.release(lb);
}

bool ServiceAllocations::restore(const api::Service& svc) {
  std::lock_guard lock(mu_);
  bool ok = true;
  if (usesClusterIp(svc.spec()) && ips_.contains(svc.spec().clusterip())) {
    ok &= ips_.allocate(svc.spec().clusterip()).ok();
  }
  std::set<int> done;
  for (const auto& p : svc.spec().ports()) {
    if (p.nodeport() != 0 && done.insert(p.nodeport()).second) ok &= ports_.allocate(p.nodeport()).ok();
  }
  std::string lb = lbIngressIp(svc);
  if (!lb.empty() && lb_.contains(lb)) ok &= lb_.allocate(lb).ok();
  return ok;
}

std::string ServiceAllocations::firstServiceIp() const {
  std::lock_guard lock(mu_);
  return ips_.first();
}

size_t ServiceAllocations::freeServiceIps() const {
  std::lock_guard lock(mu_);
  return ips_.freeCount();
}

size_t ServiceAllocations::freeNodePorts() const {
  std::lock_guard lock(mu_);
  return ports_.freeCount();
}

size_t ServiceAllocations::freeLoadBalancerIps() const {
  std::lock_guard lock(mu_);
  return lb_.freeCount();
}

}  // namespace sluice::server
