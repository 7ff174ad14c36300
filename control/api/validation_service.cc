// Services (pkg/apis/core/validation: ValidateService, ValidateServiceUpdate).
// Address and port allocation errors (range, collision) come from the
// server's allocators, which run after this.
#include <algorithm>
#include <set>

#include "control/api/validation.h"

namespace sluice::api {
namespace {

const std::vector<std::string> kProtocols = {"SCTP", "TCP", "UDP"};
const std::vector<std::string> kTypes = {"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"};
// ClientIP affinity may last at most a day (MaxClientIPServiceAffinitySeconds).
constexpr int32_t kMaxAffinitySeconds = 86400;

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

std::string goStrings(const google::protobuf::RepeatedPtrField<std::string>& v) {
  std::string s = "[]string{";
  for (int i = 0; i < v.size(); ++i) s += (i ? ", \"" : "\"") + v[i] + "\"";
  return s + "}";
}

void checkPorts(const ServiceSpec& spec, FieldErrors& errs) {
  std::set<std::string> names;
  std::set<std::pair<int32_t, std::string>> portProtocols;
  bool external = spec.type() == "NodePort" || spec.type() == "LoadBalancer";
  for (int i = 0; i < spec.ports_size(); ++i) {
    const auto& p = spec.ports(i);
    std::string pp = index("spec.ports", static_cast<size_t>(i));
    if (spec.ports_size() > 1 && p.name().empty()) {
      errs.required(child(pp, "name"));
    } else if (!p.name().empty()) {
      for (const auto& m : checkDns1123Label(p.name())) errs.invalid(child(pp, "name"), p.name(), m);
      if (!names.insert(p.name()).second) errs.duplicate(child(pp, "name"), p.name());
    }
    for (const auto& m : checkPortNumber(p.port())) errs.invalid(child(pp, "port"), p.port(), m);
    if (p.protocol().empty()) {
      errs.required(child(pp, "protocol"));
    } else if (!contains(kProtocols, p.protocol())) {
      errs.notSupported(child(pp, "protocol"), p.protocol(), kProtocols);
    }
    const auto& tp = p.targetport();
    if (tp.value_case() == IntOrString::kStrVal) {
      for (const auto& m : checkPortName(tp.strval())) errs.invalid(child(pp, "targetPort"), tp.strval(), m);
    } else {
      for (const auto& m : checkPortNumber(tp.intval())) errs.invalid(child(pp, "targetPort"), tp.intval(), m);
    }
    if (p.nodeport() != 0 && !external) {
      errs.forbidden(child(pp, "nodePort"), "may not be used when `type` is '" + spec.type() + "'");
    }
    if (!portProtocols.insert({p.port(), p.protocol()}).second) {
      errs.duplicate(pp, BadValue::raw("core.ServicePort{Name:\"" + p.name() + "\", Protocol:\"" +
                                       p.protocol() + "\", Port:" + std::to_string(p.port()) + "}"));
    }
  }
  // One nodePort may serve one port+protocol only.
  std::set<std::pair<int32_t, std::string>> nodePorts;
  for (int i = 0; i < spec.ports_size(); ++i) {
    const auto& p = spec.ports(i);
    if (p.nodeport() == 0) continue;
    if (!nodePorts.insert({p.nodeport(), p.protocol()}).second) {
      errs.duplicate(child(index("spec.ports", static_cast<size_t>(i)), "nodePort"), p.nodeport());
    }
  }
}

}  // namespace

void validateService(const Service& svc, FieldErrors& errs) {
  validateObjectMeta(svc.metadata(), true, NameRule::kDns1035Label, errs);
  const ServiceSpec& spec = svc.spec();
  const std::string& type = spec.type();
  if (!contains(kTypes, type)) errs.notSupported("spec.type", type, kTypes);
  bool headless = spec.clusterip() == "None";

  if (type == "ExternalName") {
    if (spec.externalname().empty()) {
      errs.required("spec.externalName");
    } else {
      std::string name = spec.externalname();
      if (!name.empty() && name.back() == '.') name.pop_back();
      for (const auto& m : checkDns1123Subdomain(name)) errs.invalid("spec.externalName", spec.externalname(), m);
    }
    if (!spec.clusterip().empty()) {
      errs.forbidden("spec.clusterIPs", "may not be set for ExternalName services");
    }
  } else if (spec.ports().empty() && !headless) {
    errs.required("spec.ports");
  }
  checkPorts(spec, errs);

  if (!spec.clusterip().empty() && !headless && !isValidIp(spec.clusterip())) {
    errs.invalid("spec.clusterIPs[0]", spec.clusterip(), "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
  }
  if (!spec.clusterips().empty() && spec.clusterips(0) != spec.clusterip()) {
    errs.invalid("spec.clusterIPs", BadValue::raw(goStrings(spec.clusterips())),
                 "element [0] must match clusterIP; expected " + spec.clusterip() + ", got " + spec.clusterips(0));
  }
  for (int i = 1; i < spec.clusterips_size(); ++i) {
    if (!isValidIp(spec.clusterips(i))) {
      errs.invalid(index("spec.clusterIPs", static_cast<size_t>(i)), spec.clusterips(i),
                   "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
    }
  }
  if (headless && (type == "NodePort" || type == "LoadBalancer")) {
    errs.invalid("spec.clusterIPs[0]", "None", "may not be set to 'None' for " + type + " services");
  }
  for (int i = 0; i < spec.externalips_size(); ++i) {
    if (!isValidIp(spec.externalips(i))) {
      errs.invalid(index("spec.externalIPs", static_cast<size_t>(i)), spec.externalips(i),
                   "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
    }
  }
  if (!spec.loadbalancerip().empty() && !isValidIp(spec.loadbalancerip())) {
    errs.invalid("spec.loadBalancerIP", spec.loadbalancerip(), "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
  }
  for (int i = 0; i < spec.loadbalancersourceranges_size(); ++i) {
    if (!isValidCidr(spec.loadbalancersourceranges(i))) {
      errs.invalid(index("spec.loadBalancerSourceRanges", static_cast<size_t>(i)), spec.loadbalancersourceranges(i),
                   "must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24 ");
    }
  }

  const std::string& affinity = spec.sessionaffinity();
  if (affinity != "ClientIP" && affinity != "None") {
    errs.notSupported("spec.sessionAffinity", affinity, {"ClientIP", "None"});
  }
  if (affinity == "ClientIP") {
    int32_t t = spec.sessionaffinityconfig().clientip().timeoutseconds();
    if (t <= 0 || t > kMaxAffinitySeconds) {
      errs.invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", t,
                   "must be greater than 0 and less than " + std::to_string(kMaxAffinitySeconds));
    }
  } else if (affinity == "None" && spec.has_sessionaffinityconfig()) {
    errs.invalid("spec.sessionAffinityConfig", BadValue::raw("core.SessionAffinityConfig{...}"),
                 "must not be set when session affinity is None");
  }

  bool externallyAccessible = type == "NodePort" || type == "LoadBalancer" || !spec.externalips().empty();
  const std::string& etp = spec.externaltrafficpolicy();
  if (!etp.empty()) {
    if (etp != "Cluster" && etp != "Local") {
      errs.notSupported("spec.externalTrafficPolicy", etp, {"Cluster", "Local"});
    } else if (!externallyAccessible) {
      errs.invalid("spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services");
    }
  } else if (externallyAccessible) {
    errs.required("spec.externalTrafficPolicy");
  }
  if (spec.has_internaltrafficpolicy()) {
    const std::string& itp = spec.internaltrafficpolicy();
    if (itp != "Cluster" && itp != "Local") errs.notSupported("spec.internalTrafficPolicy", itp, {"Cluster", "Local"});
  }
  for (int i = 0; i < spec.ipfamilies_size(); ++i) {
    const std::string& f = spec.ipfamilies(i);
    if (f != "IPv4" && f != "IPv6") errs.notSupported(index("spec.ipFamilies", static_cast<size_t>(i)), f, {"IPv4", "IPv6"});
  }
  if (spec.has_ipfamilypolicy()) {
    const std::string& p = spec.ipfamilypolicy();
    if (p != "SingleStack" && p != "PreferDualStack" && p != "RequireDualStack") {
      errs.notSupported("spec.ipFamilyPolicy", p, {"PreferDualStack", "RequireDualStack", "SingleStack"});
    }
  }
  validateLabels(spec.selector(), "spec.selector", errs);
}

void validateServiceUpdate(const Service& svc, const Service& old, FieldErrors& errs) {
  validateObjectMetaUpdate(svc.metadata(), old.metadata(), errs);
  validateService(svc, errs);
  // A cluster IP stays for the service's life unless it becomes ExternalName.
  const auto& s = svc.spec();
  const auto& o = old.spec();
  if (s.type() != "ExternalName" && !o.clusterip().empty() && s.clusterip() != o.clusterip()) {
    errs.invalid("spec.clusterIPs[0]", BadValue::raw(goStrings(s.clusterips())), "may not change once set");
  }
}

}  // namespace sluice::api
