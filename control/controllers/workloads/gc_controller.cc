#include "control/controllers/workloads/gc_controller.h"

#include <algorithm>

#include "control/controllers/workloads/pod_util.h"

namespace sluice::controllers::workloads {
namespace {

using client::Json;
using client::ObjectPtr;

std::vector<std::string> ownerUids(const ObjectPtr& obj) {
  std::vector<std::string> out;
  if (obj == nullptr) return out;
  const Json& m = metaOf(*obj);
  if (auto refs = m.find("ownerReferences"); refs != m.end() && refs->is_array()) {
    for (const auto& r : *refs) out.push_back(r.value("uid", ""));
  }
  return out;
}

const Json* refTo(const Json& obj, const std::string& uid) {
  const Json& m = metaOf(obj);
  if (auto refs = m.find("ownerReferences"); refs != m.end() && refs->is_array()) {
    for (const auto& r : *refs) {
      if (r.value("uid", "") == uid) return &r;
    }
  }
  return nullptr;
}

// What the garbage collector reacts to on an update.
bool gcRelevantChange(const Json& a, const Json& b) {
  const Json& ma = metaOf(a);
  const Json& mb = metaOf(b);
  for (const char* f : {"ownerReferences", "deletionTimestamp", "finalizers"}) {
    if (ma.value(f, Json()) != mb.value(f, Json())) return true;
  }
  return false;
}

}  // namespace

GarbageCollector::GarbageCollector(const ControllerContext& ctx) : QueueController(ctx, "garbagecollector") {
  const std::vector<std::pair<const client::Resource*, std::string>> served = {
      {&client::resources::kPods, "Pod"},
      {&client::resources::kReplicaSets, "ReplicaSet"},
      {&client::resources::kDeployments, "Deployment"},
      {&client::resources::kServices, "Service"},
      {&client::resources::kEndpointSlices, "EndpointSlice"},
  };
  for (const auto& [r, kind] : served) kinds_.push_back({r, r->apiVersion(), kind, &ctx.informers.get(*r)});
  for (size_t k = 0; k < kinds_.size(); ++k) {
    kinds_[k].informer->addHandlers(
        {[this, k](const ObjectPtr& o) {
           index(k, nullptr, o);
           enqueue(keyFor(k, *o));
         },
         [this, k](const ObjectPtr& old, const ObjectPtr& cur) {
           index(k, old, cur);
           if (!gcRelevantChange(*old, *cur)) return;
           enqueue(keyFor(k, *cur));
           // Owners waiting on this object, and its dependents (it may have
           // started a foreground deletion they must follow).
           for (const auto& [dk, dep] : dependentsOf(client::uidOf(*cur))) enqueue(keyFor(dk, *dep));
         },
         [this, k](const ObjectPtr& o) {
           index(k, o, nullptr);
           for (const auto& [dk, dep] : dependentsOf(client::uidOf(*o))) enqueue(keyFor(dk, *dep));
           const Json& m = metaOf(*o);
           if (auto refs = m.find("ownerReferences"); refs != m.end() && refs->is_array()) {
             for (const auto& r : *refs) {
               const Kind* ok = kindOf(r.value("apiVersion", ""), r.value("kind", ""));
               if (ok == nullptr) continue;
               auto idx = static_cast<size_t>(ok - kinds_.data());
               enqueue(std::to_string(idx) + "|" + client::namespaceOf(*o) + "/" + r.value("name", ""));
             }
           }
         }});
  }
}

std::string GarbageCollector::keyFor(size_t kind, const Json& obj) const {
  return std::to_string(kind) + "|" + client::keyOf(obj);
}

const GarbageCollector::Kind* GarbageCollector::kindOf(const std::string& apiVersion, const std::string& kind) const {
  for (const auto& k : kinds_) {
    if (k.apiVersion == apiVersion && k.kind == kind) return &k;
  }
  return nullptr;
}

void GarbageCollector::index(size_t kind, const ObjectPtr& old, const ObjectPtr& cur) {
  auto before = ownerUids(old);
  auto after = ownerUids(cur);
  if (before == after) return;
  std::string key = keyFor(kind, old != nullptr ? *old : *cur);
  std::lock_guard lock(mu_);
  for (const auto& uid : before) {
    auto it = dependents_.find(uid);
    if (it == dependents_.end()) continue;
    it->second.erase(key);
    if (it->second.empty()) dependents_.erase(it);
  }
  for (const auto& uid : after) dependents_[uid].insert(key);
}

std::vector<std::pair<size_t, ObjectPtr>> GarbageCollector::dependentsOf(const std::string& uid) {
  std::set<std::string> keys;
  {
    std::lock_guard lock(mu_);
    auto it = dependents_.find(uid);
    if (it == dependents_.end()) return {};
    keys = it->second;
  }
  std::vector<std::pair<size_t, ObjectPtr>> out;
  for (const auto& key : keys) {
    size_t bar = key.find('|');
    size_t k = std::stoul(key.substr(0, bar));
    ObjectPtr o = kinds_[k].informer->get(key.substr(bar + 1));
    if (o != nullptr && refTo(*o, uid) != nullptr) out.emplace_back(k, std::move(o));
  }
  return out;
}

Result<void> GarbageCollector::reconcile(const std::string& key) {
  size_t bar = key.find('|');
  if (bar == std::string::npos) return okResult();
  size_t k = std::stoul(key.substr(0, bar));
  ObjectPtr obj = kinds_[k].informer->get(key.substr(bar + 1));
  if (obj == nullptr) return okResult();
  if (isDeleting(*obj)) {
    if (hasFinalizer(*obj, kForegroundFinalizer)) return processDeletingDependents(k, *obj);
    return okResult();
  }
  if (ownerUids(obj).empty()) return okResult();
  return attemptToDelete(k, *obj);
}

Result<GarbageCollector::OwnerState::State> GarbageCollector::ownerState(const std::string& ns, const Json& ref) {
  using State = OwnerState::State;
  std::string uid = ref.value("uid", "");
  std::string name = ref.value("name", "");
  {
    std::lock_guard lock(mu_);
    if (absent_.count(uid) != 0) return State::kDangling;
  }
  auto classify = [&](const Json& owner) {
    return isDeleting(owner) && hasFinalizer(owner, kForegroundFinalizer) ? State::kWaiting : State::kSolid;
  };
  const Kind* kind = kindOf(ref.value("apiVersion", ""), ref.value("kind", ""));
  // Kinds this collector does not watch are left alone.
  if (kind == nullptr) return State::kSolid;
  ObjectPtr cached = kind->informer->get(ns, name);
  if (cached != nullptr && client::uidOf(*cached) == uid) return classify(*cached);
  // The cache may lag (an owner created a moment ago): ask the server.
  auto live = ctx_.client.get(*kind->resource, ns, name);
  if (live && client::uidOf(*live) == uid) return classify(*live);
  if (!live && live.error().code != ErrorCode::kNotFound) return live.error();
  std::lock_guard lock(mu_);
  absent_.insert(uid);
  return State::kDangling;
}

Result<void> GarbageCollector::attemptToDelete(size_t k, const Json& cached) {
  using State = OwnerState::State;
  std::string ns = client::namespaceOf(cached);
  std::vector<std::string> solid;
  std::vector<std::string> gone;  // dangling or waiting for dependents
  bool waiting = false;
  auto classify = [&](const Json& o) -> Result<void> {
    solid.clear();
    gone.clear();
    waiting = false;
    for (const auto& ref : metaOf(o).value("ownerReferences", Json::array())) {
      auto st = ownerState(ns, ref);
      if (!st) return st.error();
      std::string uid = ref.value("uid", "");
      if (*st == State::kSolid) {
        solid.push_back(uid);
      } else {
        gone.push_back(uid);
        waiting = waiting || *st == State::kWaiting;
      }
    }
    return okResult();
  };
  if (auto r = classify(cached); !r) return r;
  if (gone.empty()) return okResult();
  // Act only on the live object: the cache may still show references the
  // server already removed (an orphaning delete of the owner).
  auto live = ctx_.client.get(*kinds_[k].resource, ns, client::nameOf(cached));
  if (!live) return live.error().code == ErrorCode::kNotFound ? okResult() : Result<void>(live.error());
  if (client::uidOf(*live) != client::uidOf(cached) || isDeleting(*live)) return okResult();
  const Json& obj = *live;
  if (auto r = classify(obj); !r) return r;
  if (solid.empty() && gone.empty()) return okResult();
  if (!solid.empty()) {
    if (gone.empty()) return okResult();
    // Still owned by someone alive: drop only the references to the others.
    Json refs = Json::array();
    for (const auto& r : metaOf(obj)["ownerReferences"]) {
      if (std::find(gone.begin(), gone.end(), r.value("uid", "")) == gone.end()) refs.push_back(r);
    }
    Json patch = {{"metadata", {{"ownerReferences", refs}, {"resourceVersion", metaOf(obj).value("resourceVersion", "")}}}};
    auto r = ctx_.client.patch(*kinds_[k].resource, ns, client::nameOf(obj), patch);
    if (!r && r.error().code != ErrorCode::kNotFound) return r.error();
    return okResult();
  }
  if (waiting && !dependentsOf(client::uidOf(obj)).empty()) return deleteObject(k, obj, "Foreground");
  return deleteObject(k, obj, hasFinalizer(obj, kForegroundFinalizer) ? "Foreground" : "Background");
}

Result<void> GarbageCollector::processDeletingDependents(size_t k, const Json& obj) {
  std::string uid = client::uidOf(obj);
  bool blocked = false;
  for (const auto& [dk, dep] : dependentsOf(uid)) {
    const Json* ref = refTo(*dep, uid);
    if (ref != nullptr && ref->value("blockOwnerDeletion", false)) blocked = true;
    if (!isDeleting(*dep)) enqueue(keyFor(dk, *dep));
  }
  if (blocked) return okResult();  // dependents' deletions re-queue this owner
  return removeFinalizer(k, obj);
}

Result<void> GarbageCollector::removeFinalizer(size_t k, const Json& obj) {
  Json finalizers = Json::array();
  for (const auto& f : metaOf(obj).value("finalizers", Json::array())) {
    if (f != kForegroundFinalizer) finalizers.push_back(f);
  }
  Json patch = {{"metadata", {{"finalizers", finalizers}, {"resourceVersion", metaOf(obj).value("resourceVersion", "")}}}};
  auto r = ctx_.client.patch(*kinds_[k].resource, client::namespaceOf(obj), client::nameOf(obj), patch);
  if (!r && r.error().code != ErrorCode::kNotFound) return r.error();
  return okResult();
}

Result<void> GarbageCollector::deleteObject(size_t k, const Json& obj, const std::string& policy) {
  Json opts = {{"propagationPolicy", policy}, {"preconditions", {{"uid", client::uidOf(obj)}}}};
  auto r = ctx_.client.remove(*kinds_[k].resource, client::namespaceOf(obj), client::nameOf(obj), opts);
  // Gone already, or replaced by a new object of the same name (uid
  // precondition): nothing to collect.
  if (!r && r.error().code != ErrorCode::kNotFound && r.error().code != ErrorCode::kAborted) return r.error();
  return okResult();
}

}  // namespace sluice::controllers::workloads
