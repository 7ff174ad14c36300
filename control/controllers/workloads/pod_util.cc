#include "control/controllers/workloads/pod_util.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <thread>

namespace sluice::controllers::workloads {
namespace {

const Json& nullJson() {
  static const Json kNull;
  return kNull;
}

const std::string* lookupLabel(const Json& labels, const std::string& key) {
  if (!labels.is_object()) return nullptr;
  auto it = labels.find(key);
  if (it == labels.end() || !it->is_string()) return nullptr;
  return it->get_ptr<const std::string*>();
}

bool valuesContain(const Json& values, const std::string& v) {
  if (!values.is_array()) return false;
  return std::any_of(values.begin(), values.end(), [&](const Json& x) { return x.is_string() && x == v; });
}

// Removes pod-template-hash from a template's labels (and an emptied map).
Json withoutHash(const Json& tmpl) {
  Json t = tmpl;
  if (t.is_object() && t.contains("metadata") && t["metadata"].contains("labels")) {
    Json& labels = t["metadata"]["labels"];
    labels.erase(kPodTemplateHashLabel);
    if (labels.empty()) t["metadata"].erase("labels");
    if (t["metadata"].empty()) t.erase("metadata");
  }
  return t;
}

}  // namespace

bool selectorMatches(const Json& selector, const Json& labels) {
  if (!selector.is_object()) return false;
  if (auto ml = selector.find("matchLabels"); ml != selector.end() && ml->is_object()) {
    for (auto it = ml->begin(); it != ml->end(); ++it) {
      const std::string* v = lookupLabel(labels, it.key());
      if (v == nullptr || !it.value().is_string() || *v != it.value().get<std::string>()) return false;
    }
  }
  if (auto me = selector.find("matchExpressions"); me != selector.end() && me->is_array()) {
    for (const auto& req : *me) {
      std::string key = req.value("key", "");
      std::string op = req.value("operator", "");
      const Json& values = req.contains("values") ? req["values"] : nullJson();
      const std::string* v = lookupLabel(labels, key);
      if (op == "In") {
        if (v == nullptr || !valuesContain(values, *v)) return false;
      } else if (op == "NotIn") {
        if (v != nullptr && valuesContain(values, *v)) return false;
      } else if (op == "Exists") {
        if (v == nullptr) return false;
      } else if (op == "DoesNotExist") {
        if (v != nullptr) return false;
      } else {
        return false;  // validation rejects other operators
      }
    }
  }
  return true;
}

bool isDeleting(const Json& obj) {
  const Json& m = metaOf(obj);
  auto d = m.find("deletionTimestamp");
  return d != m.end() && d->is_string() && !d->get_ref<const std::string&>().empty();
}

bool hasFinalizer(const Json& obj, const std::string& finalizer) {
  const Json& m = metaOf(obj);
  auto f = m.find("finalizers");
  return f != m.end() && valuesContain(*f, finalizer);
}

int64_t generationOf(const Json& obj) {
  const Json& m = metaOf(obj);
  auto g = m.find("generation");
  return g != m.end() && g->is_number_integer() ? g->get<int64_t>() : 0;
}

int32_t specReplicas(const Json& obj) {
  auto s = obj.find("spec");
  if (s == obj.end() || !s->is_object()) return 1;
  auto r = s->find("replicas");
  return r != s->end() && r->is_number_integer() ? r->get<int32_t>() : 1;
}

int32_t statusInt(const Json& obj, const char* field) {
  auto s = obj.find("status");
  if (s == obj.end() || !s->is_object()) return 0;
  auto r = s->find(field);
  return r != s->end() && r->is_number_integer() ? r->get<int32_t>() : 0;
}

bool podActive(const Json& pod) {
  if (isDeleting(pod)) return false;
  std::string phase = pod.contains("status") ? pod["status"].value("phase", "") : "";
  return phase != "Succeeded" && phase != "Failed";
}

namespace {

const Json* readyCondition(const Json& pod) {
  auto s = pod.find("status");
  if (s == pod.end() || !s->is_object()) return nullptr;
  auto conds = s->find("conditions");
  if (conds == s->end() || !conds->is_array()) return nullptr;
  for (const auto& c : *conds) {
    if (c.value("type", "") == "Ready") return &c;
  }
  return nullptr;
}

}  // namespace

std::optional<TimePoint> podReadySince(const Json& pod) {
  const Json* c = readyCondition(pod);
  if (c == nullptr || c->value("status", "") != "True") return std::nullopt;
  return parseRfc3339(c->value("lastTransitionTime", ""));
}

bool podAvailable(const Json& pod, int32_t minReadySeconds, TimePoint now,
                  std::optional<TimePoint>* becomesAvailable) {
  if (!podReady(pod)) return false;
  if (minReadySeconds <= 0) return true;
  auto since = podReadySince(pod);
  if (!since) return false;
  TimePoint at = *since + std::chrono::seconds(minReadySeconds);
  if (at <= now) return true;
  if (becomesAvailable != nullptr) *becomesAvailable = at;
  return false;
}

Json controllerRefTo(const Json& owner, const std::string& apiVersion, const std::string& kind) {
  return Json{{"apiVersion", apiVersion},          {"kind", kind},       {"name", client::nameOf(owner)},
              {"uid", client::uidOf(owner)},        {"controller", true}, {"blockOwnerDeletion", true}};
}

bool controlledBy(const Json& obj, const std::string& uid) {
  const Json* ref = client::controllerRef(obj);
  return ref != nullptr && ref->value("uid", "") == uid;
}

Json ownerRefsWithout(const Json& obj, const std::string& uid) {
  Json out = Json::array();
  const Json& m = metaOf(obj);
  if (auto refs = m.find("ownerReferences"); refs != m.end() && refs->is_array()) {
    for (const auto& r : *refs) {
      if (r.value("uid", "") != uid) out.push_back(r);
    }
  }
  return out;
}

std::string templateHash(const Json& podTemplate, std::optional<int32_t> collisionCount) {
  uint32_t h = 2166136261u;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 16777619u;
  };
  // nlohmann::json keeps object keys sorted, so dump() is canonical.
  for (char c : podTemplate.dump()) mix(static_cast<unsigned char>(c));
  if (collisionCount) {
    auto n = static_cast<uint32_t>(*collisionCount);
    for (int i = 0; i < 4; ++i) mix(static_cast<unsigned char>((n >> (8 * i)) & 0xff));
  }
  // k8s.io/apimachinery/pkg/util/rand.SafeEncodeString over the decimal.
  static constexpr char kAlphanums[] = "bcdfghjklmnpqrstvwxz2456789";
  std::string digits = std::to_string(h);
  std::string out;
  for (char c : digits) out.push_back(kAlphanums[static_cast<unsigned char>(c) % (sizeof(kAlphanums) - 1)]);
  return out;
}

bool equalIgnoreHash(const Json& a, const Json& b) { return withoutHash(a) == withoutHash(b); }

void parallelFor(size_t n, size_t maxThreads, const std::function<void(size_t)>& fn) {
  size_t threads = std::min(n, std::max<size_t>(1, maxThreads));
  if (threads <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (size_t t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < n; i = next++) fn(i);
    });
  }
  for (auto& t : pool) t.join();
}

TimePoint creationTime(const Json& obj) {
  auto t = parseRfc3339(metaOf(obj).value("creationTimestamp", ""));
  return t ? *t : TimePoint{};
}

}  // namespace sluice::controllers::workloads
