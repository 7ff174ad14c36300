#include "control/controllers/cluster/endpoints_common.h"

#include <algorithm>

namespace sluice::controllers {
namespace {

std::string pairKey(const std::string& ns, const std::string& k, const std::string& v) {
  return ns + "|" + k + "=" + v;
}

// What of a pod its endpoints depend on; an update that changes none of it
// (a container restart count, say) does not touch any Service.
std::string endpointRelevant(const Json& pod) {
  Json s = {{"l", labelsOf(pod)},
            {"ip", pod.value("/status/podIP"_json_pointer, std::string())},
            {"ips", pod.value("/status/podIPs"_json_pointer, Json())},
            {"r", podReady(pod)},
            {"t", podTerminating(pod)},
            {"p", pod.value("/status/phase"_json_pointer, std::string())},
            {"n", pod.value("/spec/nodeName"_json_pointer, std::string())},
            {"h", pod.value("/spec/hostname"_json_pointer, std::string())},
            {"s", pod.value("/spec/subdomain"_json_pointer, std::string())}};
  const Json* ready = findCondition(pod, "Ready");
  if (ready != nullptr) s["rt"] = ready->value("lastTransitionTime", "");
  return s.dump();
}

}  // namespace

void LabelIndex::set(const std::string& key, const std::string& ns, const Json& pairs) {
  erase(key);
  if (!pairs.is_object() || pairs.empty()) return;
  auto& mine = pairsOf_[key];
  for (auto it = pairs.begin(); it != pairs.end(); ++it) {
    if (!it.value().is_string()) continue;
    std::string p = pairKey(ns, it.key(), it.value().get<std::string>());
    byPair_[p].insert(key);
    mine.push_back(std::move(p));
  }
}

void LabelIndex::erase(const std::string& key) {
  auto it = pairsOf_.find(key);
  if (it == pairsOf_.end()) return;
  for (const auto& p : it->second) {
    auto b = byPair_.find(p);
    if (b == byPair_.end()) continue;
    b->second.erase(key);
    if (b->second.empty()) byPair_.erase(b);
  }
  pairsOf_.erase(it);
}

const std::set<std::string>* LabelIndex::find(const std::string& ns, const std::string& k,
                                               const std::string& v) const {
  auto it = byPair_.find(pairKey(ns, k, v));
  return it == byPair_.end() ? nullptr : &it->second;
}

TriggerTimeTracker::Change TriggerTimeTracker::compute(const std::string& serviceKey, const Json& service,
                                                       const std::vector<client::ObjectPtr>& pods) const {
  Change change{serviceKey, std::nullopt, {}};
  State& next = change.next;
  for (const auto& p : pods) {
    const Json* ready = findCondition(*p, "Ready");
    if (ready == nullptr) continue;
    if (auto t = parseRfc3339(ready->value("lastTransitionTime", ""))) next.pods[client::nameOf(*p)] = *t;
  }
  next.service = parseRfc3339(service.value("/metadata/creationTimestamp"_json_pointer, std::string()));
  std::lock_guard lock(mu_);
  auto it = states_.find(serviceKey);
  if (it == states_.end()) {
    change.trigger = next.service;
    return change;
  }
  auto consider = [&](TimePoint t) {
    if (!change.trigger || t < *change.trigger) change.trigger = t;
  };
  for (const auto& [name, t] : next.pods) {
    auto old = it->second.pods.find(name);
    if (old == it->second.pods.end() || t > old->second) consider(t);
  }
  if (next.service && (!it->second.service || *next.service > *it->second.service)) consider(*next.service);
  return change;
}

void TriggerTimeTracker::publish(Change change) {
  std::lock_guard lock(mu_);
  states_[change.serviceKey] = std::move(change.next);
}

void TriggerTimeTracker::forget(const std::string& serviceKey) {
  std::lock_guard lock(mu_);
  states_.erase(serviceKey);
}

std::optional<int> resolveTargetPort(const Json& servicePort, const Json& pod) {
  const Json target = servicePort.value("targetPort", Json());
  if (target.is_number_integer()) return target.get<int>();
  if (target.is_null()) {
    int port = servicePort.value("port", 0);
    return port > 0 ? std::optional<int>(port) : std::nullopt;
  }
  if (!target.is_string()) return std::nullopt;
  std::string name = target.get<std::string>();
  std::string protocol = servicePort.value("protocol", "TCP");
  auto containers = pod.value("/spec/containers"_json_pointer, Json::array());
  for (const auto& c : containers) {
    for (const auto& p : c.value("ports", Json::array())) {
      if (p.value("name", "") == name && p.value("protocol", "TCP") == protocol) {
        int port = p.value("containerPort", 0);
        if (port > 0) return port;
      }
    }
  }
  return std::nullopt;
}

std::vector<std::string> serviceFamilies(const Json& service) {
  std::vector<std::string> out;
  for (const auto& f : service.value("/spec/ipFamilies"_json_pointer, Json::array())) {
    if (f.is_string()) out.push_back(f.get<std::string>());
  }
  if (out.empty()) {
    std::string ip = service.value("/spec/clusterIP"_json_pointer, std::string());
    out.push_back(ip.find(':') != std::string::npos ? "IPv6" : "IPv4");
  }
  return out;
}

bool managesEndpoints(const Json& service) {
  const Json sel = service.value("/spec/selector"_json_pointer, Json());
  if (!sel.is_object() || sel.empty()) return false;
  return service.value("/spec/type"_json_pointer, std::string()) != "ExternalName";
}

ServiceEndpointsController::ServiceEndpointsController(const ControllerContext& ctx, const char* name)
    : QueueController(ctx, name),
      services_(ctx.informers.get(client::resources::kServices)),
      pods_(ctx.informers.get(client::resources::kPods)) {
  services_.addHandlers({
      [this](const client::ObjectPtr& s) { onService(s, false); },
      [this](const client::ObjectPtr&, const client::ObjectPtr& s) { onService(s, false); },
      [this](const client::ObjectPtr& s) { onService(s, true); },
  });
  pods_.addHandlers({
      [this](const client::ObjectPtr& p) { onPod(nullptr, p); },
      [this](const client::ObjectPtr& o, const client::ObjectPtr& p) { onPod(o, p); },
      [this](const client::ObjectPtr& p) { onPod(p, nullptr); },
  });
}

void ServiceEndpointsController::onService(const client::ObjectPtr& svc, bool deleted) {
  std::string key = client::keyOf(*svc);
  {
    std::lock_guard lock(mu_);
    if (deleted) {
      servicesBySelector_.erase(key);
    } else {
      servicesBySelector_.set(key, client::namespaceOf(*svc), svc->value("/spec/selector"_json_pointer, Json()));
    }
  }
  enqueue(key);
}

void ServiceEndpointsController::onPod(const client::ObjectPtr& old, const client::ObjectPtr& cur) {
  if (old && cur && endpointRelevant(*old) == endpointRelevant(*cur)) return;
  const Json& any = cur ? *cur : *old;
  std::string ns = client::namespaceOf(any);
  std::string key = client::keyOf(any);
  std::set<std::string> candidates;
  {
    std::lock_guard lock(mu_);
    if (cur) {
      podsByLabel_.set(key, ns, labelsOf(*cur));
    } else {
      podsByLabel_.erase(key);
    }
    for (const auto* p : {old.get(), cur.get()}) {
      if (p == nullptr) continue;
      const Json& labels = labelsOf(*p);
      for (auto it = labels.begin(); it != labels.end(); ++it) {
        if (!it.value().is_string()) continue;
        if (const auto* s = servicesBySelector_.find(ns, it.key(), it.value().get<std::string>())) {
          candidates.insert(s->begin(), s->end());
        }
      }
    }
  }
  for (const auto& svcKey : candidates) {
    auto svc = services_.get(svcKey);
    if (!svc) continue;
    const Json sel = svc->value("/spec/selector"_json_pointer, Json());
    bool matches = (old && selectorMatches(sel, labelsOf(*old))) || (cur && selectorMatches(sel, labelsOf(*cur)));
    if (matches) enqueue(svcKey);
  }
}

std::vector<client::ObjectPtr> ServiceEndpointsController::selectedPods(const Json& service) const {
  const Json sel = service.value("/spec/selector"_json_pointer, Json());
  std::vector<client::ObjectPtr> out;
  if (!sel.is_object() || sel.empty()) return out;
  std::string ns = client::namespaceOf(service);
  std::vector<std::string> keys;
  {
    std::lock_guard lock(mu_);
    const std::set<std::string>* smallest = nullptr;
    for (auto it = sel.begin(); it != sel.end(); ++it) {
      if (!it.value().is_string()) return out;
      const auto* s = podsByLabel_.find(ns, it.key(), it.value().get<std::string>());
      if (s == nullptr) return out;
      if (smallest == nullptr || s->size() < smallest->size()) smallest = s;
    }
    if (smallest != nullptr) keys.assign(smallest->begin(), smallest->end());
  }
  for (const auto& k : keys) {
    auto p = pods_.get(k);
    if (p && selectorMatches(sel, labelsOf(*p))) out.push_back(p);
  }
  return out;
}

}  // namespace sluice::controllers
