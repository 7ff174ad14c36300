#include "control/api/cluster_kinds.h"
#include "control/util/rfc3339.h"

#include "control/api/object_meta.h"
#include "control/api/validation.h"

namespace sluice::api {
namespace {

const MetricSpec* cpuUtilizationMetric(const HorizontalPodAutoscalerSpec& spec) {
  for (const auto& m : spec.metrics()) {
    if (m.type() == "Resource" && m.resource().name() == "cpu" && m.resource().target().type() == "Utilization") {
      return &m;
    }
  }
  return nullptr;
}

void validateMetricTarget(const MetricTarget& t, const std::string& path, FieldErrors& errs) {
  const std::string& type = t.type();
  if (type != "Utilization" && type != "Value" && type != "AverageValue") {
    errs.notSupported(child(path, "type"), type, {"AverageValue", "Utilization", "Value"});
    return;
  }
  if (type == "Utilization") {
    if (!t.has_averageutilization()) {
      errs.required(child(path, "averageUtilization"), "must set either a target raw value or a target utilization");
    } else if (t.averageutilization() <= 0) {
      errs.invalid(child(path, "averageUtilization"), t.averageutilization(), "must be greater than 0");
    }
  }
  if (type == "Value" && t.value().value().empty()) errs.required(child(path, "value"), "must set target value");
  if (type == "AverageValue" && t.averagevalue().value().empty()) {
    errs.required(child(path, "averageValue"), "must set target average value");
  }
}

}  // namespace

void validateLease(const Lease& lease, FieldErrors& errs) {
  validateObjectMeta(lease.metadata(), true, NameRule::kDns1123Subdomain, errs);
  const auto& s = lease.spec();
  if (s.has_leasedurationseconds() && s.leasedurationseconds() <= 0) {
    errs.invalid("spec.leaseDurationSeconds", s.leasedurationseconds(), "must be greater than 0");
  }
  if (s.has_leasetransitions() && s.leasetransitions() < 0) {
    errs.invalid("spec.leaseTransitions", s.leasetransitions(), "must be greater than or equal to 0");
  }
  for (const auto* t : {&s.acquiretime(), &s.renewtime()}) {
    if (!t->empty() && !util::parseRfc3339(*t)) {
      errs.invalid(t == &s.acquiretime() ? "spec.acquireTime" : "spec.renewTime", *t, "must be an RFC 3339 time");
    }
  }
}

void validatePodMetrics(const PodMetrics& m, FieldErrors& errs) {
  validateObjectMeta(m.metadata(), true, NameRule::kDns1123Subdomain, errs);
  for (int i = 0; i < m.containers_size(); ++i) {
    if (m.containers(i).name().empty()) errs.required(child(index("containers", static_cast<size_t>(i)), "name"));
  }
}

void validateNodeMetrics(const NodeMetrics& m, FieldErrors& errs) {
  validateObjectMeta(m.metadata(), false, NameRule::kDns1123Subdomain, errs);
}

void defaultHorizontalPodAutoscaler(HorizontalPodAutoscaler& hpa) {
  auto* spec = hpa.mutable_spec();
  if (!spec->has_minreplicas()) spec->set_minreplicas(1);
  if (spec->metrics().empty() && !spec->has_targetcpuutilizationpercentage()) {
    auto* m = spec->add_metrics();
    m->set_type("Resource");
    m->mutable_resource()->set_name("cpu");
    m->mutable_resource()->mutable_target()->set_type("Utilization");
    m->mutable_resource()->mutable_target()->set_averageutilization(80);
  }
}

void defaultHorizontalPodAutoscalerV1(HorizontalPodAutoscaler& hpa) {
  auto* spec = hpa.mutable_spec();
  if (spec->has_targetcpuutilizationpercentage()) {
    int32_t pct = spec->targetcpuutilizationpercentage();
    spec->clear_targetcpuutilizationpercentage();
    const MetricSpec* existing = cpuUtilizationMetric(*spec);
    MetricSpec* m = existing != nullptr ? const_cast<MetricSpec*>(existing) : spec->add_metrics();
    m->set_type("Resource");
    m->mutable_resource()->set_name("cpu");
    m->mutable_resource()->mutable_target()->set_type("Utilization");
    m->mutable_resource()->mutable_target()->set_averageutilization(pct);
  }
  hpa.mutable_status()->clear_currentcpuutilizationpercentage();
  defaultHorizontalPodAutoscaler(hpa);
}

void prepareHorizontalPodAutoscalerV1Update(HorizontalPodAutoscaler& hpa, const HorizontalPodAutoscaler& old) {
  auto* spec = hpa.mutable_spec();
  if (!spec->has_behavior() && old.spec().has_behavior()) *spec->mutable_behavior() = old.spec().behavior();
  for (const auto& m : old.spec().metrics()) {
    bool cpu = m.type() == "Resource" && m.resource().name() == "cpu";
    if (!cpu) *spec->add_metrics() = m;
  }
}

void toHorizontalPodAutoscalerV1(google::protobuf::Message& obj) {
  auto& hpa = static_cast<HorizontalPodAutoscaler&>(obj);
  auto* spec = hpa.mutable_spec();
  if (const MetricSpec* cpu = cpuUtilizationMetric(*spec)) {
    spec->set_targetcpuutilizationpercentage(cpu->resource().target().averageutilization());
  }
  spec->clear_metrics();
  spec->clear_behavior();
  auto* st = hpa.mutable_status();
  for (const auto& m : st->currentmetrics()) {
    if (m.type() == "Resource" && m.resource().name() == "cpu" && m.resource().current().has_averageutilization()) {
      st->set_currentcpuutilizationpercentage(m.resource().current().averageutilization());
    }
  }
  st->clear_currentmetrics();
  st->clear_conditions();
  setTypeMeta(hpa, "autoscaling/v1", "HorizontalPodAutoscaler");
}

void validateHorizontalPodAutoscaler(const HorizontalPodAutoscaler& hpa, FieldErrors& errs) {
  validateObjectMeta(hpa.metadata(), true, NameRule::kDns1123Subdomain, errs);
  const auto& spec = hpa.spec();
  if (spec.scaletargetref().kind().empty()) errs.required("spec.scaleTargetRef.kind");
  if (spec.scaletargetref().name().empty()) errs.required("spec.scaleTargetRef.name");
  if (spec.has_minreplicas() && spec.minreplicas() < 1) {
    errs.invalid("spec.minReplicas", spec.minreplicas(), "must be greater than or equal to 1");
  }
  if (spec.maxreplicas() < 1) errs.invalid("spec.maxReplicas", spec.maxreplicas(), "must be greater than 0");
  if (spec.has_minreplicas() && spec.maxreplicas() < spec.minreplicas()) {
    errs.invalid("spec.maxReplicas", spec.maxreplicas(), "must be greater than or equal to `minReplicas`");
  }
  if (spec.has_targetcpuutilizationpercentage()) {
    errs.forbidden("spec.targetCPUUtilizationPercentage", "is an autoscaling/v1 field");
  }
  for (int i = 0; i < spec.metrics_size(); ++i) {
    const auto& m = spec.metrics(i);
    std::string p = index("spec.metrics", static_cast<size_t>(i));
    const std::string& t = m.type();
    if (t == "Resource") {
      if (m.resource().name().empty()) errs.required(child(p, "resource.name"));
      validateMetricTarget(m.resource().target(), child(p, "resource.target"), errs);
    } else if (t == "ContainerResource") {
      if (m.containerresource().container().empty()) errs.required(child(p, "containerResource.container"));
      validateMetricTarget(m.containerresource().target(), child(p, "containerResource.target"), errs);
    } else if (t == "Pods" || t == "Object" || t == "External") {
      // Accepted (kubectl and manifests carry them); the controller reports
      // them as unsupported in its conditions.
    } else {
      errs.notSupported(child(p, "type"), t, {"ContainerResource", "External", "Object", "Pods", "Resource"});
    }
  }
  for (const auto* r : {&spec.behavior().scaledown(), &spec.behavior().scaleup()}) {
    std::string p = r == &spec.behavior().scaledown() ? "spec.behavior.scaleDown" : "spec.behavior.scaleUp";
    if (r->has_stabilizationwindowseconds() &&
        (r->stabilizationwindowseconds() < 0 || r->stabilizationwindowseconds() > 3600)) {
      errs.invalid(child(p, "stabilizationWindowSeconds"), r->stabilizationwindowseconds(),
                   "must be less than or equal to 3600");
    }
  }
}

std::vector<Json> horizontalPodAutoscalerRow(const google::protobuf::Message& m, Clock::time_point now) {
  const auto& hpa = static_cast<const HorizontalPodAutoscaler&>(m);
  const auto& spec = hpa.spec();
  std::string reference = spec.scaletargetref().kind() + "/" + spec.scaletargetref().name();
  std::vector<std::string> targets;
  for (int i = 0; i < spec.metrics_size(); ++i) {
    const auto& metric = spec.metrics(i);
    if (metric.type() != "Resource") {
      targets.push_back("<unknown>/<unknown>");
      continue;
    }
    std::string current = "<unknown>";
    std::string target = "<auto>";
    const auto& st = hpa.status();
    if (i < st.currentmetrics_size() && st.currentmetrics(i).resource().current().has_averageutilization()) {
      current = std::to_string(st.currentmetrics(i).resource().current().averageutilization()) + "%";
    }
    const auto& t = metric.resource().target();
    if (t.has_averageutilization()) target = std::to_string(t.averageutilization()) + "%";
    if (t.type() == "AverageValue") {
      target = t.averagevalue().value();
      if (i < st.currentmetrics_size() && !st.currentmetrics(i).resource().current().averagevalue().value().empty()) {
        current = st.currentmetrics(i).resource().current().averagevalue().value();
      }
    }
    targets.push_back(metric.resource().name() + ": " + current + "/" + target);
  }
  std::string cell = targets.empty() ? "<none>" : "";
  for (size_t i = 0; i < targets.size() && i < 2; ++i) cell += (i ? ", " : "") + targets[i];
  if (targets.size() > 2) cell += " + " + std::to_string(targets.size() - 2) + " more...";
  Json minPods = spec.has_minreplicas() ? Json(spec.minreplicas()) : Json("<unset>");
  return {hpa.metadata().name(), reference, cell, minPods, spec.maxreplicas(), hpa.status().currentreplicas(),
          age(hpa.metadata().creationtimestamp(), now)};
}

std::vector<Json> leaseRow(const google::protobuf::Message& m, Clock::time_point now) {
  const auto& l = static_cast<const Lease&>(m);
  return {l.metadata().name(), l.spec().has_holderidentity() ? l.spec().holderidentity() : "",
          age(l.metadata().creationtimestamp(), now)};
}

}  // namespace sluice::api
