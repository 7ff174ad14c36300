// Pods and pod templates (pkg/apis/core/validation: ValidatePodSpec and its
// container, port, probe, volume and env rules).
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <set>

#include "control/api/quantity.h"
#include "control/api/validation.h"

namespace sluice::api {
namespace {

const std::vector<std::string> kProtocols = {"SCTP", "TCP", "UDP"};

void checkNonNegative(int64_t v, const std::string& path, FieldErrors& errs) {
  if (v < 0) errs.invalid(path, v, "must be greater than or equal to 0");
}

void checkIntOrStringPort(const IntOrString& port, const std::string& path, FieldErrors& errs) {
  if (port.value_case() == IntOrString::kStrVal) {
    for (const auto& m : checkPortName(port.strval())) errs.invalid(path, port.strval(), m);
  } else {
    for (const auto& m : checkPortNumber(port.intval())) errs.invalid(path, port.intval(), m);
  }
}

// Exactly one handler; returns how many were set.
template <typename Handler>
void checkHandler(const Handler& h, const std::string& path, FieldErrors& errs) {
  int n = 0;
  if (h.has_exec()) {
    ++n;
    if (h.exec().command().empty()) errs.required(child(path, "exec.command"));
  }
  if (h.has_httpget()) {
    if (n++ > 0) {
      errs.forbidden(child(path, "httpGet"), "may not specify more than 1 handler type");
    } else {
      checkIntOrStringPort(h.httpget().port(), child(path, "httpGet.port"), errs);
      const std::string& scheme = h.httpget().scheme();
      if (scheme != "HTTP" && scheme != "HTTPS") {
        errs.notSupported(child(path, "httpGet.scheme"), scheme, {"HTTP", "HTTPS"});
      }
    }
  }
  if (h.has_tcpsocket()) {
    if (n++ > 0) {
      errs.forbidden(child(path, "tcpSocket"), "may not specify more than 1 handler type");
    } else {
      checkIntOrStringPort(h.tcpsocket().port(), child(path, "tcpSocket.port"), errs);
    }
  }
  if constexpr (std::is_same_v<Handler, Probe>) {
    if (h.has_grpc()) {
      if (n++ > 0) {
        errs.forbidden(child(path, "grpc"), "may not specify more than 1 handler type");
      } else {
        for (const auto& m : checkPortNumber(h.grpc().port())) errs.invalid(child(path, "grpc.port"), h.grpc().port(), m);
      }
    }
  } else {
    if (h.has_sleep()) {
      if (n++ > 0) errs.forbidden(child(path, "sleep"), "may not specify more than 1 handler type");
    }
  }
  if (n == 0) errs.required(path, "must specify a handler type");
}

void checkProbe(const Probe& p, const std::string& path, bool successMustBeOne, FieldErrors& errs) {
  checkHandler(p, path, errs);
  checkNonNegative(p.initialdelayseconds(), child(path, "initialDelaySeconds"), errs);
  checkNonNegative(p.timeoutseconds(), child(path, "timeoutSeconds"), errs);
  checkNonNegative(p.periodseconds(), child(path, "periodSeconds"), errs);
  checkNonNegative(p.successthreshold(), child(path, "successThreshold"), errs);
  checkNonNegative(p.failurethreshold(), child(path, "failureThreshold"), errs);
  if (successMustBeOne && p.successthreshold() != 1) {
    errs.invalid(child(path, "successThreshold"), p.successthreshold(), "must be 1");
  }
}

void checkEnvName(const std::string& name, const std::string& path, FieldErrors& errs) {
  if (name.empty()) {
    errs.required(path);
    return;
  }
  // Kubernetes 1.30+: any printable ASCII except '='.
  for (char c : name) {
    if (c < 32 || c > 126 || c == '=') {
      errs.invalid(path, name, "a valid environment variable name must consist only of printable ASCII characters other than '='");
      return;
    }
  }
}

void checkResources(const ResourceRequirements& r, const std::string& path, FieldErrors& errs) {
  for (const auto& [name, req] : r.requests()) {
    auto lim = r.limits().find(name);
    if (lim == r.limits().end()) continue;
    auto q = parseQuantity(req.value());
    auto l = parseQuantity(lim->second.value());
    if (q && l && q->nanos > l->nanos) {
      errs.invalid(key(child(path, "requests"), name), req.value(),
                   "must be less than or equal to " + name + " limit of " + lim->second.value());
    }
  }
  for (const auto& [name, q] : r.limits()) {
    auto v = parseQuantity(q.value());
    if (v && v->nanos < 0) errs.invalid(key(child(path, "limits"), name), q.value(), "must be greater than or equal to 0");
  }
  for (const auto& [name, q] : r.requests()) {
    auto v = parseQuantity(q.value());
    if (v && v->nanos < 0) errs.invalid(key(child(path, "requests"), name), q.value(), "must be greater than or equal to 0");
  }
}

void checkContainer(const Container& c, const std::string& path, bool init,
                    const std::set<std::string>& volumes, FieldErrors& errs) {
  if (c.image().empty()) errs.required(child(path, "image"));
  std::set<std::string> portNames;
  for (int i = 0; i < c.ports_size(); ++i) {
    const auto& p = c.ports(i);
    std::string pp = index(child(path, "ports"), static_cast<size_t>(i));
    if (!p.name().empty()) {
      for (const auto& m : checkPortName(p.name())) errs.invalid(child(pp, "name"), p.name(), m);
      if (!portNames.insert(p.name()).second) errs.duplicate(child(pp, "name"), p.name());
    }
    if (p.containerport() == 0) {
      errs.required(child(pp, "containerPort"));
    } else {
      for (const auto& m : checkPortNumber(p.containerport())) errs.invalid(child(pp, "containerPort"), p.containerport(), m);
    }
    if (p.hostport() != 0) {
      for (const auto& m : checkPortNumber(p.hostport())) errs.invalid(child(pp, "hostPort"), p.hostport(), m);
    }
    if (p.protocol().empty()) {
      errs.required(child(pp, "protocol"));
    } else if (std::find(kProtocols.begin(), kProtocols.end(), p.protocol()) == kProtocols.end()) {
      errs.notSupported(child(pp, "protocol"), p.protocol(), kProtocols);
    }
    if (!p.hostip().empty() && !isValidIp(p.hostip())) {
      errs.invalid(child(pp, "hostIP"), p.hostip(), "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
    }
  }
  for (int i = 0; i < c.env_size(); ++i) {
    const auto& e = c.env(i);
    std::string ep = index(child(path, "env"), static_cast<size_t>(i));
    checkEnvName(e.name(), child(ep, "name"), errs);
    if (e.has_valuefrom()) {
      const auto& vf = e.valuefrom();
      int n = vf.has_fieldref() + vf.has_resourcefieldref() + vf.has_configmapkeyref() + vf.has_secretkeyref();
      if (!e.value().empty()) {
        errs.invalid(child(ep, "valueFrom"), BadValue::raw(""), "may not be specified when `value` is not empty");
      } else if (n == 0) {
        errs.invalid(child(ep, "valueFrom"), BadValue::raw(""), "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`");
      } else if (n > 1) {
        errs.invalid(child(ep, "valueFrom"), BadValue::raw(""), "may not have more than one field specified at a time");
      }
    }
  }
  std::set<std::string> mountPaths;
  for (int i = 0; i < c.volumemounts_size(); ++i) {
    const auto& m = c.volumemounts(i);
    std::string mp = index(child(path, "volumeMounts"), static_cast<size_t>(i));
    if (m.name().empty()) {
      errs.required(child(mp, "name"));
    } else if (!volumes.count(m.name())) {
      errs.notFound(child(mp, "name"), m.name());
    }
    if (m.mountpath().empty()) {
      errs.required(child(mp, "mountPath"));
    } else if (!mountPaths.insert(m.mountpath()).second) {
      errs.invalid(child(mp, "mountPath"), m.mountpath(), "must be unique");
    }
  }
  bool sidecar = init && c.has_restartpolicy() && c.restartpolicy() == "Always";
  if (c.has_restartpolicy()) {
    if (!init) {
      errs.forbidden(child(path, "restartPolicy"), "may not be set for non-init containers");
    } else if (c.restartpolicy() != "Always") {
      errs.notSupported(child(path, "restartPolicy"), c.restartpolicy(), {"Always"});
    }
  }
  if (init && !sidecar) {
    if (c.has_livenessprobe()) errs.forbidden(child(path, "livenessProbe"), "may not be set for init containers without restartPolicy=Always");
    if (c.has_readinessprobe()) errs.forbidden(child(path, "readinessProbe"), "may not be set for init containers without restartPolicy=Always");
    if (c.has_startupprobe()) errs.forbidden(child(path, "startupProbe"), "may not be set for init containers without restartPolicy=Always");
  } else {
    if (c.has_livenessprobe()) checkProbe(c.livenessprobe(), child(path, "livenessProbe"), true, errs);
    if (c.has_readinessprobe()) checkProbe(c.readinessprobe(), child(path, "readinessProbe"), false, errs);
    if (c.has_startupprobe()) checkProbe(c.startupprobe(), child(path, "startupProbe"), true, errs);
  }
  if (c.has_lifecycle()) {
    if (c.lifecycle().has_poststart()) checkHandler(c.lifecycle().poststart(), child(path, "lifecycle.postStart"), errs);
    if (c.lifecycle().has_prestop()) checkHandler(c.lifecycle().prestop(), child(path, "lifecycle.preStop"), errs);
  }
  const std::string& pull = c.imagepullpolicy();
  if (pull != "Always" && pull != "IfNotPresent" && pull != "Never") {
    errs.notSupported(child(path, "imagePullPolicy"), pull, {"Always", "IfNotPresent", "Never"});
  }
  const std::string& tmp = c.terminationmessagepolicy();
  if (tmp != "File" && tmp != "FallbackToLogsOnError") {
    errs.notSupported(child(path, "terminationMessagePolicy"), tmp, {"File", "FallbackToLogsOnError"});
  }
  checkResources(c.resources(), child(path, "resources"), errs);
}

void checkVolumes(const PodSpec& spec, const std::string& path, std::set<std::string>& names,
                  FieldErrors& errs) {
  for (int i = 0; i < spec.volumes_size(); ++i) {
    const auto& v = spec.volumes(i);
    std::string vp = index(child(path, "volumes"), static_cast<size_t>(i));
    if (v.name().empty()) {
      errs.required(child(vp, "name"));
    } else {
      for (const auto& m : checkDns1123Label(v.name())) errs.invalid(child(vp, "name"), v.name(), m);
      if (!names.insert(v.name()).second) errs.duplicate(child(vp, "name"), v.name());
    }
    int sources = v.has_hostpath() + v.has_emptydir() + v.has_secret() + v.has_configmap() +
                  v.has_persistentvolumeclaim() + v.has_projected() + v.has_downwardapi();
    if (sources == 0) {
      errs.required(vp, "must specify a volume type");
    } else if (sources > 1) {
      errs.forbidden(vp, "may not specify more than 1 volume type");
    }
    if (v.has_hostpath() && v.hostpath().path().empty()) errs.required(child(vp, "hostPath.path"));
    if (v.has_emptydir()) {
      const std::string& medium = v.emptydir().medium();
      if (!medium.empty() && medium != "Memory" && medium.rfind("HugePages", 0) != 0) {
        errs.notSupported(child(vp, "emptyDir.medium"), medium, {"", "Memory", "HugePages"});
      }
    }
    if (v.has_persistentvolumeclaim() && v.persistentvolumeclaim().claimname().empty()) {
      errs.required(child(vp, "persistentVolumeClaim.claimName"));
    }
  }
}

}  // namespace

void validatePodSpec(const PodSpec& spec, const std::string& path, FieldErrors& errs) {
  std::set<std::string> volumes;
  checkVolumes(spec, path, volumes, errs);

  std::set<std::string> names;
  auto checkName = [&](const Container& c, const std::string& cp) {
    if (c.name().empty()) {
      errs.required(child(cp, "name"));
      return;
    }
    for (const auto& m : checkDns1123Label(c.name())) errs.invalid(child(cp, "name"), c.name(), m);
    if (!names.insert(c.name()).second) errs.duplicate(child(cp, "name"), c.name());
  };
  for (int i = 0; i < spec.initcontainers_size(); ++i) {
    std::string cp = index(child(path, "initContainers"), static_cast<size_t>(i));
    checkName(spec.initcontainers(i), cp);
    checkContainer(spec.initcontainers(i), cp, true, volumes, errs);
  }
  if (spec.containers().empty()) errs.required(child(path, "containers"));
  for (int i = 0; i < spec.containers_size(); ++i) {
    std::string cp = index(child(path, "containers"), static_cast<size_t>(i));
    checkName(spec.containers(i), cp);
    checkContainer(spec.containers(i), cp, false, volumes, errs);
  }

  const std::string& rp = spec.restartpolicy();
  if (rp != "Always" && rp != "OnFailure" && rp != "Never") {
    errs.notSupported(child(path, "restartPolicy"), rp, {"Always", "OnFailure", "Never"});
  }
  const std::string& dns = spec.dnspolicy();
  if (dns != "ClusterFirstWithHostNet" && dns != "ClusterFirst" && dns != "Default" && dns != "None") {
    errs.notSupported(child(path, "dnsPolicy"), dns, {"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"});
  }
  validateLabels(spec.nodeselector(), child(path, "nodeSelector"), errs);
  if (spec.has_activedeadlineseconds() &&
      (spec.activedeadlineseconds() < 1 || spec.activedeadlineseconds() > 2147483647)) {
    errs.invalid(child(path, "activeDeadlineSeconds"), spec.activedeadlineseconds(),
                 "must be between 1 and 2147483647, inclusive");
  }
  if (spec.has_terminationgraceperiodseconds() && spec.terminationgraceperiodseconds() < 0) {
    errs.invalid(child(path, "terminationGracePeriodSeconds"), spec.terminationgraceperiodseconds(),
                 "must be greater than or equal to 0");
  }
  if (!spec.hostname().empty()) {
    for (const auto& m : checkDns1123Label(spec.hostname())) errs.invalid(child(path, "hostname"), spec.hostname(), m);
  }
  if (!spec.subdomain().empty()) {
    for (const auto& m : checkDns1123Label(spec.subdomain())) errs.invalid(child(path, "subdomain"), spec.subdomain(), m);
  }
  if (!spec.nodename().empty()) {
    for (const auto& m : checkDns1123Subdomain(spec.nodename())) errs.invalid(child(path, "nodeName"), spec.nodename(), m);
  }
  if (!spec.serviceaccountname().empty()) {
    for (const auto& m : checkDns1123Subdomain(spec.serviceaccountname())) {
      errs.invalid(child(path, "serviceAccountName"), spec.serviceaccountname(), m);
    }
  }
  for (int i = 0; i < spec.tolerations_size(); ++i) {
    const auto& t = spec.tolerations(i);
    std::string tp = index(child(path, "tolerations"), static_cast<size_t>(i));
    if (!t.key().empty()) {
      for (const auto& m : checkQualifiedName(t.key())) errs.invalid(child(tp, "key"), t.key(), m);
    }
    if (t.operator_() == "Exists") {
      if (!t.value().empty()) errs.invalid(child(tp, "operator"), t.value(), "value must be empty when `operator` is 'Exists'");
    } else if (t.operator_() == "Equal") {
      if (t.key().empty()) errs.invalid(child(tp, "operator"), t.operator_(), "operator must be Exists when `key` is empty, which means \"match all values and all keys\"");
    } else {
      errs.notSupported(child(tp, "operator"), t.operator_(), {"Equal", "Exists"});
    }
    const std::string& e = t.effect();
    if (!e.empty() && e != "NoSchedule" && e != "PreferNoSchedule" && e != "NoExecute") {
      errs.notSupported(child(tp, "effect"), e, {"NoExecute", "NoSchedule", "PreferNoSchedule"});
    }
  }
}

void validatePod(const Pod& pod, FieldErrors& errs) {
  validateObjectMeta(pod.metadata(), true, NameRule::kDns1123Subdomain, errs);
  validatePodSpec(pod.spec(), "spec", errs);
}

void validatePodUpdate(const Pod& pod, const Pod& old, FieldErrors& errs) {
  validateObjectMetaUpdate(pod.metadata(), old.metadata(), errs);
  validatePod(pod, errs);
  // Pods are immutable except for images, activeDeadlineSeconds, added
  // tolerations and terminationGracePeriodSeconds.
  PodSpec a = pod.spec();
  PodSpec b = old.spec();
  for (auto* s : {&a, &b}) {
    for (auto& c : *s->mutable_containers()) c.clear_image();
    for (auto& c : *s->mutable_initcontainers()) c.clear_image();
    s->clear_activedeadlineseconds();
    s->clear_tolerations();
    s->clear_terminationgraceperiodseconds();
  }
  if (!google::protobuf::util::MessageDifferencer::Equals(a, b)) {
    errs.forbidden("spec",
                   "pod updates may not change fields other than `spec.containers[*].image`,"
                   "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                   "`spec.tolerations` (only additions to existing tolerations),"
                   "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                   "previously negative)");
  }
}

}  // namespace sluice::api
