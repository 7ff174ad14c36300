#include "control/api/defaults.h"

#include "control/api/quantity.h"

namespace sluice::api {
namespace {

constexpr int32_t kDefaultSessionAffinitySeconds = 10800;  // 3 h, ClientIP's Kubernetes default

void defaultProbe(Probe* p) {
  if (p->timeoutseconds() == 0) p->set_timeoutseconds(1);
  if (p->periodseconds() == 0) p->set_periodseconds(10);
  if (p->successthreshold() == 0) p->set_successthreshold(1);
  if (p->failurethreshold() == 0) p->set_failurethreshold(3);
  if (p->has_httpget()) {
    if (p->httpget().path().empty()) p->mutable_httpget()->set_path("/");
    if (p->httpget().scheme().empty()) p->mutable_httpget()->set_scheme("HTTP");
  }
}

void defaultLifecycleHandler(LifecycleHandler* h) {
  if (h->has_httpget()) {
    if (h->httpget().path().empty()) h->mutable_httpget()->set_path("/");
    if (h->httpget().scheme().empty()) h->mutable_httpget()->set_scheme("HTTP");
  }
}

// `latest` or untagged images are re-pulled; pinned tags are not.
std::string defaultPullPolicy(const std::string& image) {
  if (image.find('@') != std::string::npos) return "IfNotPresent";
  size_t slash = image.rfind('/');
  size_t colon = image.rfind(':');
  bool tagged = colon != std::string::npos && (slash == std::string::npos || colon > slash);
  if (!tagged || image.substr(colon + 1) == "latest") return "Always";
  return "IfNotPresent";
}

void defaultContainer(Container* c) {
  if (c->terminationmessagepath().empty()) c->set_terminationmessagepath("/dev/termination-log");
  if (c->terminationmessagepolicy().empty()) c->set_terminationmessagepolicy("File");
  if (c->imagepullpolicy().empty()) c->set_imagepullpolicy(defaultPullPolicy(c->image()));
  c->mutable_resources();  // always present, as `resources: {}`
  for (auto& p : *c->mutable_ports()) {
    if (p.protocol().empty()) p.set_protocol("TCP");
  }
  for (auto& e : *c->mutable_env()) {
    if (e.has_valuefrom() && e.valuefrom().has_fieldref() && e.valuefrom().fieldref().apiversion().empty()) {
      e.mutable_valuefrom()->mutable_fieldref()->set_apiversion("v1");
    }
  }
  // Limits without requests: requests default to the limits.
  if (c->resources().limits_size() > 0) {
    auto* req = c->mutable_resources()->mutable_requests();
    for (const auto& [k, v] : c->resources().limits()) {
      if (req->find(k) == req->end()) (*req)[k] = v;
    }
  }
  if (c->has_livenessprobe()) defaultProbe(c->mutable_livenessprobe());
  if (c->has_readinessprobe()) defaultProbe(c->mutable_readinessprobe());
  if (c->has_startupprobe()) defaultProbe(c->mutable_startupprobe());
  if (c->has_lifecycle()) {
    if (c->lifecycle().has_poststart()) defaultLifecycleHandler(c->mutable_lifecycle()->mutable_poststart());
    if (c->lifecycle().has_prestop()) defaultLifecycleHandler(c->mutable_lifecycle()->mutable_prestop());
  }
}

void defaultPodTemplate(PodTemplateSpec* t) { defaultPodSpec(*t->mutable_spec()); }

}  // namespace

void defaultPodSpec(PodSpec& spec) {
  if (spec.restartpolicy().empty()) spec.set_restartpolicy("Always");
  if (spec.dnspolicy().empty()) spec.set_dnspolicy("ClusterFirst");
  if (!spec.has_terminationgraceperiodseconds()) spec.set_terminationgraceperiodseconds(30);
  if (spec.schedulername().empty()) spec.set_schedulername("default-scheduler");
  if (!spec.has_enableservicelinks()) spec.set_enableservicelinks(true);
  spec.mutable_securitycontext();
  for (auto& c : *spec.mutable_initcontainers()) defaultContainer(&c);
  for (auto& c : *spec.mutable_containers()) defaultContainer(&c);
  for (auto& v : *spec.mutable_volumes()) {
    if (v.has_secret() && !v.secret().has_defaultmode()) v.mutable_secret()->set_defaultmode(0644);
    if (v.has_configmap() && !v.configmap().has_defaultmode()) v.mutable_configmap()->set_defaultmode(0644);
  }
  // A toleration with Exists needs no value; one without operator means Equal.
  for (auto& t : *spec.mutable_tolerations()) {
    if (t.operator_().empty()) t.set_operator_("Equal");
  }
}

std::string podQosClass(const PodSpec& spec) {
  bool anyRequest = false;
  bool guaranteed = true;
  auto check = [&](const Container& c) {
    const auto& lim = c.resources().limits();
    const auto& req = c.resources().requests();
    if (!lim.empty() || !req.empty()) anyRequest = true;
    for (const char* r : {"cpu", "memory"}) {
      auto l = lim.find(r);
      auto q = req.find(r);
      if (l == lim.end()) {
        guaranteed = false;
        continue;
      }
      if (q != req.end() && q->second.value() != l->second.value()) guaranteed = false;
    }
  };
  for (const auto& c : spec.initcontainers()) check(c);
  for (const auto& c : spec.containers()) check(c);
  if (!anyRequest) return "BestEffort";
  return guaranteed ? "Guaranteed" : "Burstable";
}

void defaultPod(Pod& pod) { defaultPodSpec(*pod.mutable_spec()); }

void defaultService(Service& svc) {
  ServiceSpec* s = svc.mutable_spec();
  if (s->type().empty()) s->set_type("ClusterIP");
  if (s->sessionaffinity().empty()) s->set_sessionaffinity("None");
  if (s->sessionaffinity() == "ClientIP") {
    auto* cfg = s->mutable_sessionaffinityconfig()->mutable_clientip();
    if (!cfg->has_timeoutseconds()) cfg->set_timeoutseconds(kDefaultSessionAffinitySeconds);
  }
  for (auto& p : *s->mutable_ports()) {
    if (p.protocol().empty()) p.set_protocol("TCP");
    if (!p.has_targetport() ||
        (p.targetport().value_case() == IntOrString::kIntVal && p.targetport().intval() == 0) ||
        p.targetport().value_case() == IntOrString::VALUE_NOT_SET) {
      p.mutable_targetport()->set_intval(p.port());
    }
  }
  const std::string& type = s->type();
  bool externallyAccessible = type == "NodePort" || type == "LoadBalancer" ||
                              (type == "ClusterIP" && !s->externalips().empty());
  if (externallyAccessible && s->externaltrafficpolicy().empty()) s->set_externaltrafficpolicy("Cluster");
  if (type != "ExternalName" && !s->has_internaltrafficpolicy()) {
    s->set_internaltrafficpolicy("Cluster");
  }
  if (type == "LoadBalancer" && !s->has_allocateloadbalancernodeports()) {
    s->set_allocateloadbalancernodeports(true);
  }
  svc.mutable_status()->mutable_loadbalancer();
}

void prepareServiceUpdate(Service& svc, const Service& old) {
  ServiceSpec& s = *svc.mutable_spec();
  const ServiceSpec& o = old.spec();
  // Values the server allocated survive an update that leaves them out (a
  // PUT of the user's manifest), as patchAllocatedValues does.
  if (s.type() != "ExternalName" && o.type() != "ExternalName" && s.clusterip().empty() && !o.clusterip().empty()) {
    s.set_clusterip(o.clusterip());
    if (s.clusterips().empty()) *s.mutable_clusterips() = o.clusterips();
    if (s.ipfamilies().empty()) *s.mutable_ipfamilies() = o.ipfamilies();
    if (!s.has_ipfamilypolicy() && o.has_ipfamilypolicy()) s.set_ipfamilypolicy(o.ipfamilypolicy());
  }
  bool external = s.type() == "NodePort" || s.type() == "LoadBalancer";
  if (external) {
    for (auto& p : *s.mutable_ports()) {
      if (p.nodeport() != 0) continue;
      for (const auto& op : o.ports()) {
        if (op.port() == p.port() && op.protocol() == p.protocol() && op.nodeport() != 0) p.set_nodeport(op.nodeport());
      }
    }
  }
  // Fields that only made sense for the old type are dropped when the client
  // did not change them (dropTypeDependentFields).
  if (s.type() == o.type()) return;
  if (s.type() == "ExternalName" && s.clusterip() == o.clusterip()) {
    s.clear_clusterip();
    s.clear_clusterips();
    s.clear_ipfamilies();
    s.clear_ipfamilypolicy();
  }
  if (!external) {
    for (auto& p : *s.mutable_ports()) {
      for (const auto& op : o.ports()) {
        if (p.nodeport() != 0 && op.nodeport() == p.nodeport()) p.set_nodeport(0);
      }
    }
  }
  if (s.type() != "LoadBalancer") {
    if (s.has_allocateloadbalancernodeports() && o.has_allocateloadbalancernodeports()) s.clear_allocateloadbalancernodeports();
    if (s.loadbalancerclass() == o.loadbalancerclass()) s.clear_loadbalancerclass();
  }
  bool externallyAccessible = external || (s.type() == "ClusterIP" && !s.externalips().empty());
  if (!externallyAccessible && s.externaltrafficpolicy() == o.externaltrafficpolicy()) s.clear_externaltrafficpolicy();
  if (s.type() == "ExternalName" && s.internaltrafficpolicy() == o.internaltrafficpolicy()) s.clear_internaltrafficpolicy();
}

void defaultReplicaSet(ReplicaSet& rs) {
  auto* spec = rs.mutable_spec();
  if (!spec->has_replicas()) spec->set_replicas(1);
  // An absent selector defaults to the template labels (extensions/v1beta1
  // behaviour that apps/v1 validation then rejects as required).
  defaultPodTemplate(spec->mutable_template_());
}

void defaultDeployment(Deployment& d) {
  auto* spec = d.mutable_spec();
  if (!spec->has_replicas()) spec->set_replicas(1);
  auto* strategy = spec->mutable_strategy();
  if (strategy->type().empty()) strategy->set_type("RollingUpdate");
  if (strategy->type() == "RollingUpdate") {
    auto* ru = strategy->mutable_rollingupdate();
    if (!ru->has_maxunavailable()) ru->mutable_maxunavailable()->set_strval("25%");
    if (!ru->has_maxsurge()) ru->mutable_maxsurge()->set_strval("25%");
  }
  if (!spec->has_revisionhistorylimit()) spec->set_revisionhistorylimit(10);
  if (!spec->has_progressdeadlineseconds()) spec->set_progressdeadlineseconds(600);
  defaultPodTemplate(spec->mutable_template_());
}

void defaultNamespace(Namespace& ns) {
  if (ns.status().phase().empty()) ns.mutable_status()->set_phase("Active");
  // Kubernetes labels every namespace with its own name (selectable by
  // NetworkPolicies and `kubectl get ns -l`).
  (*ns.mutable_metadata()->mutable_labels())["kubernetes.io/metadata.name"] = ns.metadata().name();
}

void defaultEndpoints(Endpoints& ep) {
  for (auto& s : *ep.mutable_subsets()) {
    for (auto& p : *s.mutable_ports()) {
      if (p.protocol().empty()) p.set_protocol("TCP");
    }
  }
}

void defaultEndpointSlice(EndpointSlice& slice) {
  for (auto& p : *slice.mutable_ports()) {
    if (!p.has_protocol()) p.set_protocol("TCP");
  }
}

}  // namespace sluice::api
