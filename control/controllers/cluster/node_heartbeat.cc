#include "control/controllers/cluster/node_heartbeat.h"

#include "control/controllers/cluster/cluster_util.h"
#include "dataplane/log.h"

namespace sluice::controllers {

NodeHeartbeat::NodeHeartbeat(client::ApiClient& client, NodeHeartbeatOptions options)
    : client_(client),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : &systemClock_),
      name_(client::nameOf(options_.node)) {}

Result<std::unique_ptr<NodeHeartbeat>> NodeHeartbeat::start(client::ApiClient& client,
                                                            NodeHeartbeatOptions options) {
  std::unique_ptr<NodeHeartbeat> h(new NodeHeartbeat(client, std::move(options)));
  if (h->name_.empty()) return Error::invalid("node heartbeat: the node has no metadata.name");
  if (auto r = h->registerNode(); !r) return r.error();
  if (auto r = h->renewLease(); !r) return r.error();
  h->thread_ = std::thread([p = h.get()] {
    std::unique_lock lock(p->mu_);
    while (!p->stop_) {
      p->cv_.wait_for(lock, p->options_.renewInterval, [p] { return p->stop_; });
      if (p->stop_) break;
      lock.unlock();
      if (auto r = p->beat(); !r) {
        log::warning(log::Limit{"heartbeat/" + p->name_}, "heartbeat", "renewing the node lease failed",
                     {{"node", p->name_}, {"err", r.error().message}});
      }
      lock.lock();
    }
  });
  return h;
}

NodeHeartbeat::~NodeHeartbeat() { stop(); }

void NodeHeartbeat::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<void> NodeHeartbeat::beat() {
  if (auto r = renewLease(); !r) return r;
  return postReady(false);
}

Result<void> NodeHeartbeat::registerNode() {
  Json node = options_.node;
  node["apiVersion"] = "v1";
  node["kind"] = "Node";
  std::string now = formatRfc3339(clock_->now());
  Json& conditions = node["status"]["conditions"];
  setCondition(conditions,
               {{"type", "Ready"}, {"status", "True"}, {"reason", "KubeletReady"},
                {"message", "kubelet is posting ready status"}, {"lastHeartbeatTime", now}},
               now);
  auto created = client_.create(client::resources::kNodes, "", node);
  if (created) {
    uid_ = client::uidOf(*created);
    lastStatus_ = clock_->now();
    return okResult();
  }
  if (created.error().code != ErrorCode::kAlreadyExists) return created.error();
  return postReady(true);
}

Result<void> NodeHeartbeat::postReady(bool force) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto cur = client_.get(client::resources::kNodes, "", name_);
    if (!cur) return cur.error();
    uid_ = client::uidOf(*cur);
    const Json* ready = findCondition(*cur, "Ready");
    bool isReady = ready != nullptr && ready->value("status", "") == "True";
    if (!force && isReady && clock_->now() - lastStatus_ < options_.statusInterval) return okResult();
    Json next = *cur;
    std::string now = formatRfc3339(clock_->now());
    setCondition(next["status"]["conditions"],
                 {{"type", "Ready"}, {"status", "True"}, {"reason", "KubeletReady"},
                  {"message", "kubelet is posting ready status"}, {"lastHeartbeatTime", now}},
                 now);
    auto r = client_.updateStatus(client::resources::kNodes, "", next);
    if (r) {
      lastStatus_ = clock_->now();
      return okResult();
    }
    if (r.error().code != ErrorCode::kAborted) return r.error();
  }
  return Error::aborted("node " + name_ + ": status update kept conflicting");
}

Result<void> NodeHeartbeat::renewLease() {
  const auto& kLeases = client::resources::kLeases;
  std::string now = formatRfc3339Micro(clock_->now());
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto cur = client_.get(kLeases, kNodeLeaseNamespace, name_);
    if (!cur && cur.error().code != ErrorCode::kNotFound) return cur.error();
    if (!cur) {
      Json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                    {"kind", "Lease"},
                    {"metadata", {{"name", name_}, {"namespace", kNodeLeaseNamespace}}},
                    {"spec",
                     {{"holderIdentity", name_},
                      {"leaseDurationSeconds", options_.leaseDuration.count()},
                      {"renewTime", now}}}};
      if (!uid_.empty()) {
        lease["metadata"]["ownerReferences"] = {
            {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", name_}, {"uid", uid_}}};
      }
      auto r = client_.create(kLeases, kNodeLeaseNamespace, lease);
      if (r || r.error().code != ErrorCode::kAlreadyExists) return r ? okResult() : Result<void>(r.error());
      continue;
    }
    Json lease = *cur;
    lease["spec"]["holderIdentity"] = name_;
    lease["spec"]["leaseDurationSeconds"] = options_.leaseDuration.count();
    lease["spec"]["renewTime"] = now;
    auto r = client_.update(kLeases, kNodeLeaseNamespace, lease);
    if (r) return okResult();
    if (r.error().code != ErrorCode::kAborted) return r.error();
  }
  return Error::aborted("node " + name_ + ": lease renewal kept conflicting");
}

}  // namespace sluice::controllers
