#include "control/controllers/workloads/replicaset_controller.h"

#include <algorithm>
#include <iostream>

#include "control/controllers/workloads/pod_util.h"

namespace sluice::controllers::workloads {
namespace {

using client::Json;
using client::ObjectPtr;

// Expectations older than this are dropped (a watch event lost to a re-list);
// the controller then acts on the cache as it is.
constexpr auto kExpectationTimeout = std::chrono::seconds(30);
// Concurrent API writes per reconcile.
constexpr size_t kWriteThreads = 16;
// Longest real-time wait before re-checking pods that become available
// later: the clock may be a ManualClock that a test moves ahead.
constexpr auto kAvailabilityRecheck = std::chrono::milliseconds(1000);

struct DeletionRank {
  bool assigned = false;
  int phase = 0;  // Pending < Unknown < Running
  bool ready = false;
  int colocated = 0;  // pods of this ReplicaSet on the same node
  TimePoint readySince{};
  int restarts = 0;
  TimePoint created{};
  std::string name;
};

DeletionRank rankOf(const Json& pod, const std::map<std::string, int>& perNode) {
  DeletionRank r;
  std::string node = pod["spec"].value("nodeName", "");
  r.assigned = !node.empty();
  const Json& st = pod.contains("status") ? pod["status"] : Json::object();
  std::string phase = st.value("phase", "");
  r.phase = phase == "Running" ? 2 : phase == "Unknown" ? 1 : 0;
  r.ready = podReady(pod);
  if (r.assigned) r.colocated = perNode.at(node);
  if (auto t = podReadySince(pod)) r.readySince = *t;
  if (st.contains("containerStatuses") && st["containerStatuses"].is_array()) {
    for (const auto& c : st["containerStatuses"]) r.restarts += c.value("restartCount", 0);
  }
  r.created = creationTime(pod);
  r.name = client::nameOf(pod);
  return r;
}

// True when a should be deleted before b (controller.ActivePodsWithRanks).
bool deleteBefore(const DeletionRank& a, const DeletionRank& b) {
  if (a.assigned != b.assigned) return !a.assigned;
  if (a.phase != b.phase) return a.phase < b.phase;
  if (a.ready != b.ready) return !a.ready;
  if (a.colocated != b.colocated) return a.colocated > b.colocated;
  if (a.ready && a.readySince != b.readySince) return a.readySince > b.readySince;
  if (a.restarts != b.restarts) return a.restarts > b.restarts;
  if (a.created != b.created) return a.created > b.created;
  return a.name > b.name;
}

Json podFromTemplate(const Json& rs) {
  const Json& tmpl = rs["spec"]["template"];
  Json meta = {{"generateName", client::nameOf(rs) + "-"},
               {"namespace", client::namespaceOf(rs)},
               {"ownerReferences", Json::array({controllerRefTo(rs, "apps/v1", "ReplicaSet")})}};
  if (tmpl.contains("metadata")) {
    for (const char* f : {"labels", "annotations", "finalizers"}) {
      if (tmpl["metadata"].contains(f)) meta[f] = tmpl["metadata"][f];
    }
  }
  return Json{{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", meta}, {"spec", tmpl.value("spec", Json::object())}};
}

bool ownedPodEvent(const Json& pod, std::string* ownerKey) {
  const Json* ref = client::controllerRef(pod);
  if (ref == nullptr) return false;
  if (ref->value("kind", "") == "ReplicaSet" && ref->value("apiVersion", "").rfind("apps/", 0) == 0) {
    *ownerKey = client::namespaceOf(pod) + "/" + ref->value("name", "");
  }
  return true;
}

}  // namespace

ReplicaSetController::ReplicaSetController(const ControllerContext& ctx)
    : QueueController(ctx, "replicaset"),
      replicaSets_(ctx.informers.get(client::resources::kReplicaSets)),
      pods_(ctx.informers.get(client::resources::kPods)) {
  auto enqueueRs = [this](const ObjectPtr& o) { enqueue(client::keyOf(*o)); };
  replicaSets_.addHandlers({enqueueRs, [this](const ObjectPtr&, const ObjectPtr& o) { enqueue(client::keyOf(*o)); },
                            [this](const ObjectPtr& o) {
                              forgetExpectations(client::keyOf(*o));
                              enqueue(client::keyOf(*o));
                            }});
  pods_.addHandlers({[this](const ObjectPtr& p) { onPod(p); },
                     [this](const ObjectPtr& old, const ObjectPtr& cur) {
                       onPod(cur);
                       // A changed controller: the old owner lost a pod.
                       std::string oldOwner;
                       std::string curOwner;
                       ownedPodEvent(*old, &oldOwner);
                       ownedPodEvent(*cur, &curOwner);
                       if (!oldOwner.empty() && oldOwner != curOwner) enqueue(oldOwner);
                     },
                     [this](const ObjectPtr& p) { onPod(p); }});
}

void ReplicaSetController::onPod(const ObjectPtr& pod) {
  std::string owner;
  if (ownedPodEvent(*pod, &owner)) {
    if (!owner.empty()) enqueue(owner);
    return;
  }
  if (!isDeleting(*pod)) enqueueMatching(*pod);
}

// An orphan: every ReplicaSet whose selector matches may adopt it.
void ReplicaSetController::enqueueMatching(const Json& pod) {
  for (const auto& rs : replicaSets_.list(client::namespaceOf(pod))) {
    if (selectorMatches((*rs)["spec"].value("selector", Json()), labelsOf(pod))) enqueue(client::keyOf(*rs));
  }
}

bool ReplicaSetController::expectationsMet(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(key);
  if (it == pending_.end()) return true;
  Pending& p = it->second;
  std::string ns = splitKey(key).first;
  for (auto c = p.creates.begin(); c != p.creates.end();) {
    c = pods_.get(ns, *c) != nullptr ? p.creates.erase(c) : std::next(c);
  }
  for (auto d = p.deletes.begin(); d != p.deletes.end();) {
    ObjectPtr pod = pods_.get(*d);
    d = pod == nullptr || isDeleting(*pod) ? p.deletes.erase(d) : std::next(d);
  }
  if ((p.creates.empty() && p.deletes.empty()) || std::chrono::steady_clock::now() - p.since > kExpectationTimeout) {
    pending_.erase(it);
    return true;
  }
  return false;
}

void ReplicaSetController::expectCreates(const std::string& key, const std::set<std::string>& names) {
  if (names.empty()) return;
  std::lock_guard lock(mu_);
  Pending& p = pending_[key];
  p.creates.insert(names.begin(), names.end());
  p.since = std::chrono::steady_clock::now();
}

void ReplicaSetController::expectDeletes(const std::string& key, const std::set<std::string>& podKeys) {
  if (podKeys.empty()) return;
  std::lock_guard lock(mu_);
  Pending& p = pending_[key];
  p.deletes.insert(podKeys.begin(), podKeys.end());
  p.since = std::chrono::steady_clock::now();
}

void ReplicaSetController::forgetExpectations(const std::string& key) {
  std::lock_guard lock(mu_);
  pending_.erase(key);
}

Result<void> ReplicaSetController::reconcile(const std::string& key) {
  ObjectPtr rs = replicaSets_.get(key);
  if (rs == nullptr) {
    forgetExpectations(key);
    return okResult();
  }
  auto pods = claimPods(*rs);
  if (!pods) return pods.error();
  Result<void> managed = okResult();
  if (!isDeleting(*rs)) {
    if (expectationsMet(key)) {
      managed = manageReplicas(key, *rs, *pods);
    } else {
      enqueueAfter(key, std::chrono::seconds(1));  // in case a watch event is lost
    }
  }
  auto status = updateStatus(key, *rs, *pods);
  if (!managed) return managed;
  return status;
}

// controller.PodControllerRefManager.ClaimPods over the active pods.
Result<std::vector<ObjectPtr>> ReplicaSetController::claimPods(const Json& rs) {
  std::string uid = client::uidOf(rs);
  const Json selector = rs["spec"].value("selector", Json());
  std::string ns = client::namespaceOf(rs);
  std::vector<ObjectPtr> owned;
  std::optional<bool> canAdopt;  // checked once against the live object
  for (const auto& pod : pods_.list(ns)) {
    if (!podActive(*pod)) continue;
    const Json* ref = client::controllerRef(*pod);
    bool matches = selectorMatches(selector, labelsOf(*pod));
    if (ref != nullptr) {
      if (ref->value("uid", "") != uid) continue;
      if (matches) {
        owned.push_back(pod);
        continue;
      }
      if (isDeleting(rs)) continue;
      Json patch = {{"metadata",
                     {{"ownerReferences", ownerRefsWithout(*pod, uid)},
                      {"resourceVersion", metaOf(*pod).value("resourceVersion", "")}}}};
      auto r = ctx_.client.patch(client::resources::kPods, ns, client::nameOf(*pod), patch);
      if (!r && r.error().code != ErrorCode::kNotFound) return r.error();
      continue;
    }
    if (!matches || isDeleting(rs)) continue;
    if (!canAdopt) {
      auto fresh = ctx_.client.get(client::resources::kReplicaSets, ns, client::nameOf(rs));
      if (!fresh && fresh.error().code != ErrorCode::kNotFound) return fresh.error();
      canAdopt = fresh && client::uidOf(*fresh) == uid && !isDeleting(*fresh);
    }
    if (!*canAdopt) continue;
    Json refs = metaOf(*pod).value("ownerReferences", Json::array());
    refs.push_back(controllerRefTo(rs, "apps/v1", "ReplicaSet"));
    Json patch = {{"metadata", {{"ownerReferences", refs}, {"resourceVersion", metaOf(*pod).value("resourceVersion", "")}}}};
    auto r = ctx_.client.patch(client::resources::kPods, ns, client::nameOf(*pod), patch);
    if (!r) {
      if (r.error().code == ErrorCode::kNotFound) continue;
      return r.error();
    }
    // The owner may have been deleted with propagationPolicy=Orphan right
    // after the check above (the server orphans, then deletes): if it is
    // gone now, give the object back at once.
    auto again = ctx_.client.get(client::resources::kReplicaSets, ns, client::nameOf(rs));
    if (!again || client::uidOf(*again) != uid) {
      Json release = {{"metadata", {{"ownerReferences", ownerRefsWithout(*r, uid)},
                                    {"resourceVersion", metaOf(*r).value("resourceVersion", "")}}}};
      (void)ctx_.client.patch(client::resources::kPods, ns, client::nameOf(*r), release);
      canAdopt = false;
      continue;
    }
    owned.push_back(std::make_shared<const Json>(std::move(*r)));
  }
  return owned;
}

Result<void> ReplicaSetController::manageReplicas(const std::string& key, const Json& rs,
                                                  const std::vector<ObjectPtr>& pods) {
  int diff = static_cast<int>(pods.size()) - specReplicas(rs);
  std::string ns = client::namespaceOf(rs);
  std::mutex mu;
  std::optional<Error> firstError;
  if (diff < 0) {
    size_t n = static_cast<size_t>(std::min(-diff, kBurstReplicas));
    Json pod = podFromTemplate(rs);
    std::set<std::string> created;
    // Slow start (client-go's slowStartBatch): 1, 2, 4, ... so a failing
    // template costs one request, not hundreds.
    size_t done = 0;
    for (size_t batch = 1; done < n; batch *= 2) {
      size_t count = std::min(batch, n - done);
      bool failed = false;
      parallelFor(count, kWriteThreads, [&](size_t) {
        auto r = ctx_.client.create(client::resources::kPods, ns, pod);
        std::lock_guard lock(mu);
        if (r) {
          created.insert(client::nameOf(*r));
        } else {
          failed = true;
          if (!firstError) firstError = r.error();
        }
      });
      done += count;
      if (failed) break;
    }
    expectCreates(key, created);
  } else if (diff > 0) {
    size_t n = static_cast<size_t>(std::min(diff, kBurstReplicas));
    std::map<std::string, int> perNode;
    for (const auto& p : pods) ++perNode[(*p)["spec"].value("nodeName", "")];
    std::vector<std::pair<DeletionRank, ObjectPtr>> ranked;
    ranked.reserve(pods.size());
    for (const auto& p : pods) ranked.emplace_back(rankOf(*p, perNode), p);
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return deleteBefore(a.first, b.first); });
    std::set<std::string> deleted;
    parallelFor(n, kWriteThreads, [&](size_t i) {
      const Json& p = *ranked[i].second;
      auto r = ctx_.client.remove(client::resources::kPods, ns, client::nameOf(p),
                                Json{{"preconditions", {{"uid", client::uidOf(p)}}}});
      std::lock_guard lock(mu);
      if (r || r.error().code == ErrorCode::kNotFound) {
        deleted.insert(client::keyOf(p));
      } else if (!firstError) {
        firstError = r.error();
      }
    });
    expectDeletes(key, deleted);
  }
  if (firstError) return Error{firstError->code, "replicaset " + key + ": " + firstError->message};
  return okResult();
}

Result<void> ReplicaSetController::updateStatus(const std::string& key, const Json& rs,
                                                const std::vector<ObjectPtr>& pods) {
  int32_t minReady = rs["spec"].value("minReadySeconds", 0);
  const Json& tmplLabels = rs["spec"]["template"].contains("metadata")
                               ? rs["spec"]["template"]["metadata"].value("labels", Json::object())
                               : Json::object();
  TimePoint now = ctx_.clock.now();
  int32_t fullyLabeled = 0;
  int32_t ready = 0;
  int32_t available = 0;
  std::optional<TimePoint> soonest;
  for (const auto& p : pods) {
    const Json& labels = labelsOf(*p);
    bool full = true;
    for (auto it = tmplLabels.begin(); it != tmplLabels.end() && full; ++it) {
      full = labels.contains(it.key()) && labels[it.key()] == it.value();
    }
    if (full) ++fullyLabeled;
    if (podReady(*p)) ++ready;
    std::optional<TimePoint> at;
    if (podAvailable(*p, minReady, now, &at)) {
      ++available;
    } else if (at && (!soonest || *at < *soonest)) {
      soonest = at;
    }
  }
  if (soonest) {
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(*soonest - now);
    enqueueAfter(key, std::clamp(wait, std::chrono::milliseconds(10), std::chrono::milliseconds(kAvailabilityRecheck)));
  }
  auto replicas = static_cast<int32_t>(pods.size());
  int64_t generation = generationOf(rs);
  auto same = [&](const Json& obj) {
    return statusInt(obj, "replicas") == replicas && statusInt(obj, "fullyLabeledReplicas") == fullyLabeled &&
           statusInt(obj, "readyReplicas") == ready && statusInt(obj, "availableReplicas") == available &&
           obj.value("status", Json::object()).value("observedGeneration", int64_t{0}) == generation;
  };
  if (same(rs)) return okResult();
  Json next = rs;
  for (int attempt = 0; attempt < 3; ++attempt) {
    Json& st = next["status"];
    if (!st.is_object()) st = Json::object();
    st["replicas"] = replicas;
    st["fullyLabeledReplicas"] = fullyLabeled;
    st["readyReplicas"] = ready;
    st["availableReplicas"] = available;
    st["observedGeneration"] = generation;
    auto r = ctx_.client.updateStatus(client::resources::kReplicaSets, client::namespaceOf(rs), next);
    if (r || r.error().code == ErrorCode::kNotFound) return okResult();
    if (r.error().code != ErrorCode::kAborted) return r.error();
    // Stale: the spec may have changed too, so only retry with the same
    // generation; otherwise the next reconcile recomputes.
    auto fresh = ctx_.client.get(client::resources::kReplicaSets, client::namespaceOf(rs), client::nameOf(rs));
    if (!fresh) return fresh.error().code == ErrorCode::kNotFound ? okResult() : Result<void>(fresh.error());
    if (client::uidOf(*fresh) != client::uidOf(rs) || generationOf(*fresh) != generation) return r.error();
    if (same(*fresh)) return okResult();
    next = std::move(*fresh);
  }
  return Error::aborted("replicaset " + key + ": status update conflicts");
}

}  // namespace sluice::controllers::workloads
