// Object metadata, labels, annotations and label selectors
// (apimachinery/pkg/api/validation/objectmeta.go, metav1 validation).
#include <algorithm>
#include <map>

#include "control/api/validation.h"

namespace sluice::api {
namespace {

// Annotations may total at most 256 KiB (TotalAnnotationSizeLimitB).
constexpr size_t kMaxAnnotationBytes = 256 * 1024;

void checkName(const std::string& name, NameRule rule, const std::string& path, FieldErrors& errs) {
  Problems p;
  switch (rule) {
    case NameRule::kDns1123Subdomain: p = checkDns1123Subdomain(name); break;
    case NameRule::kDns1123Label: p = checkDns1123Label(name); break;
    case NameRule::kDns1035Label: p = checkDns1035Label(name); break;
    case NameRule::kPathSegment:
      if (name == "." || name == "..") p.push_back("may not be '" + name + "'");
      if (name.find('/') != std::string::npos) p.emplace_back("may not contain '/'");
      if (name.find('%') != std::string::npos) p.emplace_back("may not contain '%'");
      break;
  }
  for (const auto& m : p) errs.invalid(path, name, m);
}

}  // namespace

std::string goMapString(const google::protobuf::Map<std::string, std::string>& m) {
  if (m.empty()) return "map[string]string(nil)";
  std::map<std::string, std::string> sorted(m.begin(), m.end());
  std::string s = "map[string]string{";
  bool first = true;
  for (const auto& [k, v] : sorted) {
    if (!first) s += ", ";
    first = false;
    s += "\"" + k + "\":\"" + v + "\"";
  }
  return s + "}";
}

std::string goSelectorString(const LabelSelector& sel) {
  std::string s = "v1.LabelSelector{MatchLabels:" + goMapString(sel.matchlabels()) + ", MatchExpressions:";
  if (sel.matchexpressions().empty()) return s + "[]v1.LabelSelectorRequirement(nil)}";
  s += "[]v1.LabelSelectorRequirement{";
  for (int i = 0; i < sel.matchexpressions_size(); ++i) {
    const auto& e = sel.matchexpressions(i);
    if (i) s += ", ";
    s += "v1.LabelSelectorRequirement{Key:\"" + e.key() + "\", Operator:\"" + e.operator_() +
         "\", Values:[]string{";
    for (int j = 0; j < e.values_size(); ++j) s += (j ? ", \"" : "\"") + e.values(j) + "\"";
    s += "}}";
  }
  return s + "}}";
}

void validateLabels(const google::protobuf::Map<std::string, std::string>& labels,
                    const std::string& path, FieldErrors& errs) {
  std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  for (const auto& [k, v] : sorted) {
    for (const auto& m : checkQualifiedName(k)) errs.invalid(path, k, m);
    for (const auto& m : checkLabelValue(v)) errs.invalid(path, v, m);
  }
}

void validateObjectMeta(const ObjectMeta& meta, bool namespaced, NameRule rule, FieldErrors& errs) {
  if (!meta.generatename().empty()) {
    // The prefix must be valid once a suffix is added: check it without
    // its trailing '-' (ValidateNameFunc with prefix=true).
    std::string prefix = meta.generatename();
    if (!prefix.empty() && prefix.back() == '-') prefix.pop_back();
    if (!prefix.empty()) checkName(prefix, rule, "metadata.generateName", errs);
  }
  if (meta.name().empty()) {
    if (meta.generatename().empty()) errs.required("metadata.name", "name or generateName is required");
  } else {
    checkName(meta.name(), rule, "metadata.name", errs);
  }
  if (namespaced) {
    if (meta.namespace_().empty()) {
      errs.required("metadata.namespace");
    } else {
      for (const auto& m : checkDns1123Label(meta.namespace_())) errs.invalid("metadata.namespace", meta.namespace_(), m);
    }
  } else if (!meta.namespace_().empty()) {
    errs.forbidden("metadata.namespace", "not allowed on this type");
  }
  if (meta.generation() < 0) errs.invalid("metadata.generation", meta.generation(), "must be greater than or equal to 0");
  validateLabels(meta.labels(), "metadata.labels", errs);
  size_t total = 0;
  std::map<std::string, std::string> annotations(meta.annotations().begin(), meta.annotations().end());
  for (const auto& [k, v] : annotations) {
    for (const auto& m : checkQualifiedName(k)) errs.invalid("metadata.annotations", k, m);
    total += k.size() + v.size();
  }
  if (total > kMaxAnnotationBytes) {
    errs.add({FieldErrorType::kTooLong, "metadata.annotations", {},
              "may not be more than " + std::to_string(kMaxAnnotationBytes) + " bytes"});
  }
  for (int i = 0; i < meta.ownerreferences_size(); ++i) {
    const auto& o = meta.ownerreferences(i);
    std::string p = index("metadata.ownerReferences", static_cast<size_t>(i));
    if (o.apiversion().empty()) errs.invalid(child(p, "apiVersion"), o.apiversion(), "version must not be empty");
    if (o.kind().empty()) errs.invalid(child(p, "kind"), o.kind(), "kind must not be empty");
    if (o.name().empty()) errs.invalid(child(p, "name"), o.name(), "name must not be empty");
    if (o.uid().empty()) errs.invalid(child(p, "uid"), o.uid(), "uid must not be empty");
  }
  int controllers = 0;
  for (const auto& o : meta.ownerreferences()) controllers += o.controller() ? 1 : 0;
  if (controllers > 1) {
    errs.invalid("metadata.ownerReferences", BadValue::raw("[]"), "Only one reference can have Controller set to true");
  }
  for (int i = 0; i < meta.finalizers_size(); ++i) {
    for (const auto& m : checkQualifiedName(meta.finalizers(i))) {
      errs.invalid(index("metadata.finalizers", static_cast<size_t>(i)), meta.finalizers(i), m);
    }
  }
}

void validateObjectMetaUpdate(const ObjectMeta& meta, const ObjectMeta& old, FieldErrors& errs) {
  if (meta.name() != old.name()) errs.invalid("metadata.name", meta.name(), "field is immutable");
  if (meta.namespace_() != old.namespace_()) {
    errs.invalid("metadata.namespace", meta.namespace_(), "field is immutable");
  }
  if (meta.uid() != old.uid()) errs.invalid("metadata.uid", meta.uid(), "field is immutable");
  if (meta.creationtimestamp() != old.creationtimestamp()) {
    errs.invalid("metadata.creationTimestamp", meta.creationtimestamp(), "field is immutable");
  }
}

void validateLabelSelector(const LabelSelector& sel, const std::string& path, FieldErrors& errs) {
  for (int i = 0; i < sel.matchexpressions_size(); ++i) {
    const auto& e = sel.matchexpressions(i);
    std::string p = index(child(path, "matchExpressions"), static_cast<size_t>(i));
    const std::string& op = e.operator_();
    if (op == "In" || op == "NotIn") {
      if (e.values().empty()) errs.required(child(p, "values"), "must be specified when `operator` is 'In' or 'NotIn'");
    } else if (op == "Exists" || op == "DoesNotExist") {
      if (!e.values().empty()) errs.forbidden(child(p, "values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
    } else {
      errs.invalid(child(p, "operator"), op, "not a valid selector operator");
    }
    for (const auto& m : checkQualifiedName(e.key())) errs.invalid(child(p, "key"), e.key(), m);
  }
  validateLabels(sel.matchlabels(), child(path, "matchLabels"), errs);
}

}  // namespace sluice::api
