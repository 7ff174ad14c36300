// ReplicaSets and Deployments (pkg/apis/apps/validation).
#include <google/protobuf/util/message_differencer.h>

#include <limits>

#include "control/api/selector.h"
#include "control/api/validation.h"

namespace sluice::api {
namespace {

void checkSelectorAndTemplate(const LabelSelector* sel, const PodTemplateSpec& tmpl, FieldErrors& errs) {
  if (sel == nullptr) {
    errs.required("spec.selector");
  } else {
    if (sel->matchlabels().empty() && sel->matchexpressions().empty()) {
      errs.invalid("spec.selector", BadValue::raw(goSelectorString(*sel)), "empty selector is invalid for deployment");
    }
    validateLabelSelector(*sel, "spec.selector", errs);
    auto parsed = Selector::fromProto(*sel);
    if (parsed && !parsed->empty() && !parsed->matches(tmpl.metadata().labels())) {
      errs.invalid("spec.template.metadata.labels", BadValue::raw(goMapString(tmpl.metadata().labels())),
                   "`selector` does not match template `labels`");
    }
  }
  validateLabels(tmpl.metadata().labels(), "spec.template.metadata.labels", errs);
  std::map<std::string, std::string> annotations(tmpl.metadata().annotations().begin(), tmpl.metadata().annotations().end());
  for (const auto& [k, v] : annotations) {
    for (const auto& m : checkQualifiedName(k)) errs.invalid("spec.template.metadata.annotations", k, m);
  }
  validatePodSpec(tmpl.spec(), "spec.template.spec", errs);
  if (tmpl.spec().restartpolicy() != "Always") {
    errs.notSupported("spec.template.spec.restartPolicy", tmpl.spec().restartpolicy(), {"Always"});
  }
  if (tmpl.spec().has_activedeadlineseconds()) {
    errs.forbidden("spec.template.spec.activeDeadlineSeconds", "activeDeadlineSeconds in ReplicaSet is not Supported");
  }
}

void checkNonNegative(int64_t v, const std::string& path, FieldErrors& errs) {
  if (v < 0) errs.invalid(path, v, "must be greater than or equal to 0");
}

// Returns the percentage (0-100+) or absolute value, -1 if invalid.
int64_t checkIntOrPercent(const IntOrString& v, const std::string& path, FieldErrors& errs) {
  if (v.value_case() == IntOrString::kStrVal) {
    const std::string& s = v.strval();
    bool ok = s.size() >= 2 && s.back() == '%';
    for (size_t i = 0; ok && i + 1 < s.size(); ++i) ok = std::isdigit(static_cast<unsigned char>(s[i])) != 0;
    if (!ok) {
      errs.invalid(path, s, "a valid percent string must be a numeric string followed by an ending '%' "
                            "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')");
      return -1;
    }
    // Saturating, as Go's strconv.Atoi on overflow: "99999999999999999999%"
    // is then more than 100%, never an out_of_range exception.
    int64_t pct = 0;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      int digit = s[i] - '0';
      if (pct > (std::numeric_limits<int64_t>::max() - digit) / 10) return std::numeric_limits<int64_t>::max();
      pct = pct * 10 + digit;
    }
    return pct;
  }
  checkNonNegative(v.intval(), path, errs);
  return v.intval();
}

}  // namespace

void validateReplicaSet(const ReplicaSet& rs, FieldErrors& errs) {
  validateObjectMeta(rs.metadata(), true, NameRule::kDns1123Subdomain, errs);
  const auto& spec = rs.spec();
  checkNonNegative(spec.replicas(), "spec.replicas", errs);
  checkNonNegative(spec.minreadyseconds(), "spec.minReadySeconds", errs);
  checkSelectorAndTemplate(spec.has_selector() ? &spec.selector() : nullptr, spec.template_(), errs);
}

void validateReplicaSetUpdate(const ReplicaSet& rs, const ReplicaSet& old, FieldErrors& errs) {
  validateObjectMetaUpdate(rs.metadata(), old.metadata(), errs);
  validateReplicaSet(rs, errs);
  if (!google::protobuf::util::MessageDifferencer::Equals(rs.spec().selector(), old.spec().selector())) {
    errs.invalid("spec.selector", BadValue::raw(goSelectorString(rs.spec().selector())), "field is immutable");
  }
}

void validateDeployment(const Deployment& d, FieldErrors& errs) {
  validateObjectMeta(d.metadata(), true, NameRule::kDns1123Subdomain, errs);
  const auto& spec = d.spec();
  checkNonNegative(spec.replicas(), "spec.replicas", errs);
  checkSelectorAndTemplate(spec.has_selector() ? &spec.selector() : nullptr, spec.template_(), errs);
  const auto& st = spec.strategy();
  if (st.type() == "Recreate") {
    if (st.has_rollingupdate()) {
      errs.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'");
    }
  } else if (st.type() == "RollingUpdate") {
    const auto& ru = st.rollingupdate();
    int64_t unavailable = checkIntOrPercent(ru.maxunavailable(), "spec.strategy.rollingUpdate.maxUnavailable", errs);
    int64_t surge = checkIntOrPercent(ru.maxsurge(), "spec.strategy.rollingUpdate.maxSurge", errs);
    if (ru.maxunavailable().value_case() == IntOrString::kStrVal && unavailable > 100) {
      errs.invalid("spec.strategy.rollingUpdate.maxUnavailable", ru.maxunavailable().strval(), "must not be greater than 100%");
    }
    if (unavailable == 0 && surge == 0) {
      BadValue v = ru.maxunavailable().value_case() == IntOrString::kStrVal ? BadValue(ru.maxunavailable().strval())
                                                                           : BadValue(ru.maxunavailable().intval());
      errs.invalid("spec.strategy.rollingUpdate.maxUnavailable", v, "may not be 0 when `maxSurge` is 0");
    }
  } else {
    errs.notSupported("spec.strategy.type", st.type(), {"Recreate", "RollingUpdate"});
  }
  checkNonNegative(spec.minreadyseconds(), "spec.minReadySeconds", errs);
  if (spec.has_revisionhistorylimit()) checkNonNegative(spec.revisionhistorylimit(), "spec.revisionHistoryLimit", errs);
  if (spec.has_progressdeadlineseconds()) {
    checkNonNegative(spec.progressdeadlineseconds(), "spec.progressDeadlineSeconds", errs);
    if (spec.progressdeadlineseconds() <= spec.minreadyseconds()) {
      errs.invalid("spec.progressDeadlineSeconds", spec.progressdeadlineseconds(), "must be greater than minReadySeconds");
    }
  }
}

void validateDeploymentUpdate(const Deployment& d, const Deployment& old, FieldErrors& errs) {
  validateObjectMetaUpdate(d.metadata(), old.metadata(), errs);
  validateDeployment(d, errs);
  if (!google::protobuf::util::MessageDifferencer::Equals(d.spec().selector(), old.spec().selector())) {
    errs.invalid("spec.selector", BadValue::raw(goSelectorString(d.spec().selector())), "field is immutable");
  }
}

}  // namespace sluice::api
