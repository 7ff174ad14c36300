// delete and deletecollection: finalizers, deletionTimestamp, propagation
// policy, namespace contents.
#include <algorithm>
#include "control/util/rfc3339.h"
#include <chrono>
#include <cstdlib>

#include "control/api/object_meta.h"
#include "control/api/proto/core.pb.h"
#include "control/api/selector.h"
#include "control/api/time_util.h"
#include "control/server/rest_handler.h"

namespace sluice::server {
namespace {

namespace pb = google::protobuf;

constexpr int kDeleteAttempts = 16;
constexpr std::string_view kForegroundFinalizer = "foregroundDeletion";
// Kubernetes' finalizer of an owner whose dependents are being orphaned.
constexpr std::string_view kOrphanFinalizer = "orphan";

// Namespaces the cluster itself needs (Kubernetes refuses to delete them).
bool protectedNamespace(const std::string& name) {
  return name == "default" || name == "kube-system" || name == "kube-public" || name == "kube-node-lease";
}

struct DeleteParams {
  std::string policy = "Background";
  std::optional<std::string> uid;
  std::optional<std::string> resourceVersion;
};

std::variant<DeleteParams, Response> parseDeleteParams(const HttpRequest& http) {
  DeleteParams p;
  std::optional<std::string> policy;
  if (!http.body.empty()) {
    auto body = api::parseJson(http.body);
    if (!body) return badRequest(body.error().message);
    api::DeleteOptions opts;
    if (auto r = api::decodeJson(*body, opts, nullptr); !r) {
      return badRequest("DeleteOptions in version \"v1\" cannot be handled as a DeleteOptions: " + r.error().message);
    }
    if (opts.has_propagationpolicy()) policy = opts.propagationpolicy();
    if (opts.has_orphandependents() && !policy) policy = opts.orphandependents() ? "Orphan" : "Background";
    if (opts.has_preconditions()) {
      if (opts.preconditions().has_uid()) p.uid = opts.preconditions().uid();
      if (opts.preconditions().has_resourceversion()) p.resourceVersion = opts.preconditions().resourceversion();
    }
  }
  if (std::string q = http.queryParam("propagationPolicy"); !q.empty()) policy = q;
  if (std::string q = http.queryParam("orphanDependents"); !q.empty() && !policy) {
    policy = q == "true" ? "Orphan" : "Background";
  }
  if (policy) {
    if (*policy != "Orphan" && *policy != "Background" && *policy != "Foreground") {
      return statusResponse(422, "Invalid",
                            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"" +
                                *policy + "\": supported values: \"Foreground\", \"Background\", \"Orphan\"");
    }
    p.policy = *policy;
  }
  return p;
}

// gracePeriodSeconds from DeleteOptions (body) or the query; nullopt when
// the request does not say (the object's default applies).
std::optional<int64_t> requestedGracePeriod(const HttpRequest& http) {
  std::optional<int64_t> grace;
  if (!http.body.empty()) {
    auto body = api::parseJson(http.body);
    api::DeleteOptions opts;
    if (body && api::decodeJson(*body, opts, nullptr) && opts.has_graceperiodseconds()) {
      grace = opts.graceperiodseconds();
    }
  }
  if (std::string q = http.queryParam("gracePeriodSeconds"); !q.empty()) {
    char* end = nullptr;
    long long v = std::strtoll(q.c_str(), &end, 10);
    if (end != nullptr && *end == '\0') grace = v;
  }
  return grace;
}

// Graceful pod deletion (Kubernetes' CheckGracefulDelete): a pod bound to a
// node is only marked (deletionTimestamp = now + grace) so its node agent
// can stop the containers, then removes it with grace 0. Unbound and
// terminal pods, and grace 0, delete at once. Returns the grace to apply,
// or nullopt to delete now.
std::optional<int64_t> podGracePeriod(const api::Pod& pod, const HttpRequest& http) {
  if (pod.spec().nodename().empty()) return std::nullopt;
  if (pod.status().phase() == "Succeeded" || pod.status().phase() == "Failed") return std::nullopt;
  int64_t grace = pod.spec().has_terminationgraceperiodseconds() ? pod.spec().terminationgraceperiodseconds() : 30;
  if (auto requested = requestedGracePeriod(http)) grace = *requested;
  if (grace <= 0) return std::nullopt;
  return grace;
}

bool ownedBy(const api::ObjectMeta& m, const std::string& uid) {
  return std::any_of(m.ownerreferences().begin(), m.ownerreferences().end(),
                     [&](const api::OwnerReference& o) { return o.uid() == uid; });
}

}  // namespace

bool RestHandler::hasDependents(const std::string& ns, const std::string& uid) {
  for (const auto& t : api::Registry::builtin().all()) {
    if (!t->namespaced) continue;
    auto page = objects_.raw().list(ObjectStore::prefix(*t, ns));
    if (!page) continue;
    for (const auto& kv : page->kvs) {
      auto o = objects_.decode(*t, kv);
      if (o && ownedBy(api::meta(*o->msg), uid)) return true;
    }
  }
  return false;
}

Result<void> RestHandler::orphanDependents(const std::string& ns, const std::string& uid) {
  for (const auto& t : api::Registry::builtin().all()) {
    if (!t->namespaced) continue;
    auto page = objects_.raw().list(ObjectStore::prefix(*t, ns));
    if (!page) return page.error();
    for (const auto& kv : page->kvs) {
      bool done = false;
      for (int attempt = 0; attempt < kDeleteAttempts && !done; ++attempt) {
        auto stored = objects_.raw().get(kv.key);
        if (!stored) return stored.error();
        if (!stored->has_value()) break;
        auto o = objects_.decode(*t, **stored);
        if (!o) return o.error();
        api::ObjectMeta& m = api::mutableMeta(*o->msg);
        if (!ownedBy(m, uid)) break;
        auto* refs = m.mutable_ownerreferences();
        refs->erase(std::remove_if(refs->begin(), refs->end(),
                                   [&](const api::OwnerReference& r) { return r.uid() == uid; }),
                    refs->end());
        auto r = objects_.update(*t, *o->msg, o->modRevision);
        if (r) done = true;
        if (!r && r.error().code != ErrorCode::kAborted) return r.error();
        if (!r && attempt + 1 == kDeleteAttempts) {
          // Never delete the owner of a dependent still pointing at it: the
          // collector would take the dependent, which the caller asked to keep.
          return Error{ErrorCode::kAborted, "could not orphan " + std::string(kv.key) + ": it kept changing"};
        }
      }
    }
  }
  return okResult();
}

Response RestHandler::deleteNamespaceContents(const std::string& ns) {
  for (const auto& t : api::Registry::builtin().all()) {
    if (!t->namespaced) continue;
    auto page = objects_.raw().list(ObjectStore::prefix(*t, ns));
    if (!page) return fromError(page.error(), t.get(), "");
    for (const auto& kv : page->kvs) {
      auto removed = objects_.raw().remove(kv.key, 0);
      if (!removed) {
        if (removed.error().code == ErrorCode::kNotFound) continue;
        return fromError(removed.error(), t.get(), "");
      }
      if (t->kind == "Service") {
        auto o = objects_.decode(*t, *removed);
        if (o) services_.release(static_cast<const api::Service&>(*o->msg));
      }
    }
  }
  return Response{};
}

std::optional<Response> RestHandler::deleteOne(const ResourceRequest& req, const ObjectStore::Object& current,
                                               const std::string& policy, bool dryRun, bool returnStatus) {
  const api::ResourceType& t = *req.type;
  const api::ObjectMeta& cm = api::meta(*current.msg);
  const std::string name = cm.name();
  OutputFormat fmt = negotiateOutput(*req.http);
  if (t.kind == "Namespace" && protectedNamespace(name)) {
    return forbidden(t, name, "this namespace may not be deleted");
  }
  std::unique_ptr<pb::Message> next(current.msg->New());
  next->CopyFrom(*current.msg);
  api::ObjectMeta& m = api::mutableMeta(*next);
  // An orphaning delete that failed half-way left its finalizer on the
  // owner: this delete takes over (and orphans again if it asks to).
  if (!m.deletiontimestamp().empty()) {
    auto* finalizers = m.mutable_finalizers();
    finalizers->erase(std::remove(finalizers->begin(), finalizers->end(), std::string(kOrphanFinalizer)),
                      finalizers->end());
  }
  bool foreground = policy == "Foreground";
  bool hasForegroundFinalizer =
      std::find(m.finalizers().begin(), m.finalizers().end(), kForegroundFinalizer) != m.finalizers().end();

  std::optional<int64_t> podGrace;
  if (t.kind == "Pod") podGrace = podGracePeriod(static_cast<const api::Pod&>(*current.msg), *req.http);
  // A terminating pod: a shorter grace period moves the deadline closer;
  // grace 0 (its agent is done) removes it, or with finalizers left marks it
  // to go with the last one, as in Kubernetes.
  const bool podShortens = t.kind == "Pod" && !m.deletiontimestamp().empty() &&
                           podGrace.value_or(0) < m.deletiongraceperiodseconds();
  if (podShortens && (podGrace || !m.finalizers().empty())) {
    const int64_t grace = podGrace.value_or(0);
    m.set_deletiontimestamp(util::formatRfc3339(api::Clock::now() + std::chrono::seconds(grace)));
    m.set_deletiongraceperiodseconds(grace);
    if (dryRun) return Response::json(200, renderObject(t, *next, fmt));
    auto r = objects_.update(t, *next, current.modRevision);
    if (!r) return r.error().code == ErrorCode::kAborted ? std::nullopt : std::optional(fromError(r.error(), &t, name));
    return Response::json(200, renderObject(t, *next, fmt));
  } else if (!podShortens && !m.deletiontimestamp().empty()) {
    // Already terminating: only a foreground request still changes it.
    if (!foreground || hasForegroundFinalizer || dryRun) return Response::json(200, renderObject(t, *current.msg, fmt));
    m.add_finalizers(std::string(kForegroundFinalizer));
    auto r = objects_.update(t, *next, current.modRevision);
    if (!r) return r.error().code == ErrorCode::kAborted ? std::nullopt : std::optional(fromError(r.error(), &t, name));
    return Response::json(200, renderObject(t, *next, fmt));
  }

  // A bound, running pod (graceful deletion): marked for its agent, with or
  // without finalizers; the agent's grace-0 delete finishes it.
  if (podGrace && m.deletiontimestamp().empty()) {
    m.set_deletiontimestamp(util::formatRfc3339(api::Clock::now() + std::chrono::seconds(*podGrace)));
    m.set_deletiongraceperiodseconds(*podGrace);
    m.set_generation(m.generation() + 1);
    if (dryRun) return Response::json(200, renderObject(t, *next, fmt));
    auto r = objects_.update(t, *next, current.modRevision);
    if (!r) return r.error().code == ErrorCode::kAborted ? std::nullopt : std::optional(fromError(r.error(), &t, name));
    return Response::json(200, renderObject(t, *next, fmt));
  }
  // Foreground deletion waits for dependents (removed by the garbage
  // collector); with none, there is nothing to wait for.
  bool waitForDependents = foreground && hasDependents(cm.namespace_(), cm.uid());
  if (!m.finalizers().empty() || waitForDependents) {
    m.set_deletiontimestamp(api::nowTime());
    m.set_deletiongraceperiodseconds(0);
    if (waitForDependents && !hasForegroundFinalizer) m.add_finalizers(std::string(kForegroundFinalizer));
    m.set_generation(m.generation() + 1);
    if (dryRun) return Response::json(200, renderObject(t, *next, fmt));
    if (policy == "Orphan") {
      if (auto r = orphanDependents(cm.namespace_(), cm.uid()); !r) return fromError(r.error(), &t, name);
    }
    auto r = objects_.update(t, *next, current.modRevision);
    if (!r) return r.error().code == ErrorCode::kAborted ? std::nullopt : std::optional(fromError(r.error(), &t, name));
    return Response::json(200, renderObject(t, *next, fmt));
  }

  if (dryRun) return Response::json(200, renderObject(t, *current.msg, fmt));
  int64_t removeRevision = current.modRevision;
  bool marked = false;
  if (policy == "Orphan") {
    // The owner is marked terminating before its dependents lose their
    // references, so no controller re-adopts them in between (controllers
    // do not adopt for an owner with a deletionTimestamp). It carries the
    // "orphan" finalizer meanwhile, as in Kubernetes: without one, any
    // write to the marked owner (its controller's status update) removed
    // it at once, and the collector took the dependents not yet orphaned
    // as dangling (GarbageCollectorTest.OrphanKeepsPods, 1 run in 50).
    if (hasDependents(cm.namespace_(), cm.uid())) {
      m.set_deletiontimestamp(api::nowTime());
      m.set_deletiongraceperiodseconds(0);
      m.add_finalizers(std::string(kOrphanFinalizer));
      auto rev = objects_.update(t, *next, current.modRevision);
      if (!rev) return rev.error().code == ErrorCode::kAborted ? std::nullopt : std::optional(fromError(rev.error(), &t, name));
      removeRevision = *rev;
      marked = true;
    }
    if (auto r = orphanDependents(cm.namespace_(), cm.uid()); !r) return fromError(r.error(), &t, name);
  }
  if (t.kind == "Namespace") {
    // Namespace contents go first (the namespace controller's job in
    // Kubernetes, done synchronously here).
    Response r = deleteNamespaceContents(name);
    if (r.status != 200) return r;
  }
  auto removed = objects_.remove(t, cm.namespace_(), name, removeRevision);
  // Marked terminating above: a status write in between must not leave it
  // behind, so remove whatever revision is current.
  // An update of an object marked with grace 0 and no finalizers removes it
  // (as in Kubernetes), so it may also be gone already: that is success.
  bool goneMeanwhile = false;
  for (int i = 0; marked && !removed && removed.error().code == ErrorCode::kAborted && i < kDeleteAttempts; ++i) {
    auto cur = objects_.get(t, cm.namespace_(), name);
    if (!cur) break;
    if (!cur->has_value()) {
      goneMeanwhile = true;
      break;
    }
    removed = objects_.remove(t, cm.namespace_(), name, (*cur)->modRevision);
  }
  if (marked && !removed && removed.error().code == ErrorCode::kNotFound) goneMeanwhile = true;
  if (!removed && !goneMeanwhile) {
    if (removed.error().code == ErrorCode::kAborted) return std::nullopt;
    return fromError(removed.error(), &t, name);
  }
  if (t.kind == "Service") services_.release(static_cast<const api::Service&>(*current.msg));
  if (returnStatus) {
    api::Json details = {{"name", name}, {"kind", t.resource}, {"uid", cm.uid()}};
    if (!t.group.empty()) details["group"] = t.group;
    return statusResponse(200, "", "", details);
  }
  return Response::json(200, renderObject(t, *current.msg, fmt));
}

Response RestHandler::remove(const ResourceRequest& req) {
  auto parsed = parseDeleteParams(*req.http);
  if (auto* err = std::get_if<Response>(&parsed)) return *err;
  const DeleteParams& p = std::get<DeleteParams>(parsed);
  bool dryRun = isDryRun(*req.http);
  for (int attempt = 0; attempt < kDeleteAttempts; ++attempt) {
    auto current = objects_.get(*req.type, req.ns, req.name);
    if (!current) return fromError(current.error(), req.type, req.name);
    if (!current->has_value()) return notFound(*req.type, req.name);
    const api::ObjectMeta& m = api::meta(*(*current)->msg);
    if (p.uid && *p.uid != m.uid()) {
      return conflict(*req.type, req.name,
                      "Precondition failed: UID in precondition: " + *p.uid + ", UID in object meta: " + m.uid());
    }
    if (p.resourceVersion && *p.resourceVersion != m.resourceversion()) {
      return conflict(*req.type, req.name,
                      "Precondition failed: ResourceVersion in precondition: " + *p.resourceVersion +
                          ", ResourceVersion in object meta: " + m.resourceversion());
    }
    auto r = deleteOne(req, **current, p.policy, dryRun, false);
    if (r) return *r;
  }
  return conflict(*req.type, req.name, kStaleObject);
}

Response RestHandler::removeCollection(const ResourceRequest& req) {
  auto parsed = parseDeleteParams(*req.http);
  if (auto* err = std::get_if<Response>(&parsed)) return *err;
  const DeleteParams& p = std::get<DeleteParams>(parsed);
  auto labels = api::Selector::parse(req.http->queryParam("labelSelector"));
  if (!labels) return badRequest(labels.error().message);
  auto fields = api::FieldSelector::parse(req.http->queryParam("fieldSelector"));
  if (!fields) return badRequest(fields.error().message);
  if (auto bad = fields->unsupportedField(req.type->selectableFields())) {
    return badRequest("field label not supported: " + *bad);
  }
  auto page = objects_.raw().list(ObjectStore::prefix(*req.type, req.ns));
  if (!page) return fromError(page.error(), req.type, "");
  bool dryRun = isDryRun(*req.http);
  std::vector<std::unique_ptr<pb::Message>> deleted;
  for (const auto& kv : page->kvs) {
    auto o = objects_.decode(*req.type, kv);
    if (!o) return internalError(o.error().message);
    const api::ObjectMeta& m = api::meta(*o->msg);
    if (!labels->matches(m.labels())) continue;
    if (!fields->empty() &&
        !fields->matches([&](std::string_view f) { return req.type->fieldValue(*o->msg, f); })) {
      continue;
    }
    ResourceRequest one = req;
    one.name = m.name();
    one.ns = m.namespace_();
    for (int attempt = 0; attempt < kDeleteAttempts; ++attempt) {
      auto current = objects_.get(*req.type, one.ns, one.name);
      if (!current || !current->has_value()) break;
      auto r = deleteOne(one, **current, p.policy, dryRun, true);
      if (!r) continue;
      if (r->status >= 400) return *r;
      deleted.push_back(std::move((*current)->msg));
      break;
    }
  }
  std::vector<const pb::Message*> items;
  for (const auto& d : deleted) items.push_back(d.get());
  auto rev = objects_.raw().currentRevision();
  return Response::json(200, renderList(*req.type, items, OutputFormat{}, std::to_string(rev ? *rev : 0), "", std::nullopt));
}

}  // namespace sluice::server
