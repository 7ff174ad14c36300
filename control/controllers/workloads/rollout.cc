#include "control/controllers/workloads/rollout.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

namespace sluice::controllers::workloads {
namespace {

constexpr size_t kRevisionHistoryChars = 2000;  // maxRevHistoryLengthInChars

// Annotations a Deployment never copies to its ReplicaSets.
bool skipCopyAnnotation(const std::string& k) {
  return k == "kubectl.kubernetes.io/last-applied-configuration" || k == kRevisionAnnotation ||
         k == kRevisionHistoryAnnotation || k == kDesiredReplicasAnnotation || k == kMaxReplicasAnnotation ||
         k == "deprecated.deployment.rollback.to";
}

const Json& rollingUpdate(const Json& d) {
  static const Json kEmpty = Json::object();
  if (!d.contains("spec") || !d["spec"].contains("strategy")) return kEmpty;
  const Json& s = d["spec"]["strategy"];
  auto it = s.find("rollingUpdate");
  return it != s.end() && it->is_object() ? *it : kEmpty;
}

std::pair<int32_t, int32_t> fenceposts(const Json& d) {
  int32_t desired = specReplicas(d);
  const Json& ru = rollingUpdate(d);
  int32_t surge = scaledValue(ru.value("maxSurge", Json("25%")), desired, true);
  int32_t unavailable = scaledValue(ru.value("maxUnavailable", Json("25%")), desired, false);
  if (surge == 0 && unavailable == 0) unavailable = 1;
  return {surge, unavailable};
}

int64_t parseInt(const std::string& s, bool* ok) {
  if (s.empty()) {
    *ok = false;
    return 0;
  }
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  *ok = end != nullptr && *end == '\0';
  return v;
}

Json& annotations(Json& obj) {
  Json& a = obj["metadata"]["annotations"];
  if (!a.is_object()) a = Json::object();
  return a;
}

}  // namespace

int32_t scaledValue(const Json& v, int32_t total, bool roundUp) {
  if (v.is_number_integer()) return v.get<int32_t>();
  if (!v.is_string()) return 0;
  std::string s = v.get<std::string>();
  if (s.empty() || s.back() != '%') return 0;
  bool ok = false;
  int64_t pct = parseInt(s.substr(0, s.size() - 1), &ok);
  if (!ok) return 0;
  double x = static_cast<double>(pct) * total / 100.0;
  // A percentage validation allows (maxSurge has no upper bound) may not
  // overflow the int32 conversion.
  x = std::min(x, static_cast<double>(std::numeric_limits<int32_t>::max()));
  return static_cast<int32_t>(roundUp ? std::ceil(x) : std::floor(x));
}

bool isRollingUpdate(const Json& d) {
  if (!d.contains("spec") || !d["spec"].contains("strategy")) return true;
  return d["spec"]["strategy"].value("type", "RollingUpdate") == "RollingUpdate";
}

int32_t maxSurge(const Json& d) {
  if (!isRollingUpdate(d)) return 0;
  return fenceposts(d).first;
}

int32_t maxUnavailable(const Json& d) {
  int32_t desired = specReplicas(d);
  if (!isRollingUpdate(d) || desired == 0) return 0;
  return std::min(fenceposts(d).second, desired);
}

int32_t sumSpecReplicas(const std::vector<const Json*>& rss) {
  int32_t n = 0;
  for (const Json* rs : rss) {
    if (rs != nullptr) n += specReplicas(*rs);
  }
  return n;
}

int32_t sumStatus(const std::vector<const Json*>& rss, const char* field) {
  int32_t n = 0;
  for (const Json* rs : rss) {
    if (rs != nullptr) n += statusInt(*rs, field);
  }
  return n;
}

std::vector<const Json*> activeReplicaSets(const std::vector<const Json*>& rss) {
  std::vector<const Json*> out;
  for (const Json* rs : rss) {
    if (rs != nullptr && specReplicas(*rs) > 0) out.push_back(rs);
  }
  return out;
}

int32_t newRSNewReplicas(const Json& d, const std::vector<const Json*>& all, const Json& newRS) {
  int32_t desired = specReplicas(d);
  if (!isRollingUpdate(d)) return desired;
  int32_t surge = scaledValue(rollingUpdate(d).value("maxSurge", Json("25%")), desired, true);
  int32_t current = sumSpecReplicas(all);
  int32_t maxTotal = desired + surge;
  if (current >= maxTotal) return specReplicas(newRS);
  int32_t up = std::min(maxTotal - current, desired - specReplicas(newRS));
  return specReplicas(newRS) + up;
}

int32_t proportion(const Json& rs, const Json& d, int32_t toAdd, int32_t added) {
  int32_t size = specReplicas(rs);
  if (size == 0 || toAdd == 0 || toAdd == added) return 0;
  int32_t fraction = 0;
  if (specReplicas(d) == 0) {
    fraction = -size;
  } else {
    int32_t deploymentReplicas = specReplicas(d) + maxSurge(d);
    bool ok = false;
    auto annotated = static_cast<int32_t>(parseInt(annotation(rs, kMaxReplicasAnnotation), &ok));
    if (!ok) annotated = statusInt(d, "replicas");
    if (annotated == 0) return 0;
    double x = static_cast<double>(size) * deploymentReplicas / annotated;
    fraction = static_cast<int32_t>(std::lround(x)) - size;
  }
  int32_t allowed = toAdd - added;
  return toAdd > 0 ? std::min(fraction, allowed) : std::max(fraction, allowed);
}

int64_t revisionOf(const Json& rs) {
  bool ok = false;
  int64_t v = parseInt(annotation(rs, kRevisionAnnotation), &ok);
  return ok ? v : 0;
}

int64_t maxRevision(const std::vector<const Json*>& rss) {
  int64_t m = 0;
  for (const Json* rs : rss) {
    if (rs != nullptr) m = std::max(m, revisionOf(*rs));
  }
  return m;
}

bool setReplicasAnnotations(Json& rs, int32_t desired, int32_t max) {
  Json& a = annotations(rs);
  bool changed = false;
  for (const auto& [k, v] : {std::pair<const char*, int32_t>{kDesiredReplicasAnnotation, desired},
                             std::pair<const char*, int32_t>{kMaxReplicasAnnotation, max}}) {
    std::string s = std::to_string(v);
    if (a.value(k, "") != s) {
      a[k] = s;
      changed = true;
    }
  }
  return changed;
}

bool setNewReplicaSetAnnotations(const Json& d, Json& rs, int64_t newRevision, bool exists) {
  Json& a = annotations(rs);
  bool changed = false;
  const Json& m = metaOf(d);
  if (auto da = m.find("annotations"); da != m.end() && da->is_object()) {
    for (auto it = da->begin(); it != da->end(); ++it) {
      if (skipCopyAnnotation(it.key())) continue;
      if (a.contains(it.key()) && a[it.key()] == it.value()) continue;
      a[it.key()] = it.value();
      changed = true;
    }
  }
  std::string oldRevision = a.value(kRevisionAnnotation, "");
  bool ok = false;
  int64_t oldInt = parseInt(oldRevision, &ok);
  if (!ok) {
    if (!oldRevision.empty()) return changed;
    oldInt = 0;
  }
  if (oldInt < newRevision) {
    a[kRevisionAnnotation] = std::to_string(newRevision);
    changed = true;
    if (!oldRevision.empty()) {
      // A rollback to this ReplicaSet: remember the revisions it had.
      std::string history = a.value(kRevisionHistoryAnnotation, "");
      std::vector<std::string> parts;
      std::stringstream ss(history);
      for (std::string p; std::getline(ss, p, ',');) parts.push_back(p);
      size_t total = history.size() + oldRevision.size() + 1;
      size_t start = 0;
      while (total > kRevisionHistoryChars && start < parts.size()) total -= parts[start++].size() + 1;
      if (history.empty()) {
        a[kRevisionHistoryAnnotation] = oldRevision;
      } else if (total <= kRevisionHistoryChars) {
        std::string joined;
        for (size_t i = start; i < parts.size(); ++i) joined += parts[i] + ",";
        a[kRevisionHistoryAnnotation] = joined + oldRevision;
      }
    }
  }
  if (!exists && setReplicasAnnotations(rs, specReplicas(d), specReplicas(d) + maxSurge(d))) changed = true;
  return changed;
}

bool hasProgressDeadline(const Json& d) {
  if (!d.contains("spec")) return false;
  auto it = d["spec"].find("progressDeadlineSeconds");
  return it != d["spec"].end() && it->is_number_integer() && it->get<int64_t>() != INT32_MAX;
}

const Json* condition(const Json& status, const std::string& type) {
  if (!status.is_object()) return nullptr;
  auto conds = status.find("conditions");
  if (conds == status.end() || !conds->is_array()) return nullptr;
  for (const auto& c : *conds) {
    if (c.value("type", "") == type) return &c;
  }
  return nullptr;
}

Json newCondition(const std::string& type, const std::string& status, const std::string& reason,
                  const std::string& message, TimePoint now) {
  std::string t = formatRfc3339(now);
  return Json{{"type", type},          {"status", status},        {"lastUpdateTime", t},
              {"lastTransitionTime", t}, {"reason", reason}, {"message", message}};
}

void removeCondition(Json& status, const std::string& type) {
  if (!status.contains("conditions") || !status["conditions"].is_array()) return;
  Json out = Json::array();
  for (const auto& c : status["conditions"]) {
    if (c.value("type", "") != type) out.push_back(c);
  }
  status["conditions"] = out;
}

void setCondition(Json& status, Json cond) {
  const Json* cur = condition(status, cond.value("type", ""));
  if (cur != nullptr && cur->value("status", "") == cond.value("status", "") &&
      cur->value("reason", "") == cond.value("reason", "")) {
    return;
  }
  if (cur != nullptr && cur->value("status", "") == cond.value("status", "")) {
    cond["lastTransitionTime"] = cur->value("lastTransitionTime", cond.value("lastTransitionTime", ""));
  }
  removeCondition(status, cond.value("type", ""));
  status["conditions"].push_back(std::move(cond));
}

Json calculateStatus(const Json& d, const std::vector<const Json*>& all, const Json* newRS, TimePoint now) {
  int32_t available = sumStatus(all, "availableReplicas");
  int32_t total = sumSpecReplicas(all);
  Json status = Json::object();
  status["observedGeneration"] = generationOf(d);
  status["replicas"] = sumStatus(all, "replicas");
  status["updatedReplicas"] = newRS != nullptr ? statusInt(*newRS, "replicas") : 0;
  status["readyReplicas"] = sumStatus(all, "readyReplicas");
  status["availableReplicas"] = available;
  status["unavailableReplicas"] = std::max(0, total - available);
  const Json& old = d.value("status", Json::object());
  if (old.contains("collisionCount")) status["collisionCount"] = old["collisionCount"];
  status["conditions"] = old.value("conditions", Json::array());
  if (available >= specReplicas(d) - maxUnavailable(d)) {
    setCondition(status, newCondition(kAvailable, "True", kMinAvailableReason, "Deployment has minimum availability.", now));
  } else {
    setCondition(status, newCondition(kAvailable, "False", kMinUnavailableReason,
                                      "Deployment does not have minimum availability.", now));
  }
  return status;
}

bool deploymentComplete(const Json& d, const Json& status) {
  int32_t desired = specReplicas(d);
  return status.value("updatedReplicas", 0) == desired && status.value("replicas", 0) == desired &&
         status.value("availableReplicas", 0) == desired &&
         status.value("observedGeneration", int64_t{0}) >= generationOf(d);
}

bool deploymentProgressing(const Json& d, const Json& s) {
  const Json& old = d.value("status", Json::object());
  int32_t oldOld = old.value("replicas", 0) - old.value("updatedReplicas", 0);
  int32_t newOld = s.value("replicas", 0) - s.value("updatedReplicas", 0);
  return s.value("updatedReplicas", 0) > old.value("updatedReplicas", 0) || newOld < oldOld ||
         s.value("readyReplicas", 0) > old.value("readyReplicas", 0) ||
         s.value("availableReplicas", 0) > old.value("availableReplicas", 0);
}

bool deploymentTimedOut(const Json& d, const Json& s, TimePoint now) {
  if (!hasProgressDeadline(d)) return false;
  const Json* c = condition(s, kProgressing);
  if (c == nullptr) return false;
  std::string reason = c->value("reason", "");
  if (reason == kNewRSAvailableReason) return false;
  if (reason == kTimedOutReason) return true;
  auto from = parseRfc3339(c->value("lastUpdateTime", ""));
  if (!from) return false;
  return *from + std::chrono::seconds(d["spec"].value("progressDeadlineSeconds", 600)) < now;
}

bool sameStatus(const Json& a, const Json& b) {
  for (const char* f : {"replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas",
                        "collisionCount"}) {
    if (a.value(f, 0) != b.value(f, 0)) return false;
  }
  if (a.value("observedGeneration", int64_t{0}) != b.value("observedGeneration", int64_t{0})) return false;
  return a.value("conditions", Json::array()) == b.value("conditions", Json::array());
}

}  // namespace sluice::controllers::workloads
