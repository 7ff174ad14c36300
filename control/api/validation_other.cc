// Namespaces, Nodes, Endpoints, EndpointSlices and Events.
#include <algorithm>

#include "control/api/validation.h"

namespace sluice::api {
namespace {

const std::vector<std::string> kProtocols = {"SCTP", "TCP", "UDP"};

// An EndpointSlice holds at most 1000 endpoints and 100 ports (maxEndpoints,
// maxPorts in discovery validation).
constexpr int kMaxSliceEndpoints = 1000;
constexpr int kMaxSlicePorts = 100;

}  // namespace

void validateNamespace(const Namespace& ns, FieldErrors& errs) {
  validateObjectMeta(ns.metadata(), false, NameRule::kDns1123Label, errs);
}

void validateNode(const Node& node, FieldErrors& errs) {
  validateObjectMeta(node.metadata(), false, NameRule::kDns1123Subdomain, errs);
  for (int i = 0; i < node.spec().taints_size(); ++i) {
    const auto& t = node.spec().taints(i);
    std::string p = index("spec.taints", static_cast<size_t>(i));
    for (const auto& m : checkQualifiedName(t.key())) errs.invalid(child(p, "key"), t.key(), m);
    const std::string& e = t.effect();
    if (e != "NoSchedule" && e != "PreferNoSchedule" && e != "NoExecute") {
      errs.notSupported(child(p, "effect"), e, {"NoExecute", "NoSchedule", "PreferNoSchedule"});
    }
  }
  for (int i = 0; i < node.status().addresses_size(); ++i) {
    const auto& a = node.status().addresses(i);
    if (a.address().empty()) errs.required(child(index("status.addresses", static_cast<size_t>(i)), "address"));
  }
}

void validateEndpoints(const Endpoints& ep, FieldErrors& errs) {
  validateObjectMeta(ep.metadata(), true, NameRule::kDns1123Subdomain, errs);
  for (int s = 0; s < ep.subsets_size(); ++s) {
    const auto& subset = ep.subsets(s);
    std::string sp = index("subsets", static_cast<size_t>(s));
    if (subset.addresses().empty() && subset.notreadyaddresses().empty()) {
      errs.required(sp, "must specify `addresses` or `notReadyAddresses`");
    }
    auto checkAddr = [&](const EndpointAddress& a, const std::string& p) {
      if (!isValidIp(a.ip())) errs.invalid(child(p, "ip"), a.ip(), "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
    };
    for (int i = 0; i < subset.addresses_size(); ++i) checkAddr(subset.addresses(i), index(child(sp, "addresses"), static_cast<size_t>(i)));
    for (int i = 0; i < subset.notreadyaddresses_size(); ++i) {
      checkAddr(subset.notreadyaddresses(i), index(child(sp, "notReadyAddresses"), static_cast<size_t>(i)));
    }
    for (int i = 0; i < subset.ports_size(); ++i) {
      const auto& port = subset.ports(i);
      std::string pp = index(child(sp, "ports"), static_cast<size_t>(i));
      for (const auto& m : checkPortNumber(port.port())) errs.invalid(child(pp, "port"), port.port(), m);
      if (std::find(kProtocols.begin(), kProtocols.end(), port.protocol()) == kProtocols.end()) {
        errs.notSupported(child(pp, "protocol"), port.protocol(), kProtocols);
      }
      if (subset.ports_size() > 1 && port.name().empty()) errs.required(child(pp, "name"));
    }
  }
}

void validateEndpointSlice(const EndpointSlice& slice, FieldErrors& errs) {
  validateObjectMeta(slice.metadata(), true, NameRule::kDns1123Subdomain, errs);
  const std::string& t = slice.addresstype();
  if (t != "IPv4" && t != "IPv6" && t != "FQDN") {
    errs.notSupported("addressType", t, {"FQDN", "IPv4", "IPv6"});
  }
  if (slice.endpoints_size() > kMaxSliceEndpoints) {
    errs.add({FieldErrorType::kTooMany, "endpoints", {}, "must have at most " + std::to_string(kMaxSliceEndpoints) + " items"});
  }
  if (slice.ports_size() > kMaxSlicePorts) {
    errs.add({FieldErrorType::kTooMany, "ports", {}, "must have at most " + std::to_string(kMaxSlicePorts) + " items"});
  }
  for (int i = 0; i < slice.endpoints_size(); ++i) {
    const auto& e = slice.endpoints(i);
    std::string ep = index("endpoints", static_cast<size_t>(i));
    if (e.addresses().empty()) errs.required(child(ep, "addresses"), "must contain at least 1 address");
    for (int a = 0; a < e.addresses_size(); ++a) {
      const std::string& addr = e.addresses(a);
      std::string ap = index(child(ep, "addresses"), static_cast<size_t>(a));
      if (t == "IPv4" && !isIpv4(addr)) errs.invalid(ap, addr, "must be a valid IPv4 address");
      if (t == "IPv6" && !isIpv6(addr)) errs.invalid(ap, addr, "must be a valid IPv6 address");
    }
  }
  for (int i = 0; i < slice.ports_size(); ++i) {
    const auto& p = slice.ports(i);
    std::string pp = index("ports", static_cast<size_t>(i));
    if (p.has_port()) {
      for (const auto& m : checkPortNumber(p.port())) errs.invalid(child(pp, "port"), p.port(), m);
    }
    if (p.has_protocol() && std::find(kProtocols.begin(), kProtocols.end(), p.protocol()) == kProtocols.end()) {
      errs.notSupported(child(pp, "protocol"), p.protocol(), kProtocols);
    }
  }
}

void validateEvent(const Event& ev, FieldErrors& errs) {
  validateObjectMeta(ev.metadata(), true, NameRule::kDns1123Subdomain, errs);
  const auto& io = ev.involvedobject();
  if (!io.namespace_().empty() && io.namespace_() != ev.metadata().namespace_()) {
    errs.invalid("involvedObject.namespace", io.namespace_(), "does not match event.namespace");
  }
  if (!ev.type().empty() && ev.type() != "Normal" && ev.type() != "Warning") {
    errs.notSupported("type", ev.type(), {"Normal", "Warning"});
  }
}

}  // namespace sluice::api
