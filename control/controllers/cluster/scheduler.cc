#include "control/controllers/cluster/scheduler.h"

#include <algorithm>
#include <tuple>
#include <vector>

namespace sluice::controllers {
namespace {

ControllerContext oneWorker(const ControllerContext& ctx) {
  ControllerContext c = ctx;
  c.workers = 1;
  return c;
}

int64_t quantity(const Json& list, const char* name) {
  if (!list.is_object() || !list.contains(name) || !list[name].is_string()) return 0;
  return parseMilli(list[name].get<std::string>()).value_or(0);
}

bool pending(const Json& pod) {
  std::string sched = pod.value("/spec/schedulerName"_json_pointer, std::string());
  return pod.value("/spec/nodeName"_json_pointer, std::string()).empty() && !podTerminating(pod) &&
         !podTerminal(pod) && (sched.empty() || sched == Scheduler::kSchedulerName);
}

std::string ownerUid(const Json& pod) {
  const Json* ref = client::controllerRef(pod);
  return ref != nullptr ? ref->value("uid", "") : "";
}

bool tolerates(const Json& pod, const Json& taint) {
  for (const auto& t : pod.value("/spec/tolerations"_json_pointer, Json::array())) {
    std::string effect = t.value("effect", "");
    if (!effect.empty() && effect != taint.value("effect", "")) continue;
    std::string op = t.value("operator", "Equal");
    std::string key = t.value("key", "");
    if (key.empty() && op == "Exists") return true;
    if (key != taint.value("key", "")) continue;
    if (op == "Exists" || t.value("value", "") == taint.value("value", "")) return true;
  }
  return false;
}

// What the scheduler looks at in a node; other changes (heartbeats) do not
// make an unschedulable pod worth retrying.
std::string schedulingView(const Json& node) {
  const Json* ready = findCondition(node, "Ready");
  return Json{{"r", ready != nullptr ? ready->value("status", "") : ""},
              {"u", node.value("/spec/unschedulable"_json_pointer, false)},
              {"t", node.value("/spec/taints"_json_pointer, Json())},
              {"l", labelsOf(node)},
              {"a", node.value("/status/allocatable"_json_pointer, Json())}}
      .dump();
}

}  // namespace

PodRequests podRequests(const Json& pod) {
  PodRequests sum;
  for (const auto& c : pod.value("/spec/containers"_json_pointer, Json::array())) {
    Json req = c.value("/resources/requests"_json_pointer, Json());
    sum.cpuMilli += quantity(req, "cpu");
    sum.memoryMilli += quantity(req, "memory");
  }
  for (const auto& c : pod.value("/spec/initContainers"_json_pointer, Json::array())) {
    Json req = c.value("/resources/requests"_json_pointer, Json());
    sum.cpuMilli = std::max(sum.cpuMilli, quantity(req, "cpu"));
    sum.memoryMilli = std::max(sum.memoryMilli, quantity(req, "memory"));
  }
  Json overhead = pod.value("/spec/overhead"_json_pointer, Json());
  sum.cpuMilli += quantity(overhead, "cpu");
  sum.memoryMilli += quantity(overhead, "memory");
  return sum;
}

Scheduler::Scheduler(const ControllerContext& ctx)
    : QueueController(oneWorker(ctx), "scheduler"),
      pods_(ctx.informers.get(client::resources::kPods)),
      nodes_(ctx.informers.get(client::resources::kNodes)) {
  pods_.addHandlers({
      [this](const client::ObjectPtr& p) { onPod(nullptr, p); },
      [this](const client::ObjectPtr& o, const client::ObjectPtr& p) { onPod(o, p); },
      [this](const client::ObjectPtr& p) { onPod(p, nullptr); },
  });
  nodes_.addHandlers({
      [this](const client::ObjectPtr& n) { onNode(nullptr, n); },
      [this](const client::ObjectPtr& o, const client::ObjectPtr& n) { onNode(o, n); },
      [this](const client::ObjectPtr& n) { onNode(n, nullptr); },
  });
}

void Scheduler::place(const std::string& podKey, const std::string& node, const Json& pod) {
  auto prev = nodeOf_.find(podKey);
  if (prev != nodeOf_.end() && prev->second != node) byNode_[prev->second].erase(podKey);
  nodeOf_[podKey] = node;
  byNode_[node][podKey] = Placed{podRequests(pod), ownerUid(pod)};
}

void Scheduler::unplace(const std::string& podKey) {
  auto prev = nodeOf_.find(podKey);
  if (prev == nodeOf_.end()) return;
  byNode_[prev->second].erase(podKey);
  nodeOf_.erase(prev);
}

void Scheduler::onPod(const client::ObjectPtr& old, const client::ObjectPtr& cur) {
  bool freed = false;
  if (!cur) {
    // A deletion: reconcile finds no pod, releases its place and retries
    // the pods that did not fit.
    enqueue(client::keyOf(*old));
    return;
  }
  std::string key = client::keyOf(*cur);
  std::string node = cur->value("/spec/nodeName"_json_pointer, std::string());
  {
    std::lock_guard lock(mu_);
    if (!node.empty() && !podTerminal(*cur)) {
      place(key, node, *cur);
    } else if (nodeOf_.count(key) && !node.empty()) {
      unplace(key);
      freed = true;
    }
  }
  if (pending(*cur)) enqueue(key);
  if (freed) retryUnschedulable();
}

void Scheduler::onNode(const client::ObjectPtr& old, const client::ObjectPtr& cur) {
  if (old && cur && schedulingView(*old) == schedulingView(*cur)) return;
  retryUnschedulable();
}

void Scheduler::retryUnschedulable() {
  std::set<std::string> keys;
  {
    std::lock_guard lock(mu_);
    keys.swap(unschedulable_);
  }
  for (const auto& k : keys) enqueue(k);
}

Result<void> Scheduler::reconcile(const std::string& key) {
  auto pod = pods_.get(key);
  if (!pod) {
    std::lock_guard lock(mu_);
    bool wasPlaced = nodeOf_.count(key) > 0;
    unplace(key);
    unschedulable_.erase(key);
    if (!wasPlaced) return okResult();
  }
  if (!pod) {
    retryUnschedulable();
    return okResult();
  }
  if (!pending(*pod)) return okResult();
  {
    std::lock_guard lock(mu_);
    if (nodeOf_.count(key)) return okResult();  // bound by us; the informer lags
  }
  PodRequests want = podRequests(*pod);
  std::string owner = ownerUid(*pod);
  Json nodeSelector = pod->value("/spec/nodeSelector"_json_pointer, Json::object());

  std::map<std::string, int> reasons;
  using Score = std::tuple<size_t, size_t, std::string>;
  std::optional<Score> best;
  auto nodes = nodes_.list();
  {
    std::lock_guard lock(mu_);
    for (const auto& nodePtr : nodes) {
      const Json& node = *nodePtr;
      std::string name = client::nameOf(node);
      if (node.value("/spec/unschedulable"_json_pointer, false)) {
        ++reasons["node(s) were unschedulable"];
        continue;
      }
      const Json* ready = findCondition(node, "Ready");
      std::string readyStatus = ready != nullptr ? ready->value("status", "") : "";
      if (readyStatus != "True") {
        Json taint = {{"key", readyStatus == "False" ? "node.kubernetes.io/not-ready" : "node.kubernetes.io/unreachable"},
                      {"effect", "NoSchedule"}};
        if (!tolerates(*pod, taint)) {
          ++reasons["node(s) had untolerated taint {" + taint["key"].get<std::string>() + ": }"];
          continue;
        }
      }
      bool tainted = false;
      for (const auto& t : node.value("/spec/taints"_json_pointer, Json::array())) {
        std::string effect = t.value("effect", "");
        if ((effect == "NoSchedule" || effect == "NoExecute") && !tolerates(*pod, t)) {
          ++reasons["node(s) had untolerated taint {" + t.value("key", "") + ": " + t.value("value", "") + "}"];
          tainted = true;
          break;
        }
      }
      if (tainted) continue;
      if (nodeSelector.is_object() && !nodeSelector.empty() && !selectorMatches(nodeSelector, labelsOf(node))) {
        ++reasons["node(s) didn't match Pod's node affinity/selector"];
        continue;
      }
      Json alloc = node.value("/status/allocatable"_json_pointer, Json());
      if (!alloc.is_object()) alloc = node.value("/status/capacity"_json_pointer, Json::object());
      PodRequests used;
      size_t sameOwner = 0;
      const auto& placed = byNode_[name];
      for (const auto& [k, p] : placed) {
        used.cpuMilli += p.requests.cpuMilli;
        used.memoryMilli += p.requests.memoryMilli;
        if (!owner.empty() && p.owner == owner) ++sameOwner;
      }
      bool fits = true;
      if (alloc.contains("pods") && static_cast<int64_t>(placed.size() + 1) * 1000 > quantity(alloc, "pods")) {
        ++reasons["Too many pods"];
        fits = false;
      }
      if (want.cpuMilli > 0 && used.cpuMilli + want.cpuMilli > quantity(alloc, "cpu")) {
        ++reasons["Insufficient cpu"];
        fits = false;
      }
      if (want.memoryMilli > 0 && used.memoryMilli + want.memoryMilli > quantity(alloc, "memory")) {
        ++reasons["Insufficient memory"];
        fits = false;
      }
      if (!fits) continue;
      Score s{sameOwner, placed.size(), name};
      if (!best || s < *best) best = s;
    }
  }
  const auto [nsKey, nameKey] = splitKey(key);
  const std::string ns = nsKey;
  const std::string name = nameKey;
  if (!best) {
    std::string message;
    if (nodes.empty()) {
      message = "no nodes available to schedule pods";
    } else {
      std::vector<std::string> parts;
      for (const auto& [reason, count] : reasons) parts.push_back(std::to_string(count) + " " + reason);
      std::sort(parts.begin(), parts.end());
      message = "0/" + std::to_string(nodes.size()) + " nodes are available: ";
      for (size_t i = 0; i < parts.size(); ++i) message += (i ? ", " : "") + parts[i];
      message += ".";
    }
    {
      std::lock_guard lock(mu_);
      unschedulable_.insert(key);
    }
    return markUnschedulable(*pod, message);
  }
  const std::string& target = std::get<2>(*best);
  Json binding = {{"apiVersion", "v1"},
                  {"kind", "Binding"},
                  {"metadata", {{"name", name}, {"namespace", ns}, {"uid", client::uidOf(*pod)}}},
                  {"target", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", target}}}};
  auto r = ctx_.client.call("POST", client::resources::kPods.path(ns, name, "binding"), &binding);
  if (!r) {
    if (r.error().code == ErrorCode::kNotFound) return okResult();
    // 409: bound meanwhile (by another scheduler) — the informer will say.
    if (r.error().code == ErrorCode::kAborted || r.error().code == ErrorCode::kAlreadyExists) return okResult();
    return r.error();
  }
  std::lock_guard lock(mu_);
  place(key, target, *pod);
  unschedulable_.erase(key);
  return okResult();
}

Result<void> Scheduler::markUnschedulable(const Json& pod, const std::string& message) {
  Json next = pod;
  Json& conditions = next["status"]["conditions"];
  Json cond = {{"type", "PodScheduled"}, {"status", "False"}, {"reason", "Unschedulable"}, {"message", message}};
  if (!setCondition(conditions, cond, formatRfc3339(ctx_.clock.now()))) return okResult();
  auto r = ctx_.client.updateStatus(client::resources::kPods, client::namespaceOf(pod), next);
  if (!r && r.error().code != ErrorCode::kNotFound) return r.error();
  return okResult();
}

}  // namespace sluice::controllers
