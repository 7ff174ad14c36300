#include "control/controllers/workloads/deployment_controller.h"

#include <algorithm>

#include "control/controllers/workloads/pod_util.h"
#include "control/controllers/workloads/rollout.h"

namespace sluice::controllers::workloads {
namespace {

using client::Json;
using client::ObjectPtr;

// Longest real-time wait before re-checking a progress deadline: the clock
// may be a ManualClock that a test moves ahead.
constexpr auto kDeadlineRecheck = std::chrono::milliseconds(2000);

bool olderFirst(const Json& a, const Json& b) {
  TimePoint ta = creationTime(a);
  TimePoint tb = creationTime(b);
  if (ta != tb) return ta < tb;
  return client::nameOf(a) < client::nameOf(b);
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

const Json& templateOf(const Json& obj) { return obj["spec"]["template"]; }

}  // namespace

std::vector<const Json*> DeploymentController::State::all() const {
  std::vector<const Json*> out;
  for (const auto& rs : rss) out.push_back(&rs);
  return out;
}

std::vector<size_t> DeploymentController::State::oldIndexes() const {
  std::vector<size_t> out;
  for (size_t i = 0; i < rss.size(); ++i) {
    if (!newRS || *newRS != i) out.push_back(i);
  }
  return out;
}

std::vector<const Json*> DeploymentController::State::olds() const {
  std::vector<const Json*> out;
  for (size_t i : oldIndexes()) out.push_back(&rss[i]);
  return out;
}

DeploymentController::DeploymentController(const ControllerContext& ctx)
    : QueueController(ctx, "deployment"),
      deployments_(ctx.informers.get(client::resources::kDeployments)),
      replicaSets_(ctx.informers.get(client::resources::kReplicaSets)),
      pods_(ctx.informers.get(client::resources::kPods)) {
  auto enqueueD = [this](const ObjectPtr& o) { enqueue(client::keyOf(*o)); };
  deployments_.addHandlers({enqueueD, [this](const ObjectPtr&, const ObjectPtr& o) { enqueue(client::keyOf(*o)); },
                            enqueueD});
  replicaSets_.addHandlers({[this](const ObjectPtr& rs) { enqueueOwner(*rs); },
                            [this](const ObjectPtr& old, const ObjectPtr& cur) {
                              enqueueOwner(*cur);
                              const Json* o = client::controllerRef(*old);
                              const Json* c = client::controllerRef(*cur);
                              if (o != nullptr && (c == nullptr || (*o)["uid"] != (*c)["uid"])) enqueueOwner(*old);
                            },
                            [this](const ObjectPtr& rs) { enqueueOwner(*rs); }});
  // Recreate waits for old pods to be gone.
  pods_.addHandlers({nullptr, nullptr, [this](const ObjectPtr& pod) {
                       const Json* ref = client::controllerRef(*pod);
                       if (ref == nullptr || ref->value("kind", "") != "ReplicaSet") return;
                       ObjectPtr rs = replicaSets_.get(client::namespaceOf(*pod), ref->value("name", ""));
                       if (rs != nullptr) enqueueOwner(*rs);
                     }});
}

void DeploymentController::enqueueOwner(const Json& rs) {
  const Json* ref = client::controllerRef(rs);
  if (ref == nullptr) {
    if (!isDeleting(rs)) enqueueMatching(rs);
    return;
  }
  if (ref->value("kind", "") == "Deployment") enqueue(client::namespaceOf(rs) + "/" + ref->value("name", ""));
}

void DeploymentController::enqueueMatching(const Json& rs) {
  for (const auto& d : deployments_.list(client::namespaceOf(rs))) {
    if (selectorMatches((*d)["spec"].value("selector", Json()), labelsOf(rs))) enqueue(client::keyOf(*d));
  }
}

Result<void> DeploymentController::reconcile(const std::string& key) {
  ObjectPtr dp = deployments_.get(key);
  if (dp == nullptr) return okResult();
  State s;
  s.d = *dp;
  auto rss = claimReplicaSets(s.d);
  if (!rss) return rss.error();
  s.rss = std::move(*rss);
  std::sort(s.rss.begin(), s.rss.end(), olderFirst);
  if (isDeleting(s.d)) return syncStatusOnly(s);
  if (auto r = checkPausedConditions(s); !r) return r;
  if (s.d["spec"].value("paused", false)) return sync(s);
  auto scaling = isScalingEvent(s);
  if (!scaling) return scaling.error();
  if (*scaling) return sync(s);
  if (isRollingUpdate(s.d)) return rolloutRolling(s);
  return rolloutRecreate(s);
}

// controller.ReplicaSetControllerRefManager.ClaimReplicaSets.
Result<std::vector<Json>> DeploymentController::claimReplicaSets(const Json& d) {
  std::string uid = client::uidOf(d);
  std::string ns = client::namespaceOf(d);
  const Json selector = d["spec"].value("selector", Json());
  std::vector<Json> owned;
  std::optional<bool> canAdopt;
  for (const auto& rs : replicaSets_.list(ns)) {
    const Json* ref = client::controllerRef(*rs);
    bool matches = selectorMatches(selector, labelsOf(*rs));
    if (ref != nullptr) {
      if (ref->value("uid", "") != uid) continue;
      if (matches) {
        owned.push_back(*rs);
        continue;
      }
      if (isDeleting(d)) continue;
      Json patch = {{"metadata",
                     {{"ownerReferences", ownerRefsWithout(*rs, uid)},
                      {"resourceVersion", metaOf(*rs).value("resourceVersion", "")}}}};
      auto r = ctx_.client.patch(client::resources::kReplicaSets, ns, client::nameOf(*rs), patch);
      if (!r && r.error().code != ErrorCode::kNotFound) return r.error();
      continue;
    }
    if (!matches || isDeleting(d) || isDeleting(*rs)) continue;
    if (!canAdopt) {
      auto fresh = ctx_.client.get(client::resources::kDeployments, ns, client::nameOf(d));
      if (!fresh && fresh.error().code != ErrorCode::kNotFound) return fresh.error();
      canAdopt = fresh && client::uidOf(*fresh) == uid && !isDeleting(*fresh);
    }
    if (!*canAdopt) continue;
    Json refs = metaOf(*rs).value("ownerReferences", Json::array());
    refs.push_back(controllerRefTo(d, "apps/v1", "Deployment"));
    Json patch = {{"metadata", {{"ownerReferences", refs}, {"resourceVersion", metaOf(*rs).value("resourceVersion", "")}}}};
    auto r = ctx_.client.patch(client::resources::kReplicaSets, ns, client::nameOf(*rs), patch);
    if (!r) {
      if (r.error().code == ErrorCode::kNotFound) continue;
      return r.error();
    }
    // The owner may have been deleted with propagationPolicy=Orphan right
    // after the check above (the server orphans, then deletes): if it is
    // gone now, give the object back at once.
    auto again = ctx_.client.get(client::resources::kDeployments, ns, client::nameOf(d));
    if (!again || client::uidOf(*again) != uid) {
      Json release = {{"metadata", {{"ownerReferences", ownerRefsWithout(*r, uid)},
                                    {"resourceVersion", metaOf(*r).value("resourceVersion", "")}}}};
      (void)ctx_.client.patch(client::resources::kReplicaSets, ns, client::nameOf(*r), release);
      canAdopt = false;
      continue;
    }
    owned.push_back(std::move(*r));
  }
  return owned;
}

// getAllReplicaSetsAndSyncRevision + getNewReplicaSet.
Result<void> DeploymentController::syncRevision(State& s, bool createIfMissing) {
  s.newRS.reset();
  for (size_t i = 0; i < s.rss.size(); ++i) {
    if (equalIgnoreHash(templateOf(s.rss[i]), templateOf(s.d))) {
      s.newRS = i;  // the oldest one, should there be several
      break;
    }
  }
  int64_t newRevision = maxRevision(s.olds()) + 1;
  if (s.newRS) {
    Json copy = s.rss[*s.newRS];
    bool annotationsUpdated = setNewReplicaSetAnnotations(s.d, copy, newRevision, true);
    int32_t minReady = s.d["spec"].value("minReadySeconds", 0);
    if (annotationsUpdated || copy["spec"].value("minReadySeconds", 0) != minReady) {
      copy["spec"]["minReadySeconds"] = minReady;
      auto r = ctx_.client.update(client::resources::kReplicaSets, client::namespaceOf(copy), copy);
      if (!r) return r.error();
      s.rss[*s.newRS] = std::move(*r);
      return okResult();
    }
    if (auto r = setDeploymentRevision(s, annotation(copy, kRevisionAnnotation)); !r) return r;
    if (hasProgressDeadline(s.d) && condition(s.d.value("status", Json::object()), kProgressing) == nullptr) {
      Json status = s.d.value("status", Json::object());
      setCondition(status, newCondition(kProgressing, "True", kFoundNewRSReason,
                                        "Found new replica set " + quoted(client::nameOf(copy)), ctx_.clock.now()));
      return writeStatus(s, status);
    }
    return okResult();
  }
  if (!createIfMissing) return okResult();
  return createNewReplicaSet(s, newRevision);
}

Result<void> DeploymentController::createNewReplicaSet(State& s, int64_t newRevision) {
  const Json& d = s.d;
  std::string ns = client::namespaceOf(d);
  const Json& st = d.value("status", Json::object());
  std::optional<int32_t> collisions;
  if (st.contains("collisionCount")) collisions = st["collisionCount"].get<int32_t>();
  std::string hash = templateHash(templateOf(d), collisions);
  Json tmpl = templateOf(d);
  tmpl["metadata"]["labels"][kPodTemplateHashLabel] = hash;
  Json selector = d["spec"]["selector"];
  selector["matchLabels"][kPodTemplateHashLabel] = hash;
  Json rs = {{"apiVersion", "apps/v1"},
             {"kind", "ReplicaSet"},
             {"metadata",
              {{"name", client::nameOf(d) + "-" + hash},
               {"namespace", ns},
               {"labels", tmpl["metadata"]["labels"]},
               {"ownerReferences", Json::array({controllerRefTo(d, "apps/v1", "Deployment")})}}},
             {"spec",
              {{"replicas", 0},
               {"minReadySeconds", d["spec"].value("minReadySeconds", 0)},
               {"selector", selector},
               {"template", tmpl}}}};
  auto all = s.olds();
  all.push_back(&rs);
  rs["spec"]["replicas"] = newRSNewReplicas(d, all, rs);
  setNewReplicaSetAnnotations(d, rs, newRevision, false);
  bool alreadyExists = false;
  auto created = ctx_.client.create(client::resources::kReplicaSets, ns, rs);
  if (!created && created.error().code == ErrorCode::kAlreadyExists) {
    auto existing = ctx_.client.get(client::resources::kReplicaSets, ns, client::nameOf(rs));
    if (!existing) return existing.error();
    if (controlledBy(*existing, client::uidOf(d)) && equalIgnoreHash(templateOf(d), templateOf(*existing))) {
      alreadyExists = true;
      created = std::move(existing);
    } else {
      // A hash collision: a different template under the same name. Bump
      // collisionCount (a new hash next time) and retry.
      Json status = st;
      status["collisionCount"] = collisions.value_or(0) + 1;
      if (auto r = writeStatus(s, status); !r) return r;
      return Error::aborted("deployment " + client::keyOf(d) + ": hash collision on " + client::nameOf(rs));
    }
  } else if (!created) {
    if (hasProgressDeadline(d)) {
      Json status = st;
      setCondition(status, newCondition(kProgressing, "False", kFailedRSCreateReason,
                                        "Failed to create new replica set " + quoted(client::nameOf(rs)) + ": " +
                                            created.error().message,
                                        ctx_.clock.now()));
      (void)writeStatus(s, status);
    }
    return created.error();
  }
  s.rss.push_back(std::move(*created));
  s.newRS = s.rss.size() - 1;
  if (auto r = setDeploymentRevision(s, std::to_string(newRevision)); !r) return r;
  if (!alreadyExists && hasProgressDeadline(s.d)) {
    Json status = s.d.value("status", Json::object());
    setCondition(status, newCondition(kProgressing, "True", kNewRSReason,
                                      "Created new replica set " + quoted(client::nameOf(s.rss.back())),
                                      ctx_.clock.now()));
    return writeStatus(s, status);
  }
  return okResult();
}

Result<void> DeploymentController::setDeploymentRevision(State& s, const std::string& revision) {
  if (revision.empty() || annotation(s.d, kRevisionAnnotation) == revision) return okResult();
  // Annotations are metadata: a status write would not keep them here.
  Json patch = {{"metadata",
                 {{"annotations", {{kRevisionAnnotation, revision}}},
                  {"resourceVersion", metaOf(s.d).value("resourceVersion", "")}}}};
  auto r = ctx_.client.patch(client::resources::kDeployments, client::namespaceOf(s.d), client::nameOf(s.d), patch);
  if (!r) return r.error();
  s.d = std::move(*r);
  return okResult();
}

Result<bool> DeploymentController::scaleReplicaSet(State& s, size_t idx, int32_t replicas) {
  Json copy = s.rss[idx];
  bool sizeChanged = specReplicas(copy) != replicas;
  int32_t desired = specReplicas(s.d);
  bool annotationsChanged = setReplicasAnnotations(copy, desired, desired + maxSurge(s.d));
  if (!sizeChanged && !annotationsChanged) return false;
  copy["spec"]["replicas"] = replicas;
  auto r = ctx_.client.update(client::resources::kReplicaSets, client::namespaceOf(copy), copy);
  if (!r) return r.error();
  s.rss[idx] = std::move(*r);
  return sizeChanged;
}

// DeploymentController.scale: proportional scaling across ReplicaSets.
Result<void> DeploymentController::scale(State& s) {
  int32_t desired = specReplicas(s.d);
  std::vector<size_t> active;
  for (size_t i = 0; i < s.rss.size(); ++i) {
    if (specReplicas(s.rss[i]) > 0) active.push_back(i);
  }
  // FindActiveOrLatest: one active (or none) gets the full count.
  std::optional<size_t> only;
  if (active.size() == 1) {
    only = active[0];
  } else if (active.empty() && !s.rss.empty()) {
    only = s.newRS ? *s.newRS : s.oldIndexes().empty() ? 0 : s.oldIndexes().back();
  }
  if (only) {
    if (specReplicas(s.rss[*only]) == desired) return okResult();
    auto r = scaleReplicaSet(s, *only, desired);
    return r ? okResult() : Result<void>(r.error());
  }
  if (active.empty()) return okResult();
  // Saturated new ReplicaSet: old ones go to zero.
  if (s.newRS) {
    const Json& n = s.rss[*s.newRS];
    if (annotation(n, kDesiredReplicasAnnotation) == std::to_string(desired) && specReplicas(n) == desired &&
        statusInt(n, "availableReplicas") == desired) {
      for (size_t i : active) {
        if (i == *s.newRS) continue;
        if (auto r = scaleReplicaSet(s, i, 0); !r) return r.error();
      }
      return okResult();
    }
  }
  if (!isRollingUpdate(s.d)) return okResult();
  std::vector<const Json*> activePtrs;
  for (size_t i : active) activePtrs.push_back(&s.rss[i]);
  int32_t current = sumSpecReplicas(activePtrs);
  int32_t allowed = desired > 0 ? desired + maxSurge(s.d) : 0;
  int32_t toAdd = allowed - current;
  // Larger first; ties newer first when adding, older first when removing.
  std::sort(active.begin(), active.end(), [&](size_t a, size_t b) {
    int32_t ra = specReplicas(s.rss[a]);
    int32_t rb = specReplicas(s.rss[b]);
    if (ra != rb) return ra > rb;
    return toAdd > 0 ? olderFirst(s.rss[b], s.rss[a]) : olderFirst(s.rss[a], s.rss[b]);
  });
  std::vector<int32_t> sizes;
  int32_t added = 0;
  for (size_t i : active) {
    int32_t p = toAdd != 0 ? proportion(s.rss[i], s.d, toAdd, added) : 0;
    sizes.push_back(specReplicas(s.rss[i]) + p);
    added += p;
  }
  for (size_t j = 0; j < active.size(); ++j) {
    if (j == 0 && toAdd != 0) sizes[0] = std::max(0, sizes[0] + toAdd - added);
    if (auto r = scaleReplicaSet(s, active[j], sizes[j]); !r) return r.error();
  }
  return okResult();
}

Result<bool> DeploymentController::isScalingEvent(State& s) {
  if (auto r = syncRevision(s, false); !r) return r.error();
  std::string desired = std::to_string(specReplicas(s.d));
  for (const Json* rs : activeReplicaSets(s.all())) {
    std::string a = annotation(*rs, kDesiredReplicasAnnotation);
    if (!a.empty() && a != desired) return true;
  }
  return false;
}

Result<void> DeploymentController::sync(State& s) {
  if (auto r = syncRevision(s, false); !r) return r;
  if (auto r = scale(s); !r) return r;
  if (s.d["spec"].value("paused", false)) {
    if (auto r = cleanup(s); !r) return r;
  }
  return syncStatusOnly(s);
}

Result<void> DeploymentController::cleanup(State& s) {
  auto limitIt = s.d["spec"].find("revisionHistoryLimit");
  if (limitIt == s.d["spec"].end() || !limitIt->is_number_integer()) return okResult();
  auto limit = limitIt->get<int32_t>();
  std::vector<const Json*> cleanable;
  for (const Json* rs : s.olds()) {
    if (!isDeleting(*rs)) cleanable.push_back(rs);
  }
  int diff = static_cast<int>(cleanable.size()) - limit;
  if (diff <= 0) return okResult();
  std::sort(cleanable.begin(), cleanable.end(), [](const Json* a, const Json* b) {
    if (revisionOf(*a) != revisionOf(*b)) return revisionOf(*a) < revisionOf(*b);
    return olderFirst(*a, *b);
  });
  for (int i = 0; i < diff; ++i) {
    const Json& rs = *cleanable[static_cast<size_t>(i)];
    if (statusInt(rs, "replicas") != 0 || specReplicas(rs) != 0 ||
        generationOf(rs) > rs.value("status", Json::object()).value("observedGeneration", int64_t{0})) {
      continue;
    }
    auto r = ctx_.client.remove(client::resources::kReplicaSets, client::namespaceOf(rs), client::nameOf(rs),
                                Json{{"preconditions", {{"uid", client::uidOf(rs)}}}});
    if (!r && r.error().code != ErrorCode::kNotFound && r.error().code != ErrorCode::kAborted) return r.error();
  }
  return okResult();
}

Result<void> DeploymentController::rolloutRolling(State& s) {
  if (auto r = syncRevision(s, true); !r) return r;
  if (!s.newRS) return Error::internal("deployment " + client::keyOf(s.d) + ": no new replica set");
  size_t n = *s.newRS;
  int32_t desired = specReplicas(s.d);
  Result<bool> scaledUp = false;
  if (specReplicas(s.rss[n]) > desired) {
    scaledUp = scaleReplicaSet(s, n, desired);
  } else if (specReplicas(s.rss[n]) < desired) {
    scaledUp = scaleReplicaSet(s, n, newRSNewReplicas(s.d, s.all(), s.rss[n]));
  }
  if (!scaledUp) return scaledUp.error();
  if (*scaledUp) return syncRolloutStatus(s);
  auto scaledDown = reconcileOldReplicaSets(s);
  if (!scaledDown) return scaledDown.error();
  if (*scaledDown) return syncRolloutStatus(s);
  if (deploymentComplete(s.d, s.d.value("status", Json::object()))) {
    if (auto r = cleanup(s); !r) return r;
  }
  return syncRolloutStatus(s);
}

Result<bool> DeploymentController::reconcileOldReplicaSets(State& s) {
  std::vector<size_t> olds;
  for (size_t i : s.oldIndexes()) {
    if (specReplicas(s.rss[i]) > 0) olds.push_back(i);
  }
  if (olds.empty()) return false;
  const Json& n = s.rss[*s.newRS];
  int32_t allPods = sumSpecReplicas(s.all());
  int32_t minAvailable = specReplicas(s.d) - maxUnavailable(s.d);
  int32_t newUnavailable = specReplicas(n) - statusInt(n, "availableReplicas");
  int32_t maxScaledDown = allPods - minAvailable - newUnavailable;
  if (maxScaledDown <= 0) return false;
  std::sort(olds.begin(), olds.end(), [&](size_t a, size_t b) { return olderFirst(s.rss[a], s.rss[b]); });
  // Unhealthy replicas first, or they would block the rollout.
  int32_t cleaned = 0;
  for (size_t i : olds) {
    if (cleaned >= maxScaledDown) break;
    int32_t size = specReplicas(s.rss[i]);
    int32_t avail = statusInt(s.rss[i], "availableReplicas");
    if (size == 0 || size == avail) continue;
    int32_t down = std::min(maxScaledDown - cleaned, size - avail);
    if (auto r = scaleReplicaSet(s, i, size - down); !r) return r.error();
    cleaned += down;
  }
  // Then as far as availability allows.
  int32_t available = sumStatus(s.all(), "availableReplicas");
  int32_t scaled = 0;
  if (available > minAvailable) {
    int32_t total = available - minAvailable;
    for (size_t i : olds) {
      if (scaled >= total) break;
      int32_t size = specReplicas(s.rss[i]);
      if (size == 0) continue;
      int32_t down = std::min(size, total - scaled);
      if (auto r = scaleReplicaSet(s, i, size - down); !r) return r.error();
      scaled += down;
    }
  }
  return cleaned + scaled > 0;
}

bool DeploymentController::oldPodsRunning(const State& s) {
  if (sumStatus(s.olds(), "replicas") > 0) return true;
  std::set<std::string> oldUids;
  for (const Json* rs : s.olds()) oldUids.insert(client::uidOf(*rs));
  for (const auto& pod : pods_.list(client::namespaceOf(s.d))) {
    const Json* ref = client::controllerRef(*pod);
    if (ref == nullptr || oldUids.count(ref->value("uid", "")) == 0) continue;
    std::string phase = (*pod).value("status", Json::object()).value("phase", "");
    if (phase != "Failed" && phase != "Succeeded") return true;
  }
  return false;
}

Result<void> DeploymentController::rolloutRecreate(State& s) {
  if (auto r = syncRevision(s, false); !r) return r;
  bool scaledDown = false;
  for (size_t i : s.oldIndexes()) {
    if (specReplicas(s.rss[i]) == 0) continue;
    auto r = scaleReplicaSet(s, i, 0);
    if (!r) return r.error();
    scaledDown = scaledDown || *r;
  }
  if (scaledDown || oldPodsRunning(s)) return syncRolloutStatus(s);
  if (!s.newRS) {
    if (auto r = syncRevision(s, true); !r) return r;
    if (!s.newRS) return Error::internal("deployment " + client::keyOf(s.d) + ": no new replica set");
  }
  if (auto r = scaleReplicaSet(s, *s.newRS, specReplicas(s.d)); !r) return r.error();
  if (deploymentComplete(s.d, s.d.value("status", Json::object()))) {
    if (auto r = cleanup(s); !r) return r;
  }
  return syncRolloutStatus(s);
}

Result<void> DeploymentController::checkPausedConditions(State& s) {
  if (!hasProgressDeadline(s.d)) return okResult();
  Json status = s.d.value("status", Json::object());
  const Json* cond = condition(status, kProgressing);
  if (cond != nullptr && cond->value("reason", "") == kTimedOutReason) return okResult();
  bool pausedCond = cond != nullptr && cond->value("reason", "") == kPausedReason;
  bool paused = s.d["spec"].value("paused", false);
  if (paused && !pausedCond) {
    setCondition(status, newCondition(kProgressing, "Unknown", kPausedReason, "Deployment is paused", ctx_.clock.now()));
  } else if (!paused && pausedCond) {
    setCondition(status,
                 newCondition(kProgressing, "Unknown", kResumedReason, "Deployment is resumed", ctx_.clock.now()));
  } else {
    return okResult();
  }
  return writeStatus(s, status);
}

Result<void> DeploymentController::syncRolloutStatus(State& s) {
  TimePoint now = ctx_.clock.now();
  const Json* n = s.newPtr();
  Json status = calculateStatus(s.d, s.all(), n, now);
  const Json& oldStatus = s.d.value("status", Json::object());
  if (!hasProgressDeadline(s.d)) removeCondition(status, kProgressing);
  const Json* cur = condition(oldStatus, kProgressing);
  bool complete = status.value("replicas", 0) == status.value("updatedReplicas", 0) && cur != nullptr &&
                  cur->value("reason", "") == kNewRSAvailableReason;
  std::string subject = n != nullptr ? "ReplicaSet " + quoted(client::nameOf(*n)) : "Deployment " + quoted(client::nameOf(s.d));
  if (hasProgressDeadline(s.d) && !complete) {
    if (deploymentComplete(s.d, status)) {
      setCondition(status, newCondition(kProgressing, "True", kNewRSAvailableReason,
                                        subject + " has successfully progressed.", now));
    } else if (deploymentProgressing(s.d, status)) {
      Json c = newCondition(kProgressing, "True", kRSUpdatedReason, subject + " is progressing.", now);
      if (cur != nullptr) {
        if (cur->value("status", "") == "True") c["lastTransitionTime"] = cur->value("lastTransitionTime", "");
        removeCondition(status, kProgressing);
      }
      setCondition(status, c);
    } else if (deploymentTimedOut(s.d, status, now)) {
      setCondition(status,
                   newCondition(kProgressing, "False", kTimedOutReason, subject + " has timed out progressing.", now));
    }
  }
  removeCondition(status, kReplicaFailure);
  // Re-check a pending deadline later (requeueStuckDeployment).
  const Json* pc = condition(oldStatus, kProgressing);
  if (hasProgressDeadline(s.d) && pc != nullptr && !deploymentComplete(s.d, status) &&
      pc->value("reason", "") != kTimedOutReason) {
    if (auto from = parseRfc3339(pc->value("lastUpdateTime", ""))) {
      auto due = *from + std::chrono::seconds(s.d["spec"].value("progressDeadlineSeconds", 600)) - now;
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(due) + std::chrono::seconds(1);
      enqueueAfter(client::keyOf(s.d), std::clamp(wait, std::chrono::milliseconds(10), kDeadlineRecheck));
    }
  }
  if (sameStatus(oldStatus, status)) return okResult();
  return writeStatus(s, status);
}

Result<void> DeploymentController::syncStatusOnly(State& s) {
  if (auto r = syncRevision(s, false); !r) return r;
  Json status = calculateStatus(s.d, s.all(), s.newPtr(), ctx_.clock.now());
  if (sameStatus(s.d.value("status", Json::object()), status)) return okResult();
  return writeStatus(s, status);
}

Result<void> DeploymentController::writeStatus(State& s, const Json& status) {
  Json obj = s.d;
  obj["status"] = status;
  auto r = ctx_.client.updateStatus(client::resources::kDeployments, client::namespaceOf(obj), obj);
  if (!r) return r.error().code == ErrorCode::kNotFound ? okResult() : Result<void>(r.error());
  s.d = std::move(*r);
  return okResult();
}

}  // namespace sluice::controllers::workloads
