#include "control/controllers/cluster/node_lifecycle.h"

#include "control/controllers/cluster/node_heartbeat.h"
#include "dataplane/log.h"

namespace sluice::controllers {
namespace {

// The conditions the kubelet posts; all become Unknown with Ready.
const char* const kNodeConditions[] = {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"};

}  // namespace

NodeLifecycleController::NodeLifecycleController(const ControllerContext& ctx, NodeLifecycleOptions options)
    : ctx_(ctx),
      options_(options),
      nodes_(ctx.informers.get(client::resources::kNodes)),
      leases_(ctx.informers.get(client::resources::kLeases)),
      pods_(ctx.informers.get(client::resources::kPods)) {}

void NodeLifecycleController::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] {
    std::unique_lock l(mu_);
    while (!stopping_) {
      l.unlock();
      monitorOnce();
      l.lock();
      cv_.wait_for(l, options_.monitorPeriod, [this] { return stopping_; });
    }
  });
}

void NodeLifecycleController::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NodeLifecycleController::monitorOnce() {
  for (const auto& node : nodes_.list()) {
    if (auto r = monitor(*node); !r) {
      log::warning(log::Limit{"nodelifecycle/" + client::nameOf(*node)}, "nodelifecycle", "monitoring node failed",
                   {{"node", client::nameOf(*node)}, {"err", r.error().message}});
    }
  }
}

Result<void> NodeLifecycleController::monitor(const Json& node) {
  std::string name = client::nameOf(node);
  TimePoint now = ctx_.clock.now();
  std::optional<TimePoint> heartbeat;
  auto later = [&](std::optional<TimePoint> t) {
    if (t && (!heartbeat || *t > *heartbeat)) heartbeat = t;
  };
  if (auto lease = leases_.get(kNodeLeaseNamespace, name)) {
    later(parseRfc3339(lease->value("/spec/renewTime"_json_pointer, std::string())));
  }
  const Json* ready = findCondition(node, "Ready");
  if (ready != nullptr) later(parseRfc3339(ready->value("lastHeartbeatTime", "")));
  if (!heartbeat) later(parseRfc3339(node.value("/metadata/creationTimestamp"_json_pointer, std::string())));
  std::string status = ready != nullptr ? ready->value("status", "") : "";

  if (heartbeat && now - *heartbeat > options_.gracePeriod && status != "Unknown") {
    if (auto r = markUnknown(node, now); !r) return r;
    return markPodsNotReady(name, now);
  }
  if (status != "True" && ready != nullptr) {
    auto since = parseRfc3339(ready->value("lastTransitionTime", ""));
    if (since && now - *since > options_.evictionTimeout) return evictPods(name);
  }
  return okResult();
}

Result<void> NodeLifecycleController::markUnknown(const Json& node, TimePoint now) {
  Json next = node;
  std::string ts = formatRfc3339(now);
  Json& conditions = next["status"]["conditions"];
  if (!conditions.is_array()) conditions = Json::array();
  bool hadReady = findCondition(node, "Ready") != nullptr;
  for (const char* type : kNodeConditions) {
    bool present = findCondition(node, type) != nullptr;
    if (!present && std::string(type) != "Ready") continue;
    Json c = {{"type", type}, {"status", "Unknown"}, {"reason", "NodeStatusUnknown"},
              {"message", "Kubelet stopped posting node status."}};
    if (!hadReady) {
      c["reason"] = "NodeStatusNeverUpdated";
      c["message"] = "Kubelet never posted node status.";
      c["lastHeartbeatTime"] = node.value("/metadata/creationTimestamp"_json_pointer, std::string());
    }
    setCondition(conditions, c, ts);
  }
  auto r = ctx_.client.updateStatus(client::resources::kNodes, "", next);
  if (!r && r.error().code != ErrorCode::kNotFound) return r.error();
  return okResult();
}

Result<void> NodeLifecycleController::markPodsNotReady(const std::string& node, TimePoint now) {
  std::string ts = formatRfc3339(now);
  for (const auto& pod : pods_.list()) {
    if (pod->value("/spec/nodeName"_json_pointer, std::string()) != node || !podReady(*pod)) continue;
    Json next = *pod;
    setCondition(next["status"]["conditions"], {{"type", "Ready"}, {"status", "False"}}, ts);
    auto r = ctx_.client.updateStatus(client::resources::kPods, client::namespaceOf(*pod), next);
    if (!r && r.error().code != ErrorCode::kNotFound) return r.error();
  }
  return okResult();
}

Result<void> NodeLifecycleController::evictPods(const std::string& node) {
  for (const auto& pod : pods_.list()) {
    if (pod->value("/spec/nodeName"_json_pointer, std::string()) != node || podTerminating(*pod)) continue;
    auto r = ctx_.client.remove(client::resources::kPods, client::namespaceOf(*pod), client::nameOf(*pod),
                                {{"preconditions", {{"uid", client::uidOf(*pod)}}}});
    if (!r && r.error().code != ErrorCode::kNotFound && r.error().code != ErrorCode::kAborted) return r.error();
  }
  return okResult();
}

}  // namespace sluice::controllers
