// create, update, patch, and the status, scale and binding subresources.
#include <google/protobuf/util/message_differencer.h>

#include <random>

#include "control/api/k8s_protobuf.h"
#include "control/api/names.h"
#include "control/api/object_meta.h"
#include "control/api/patch.h"
#include "control/api/proto/apps.pb.h"
#include "control/api/proto/core.pb.h"
#include "control/api/selector.h"
#include "control/api/time_util.h"
#include "control/api/yaml_codec.h"
#include "control/server/rest_handler.h"

namespace sluice::server {
namespace {

namespace pb = google::protobuf;

// A generated name collides rarely; a few retries make it invisible.
constexpr int kGenerateNameAttempts = 5;
// Writes retried after losing a compare-and-swap to a concurrent writer.
constexpr int kUpdateAttempts = 16;

std::string newUid() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t a = rng();
  uint64_t b = rng();
  // RFC 4122 version 4, variant 1.
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xffff),
                static_cast<unsigned>(b >> 48), static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

std::unique_ptr<pb::Message> clone(const pb::Message& m) {
  std::unique_ptr<pb::Message> c(m.New());
  c->CopyFrom(m);
  return c;
}

bool specChanged(const pb::Message& a, const pb::Message& b) {
  const pb::Message* sa = api::childMessage(a, "spec");
  const pb::Message* sb = api::childMessage(b, "spec");
  if (sa == nullptr || sb == nullptr) return false;
  return !pb::util::MessageDifferencer::Equals(*sa, *sb);
}

std::string mediaType(const HttpRequest& req) {
  std::string ct = req.header("content-type");
  size_t semi = ct.find(';');
  if (semi != std::string::npos) ct.resize(semi);
  while (!ct.empty() && ct.back() == ' ') ct.pop_back();
  return ct;
}

Response withWarnings(Response r, const std::vector<std::string>& warnings) {
  r.warnings.insert(r.warnings.end(), warnings.begin(), warnings.end());
  return r;
}

// Whether a patch body itself names a resourceVersion (a precondition).
bool patchPinsVersion(const std::string& type, const api::Json& patch) {
  if (type == "application/json-patch+json") {
    if (!patch.is_array()) return false;
    for (const auto& op : patch) {
      if (api::stringField(op, "path") == "/metadata/resourceVersion") return true;
    }
    return false;
  }
  if (!patch.is_object()) return false;
  auto meta = patch.find("metadata");
  if (meta == patch.end() || !meta->is_object()) return false;
  auto rv = meta->find("resourceVersion");
  return rv != meta->end() && !rv->is_null();
}

// A patch that failed to apply, as kube-apiserver answers it: a malformed
// JSON patch is 400, one that does not apply to the object 422, one with
// too many operations 413; merge and strategic merge patch errors 422.
Response patchFailure(const std::string& patchType, const Error& e) {
  if (e.code == ErrorCode::kResourceExhausted) return statusResponse(413, "RequestEntityTooLarge", e.message);
  if (e.code == ErrorCode::kInvalidArgument && patchType == "application/json-patch+json") return badRequest(e.message);
  return statusResponse(422, "Invalid", e.message);
}

std::string selectorString(const api::LabelSelector& sel) {
  auto s = api::Selector::fromProto(sel);
  return s ? s->toString() : "";
}

// The request body as JSON: JSON as sent, YAML converted (kube-apiserver
// decodes application/yaml for create and update), or Kubernetes protobuf
// transcoded. Another media type is 415, as kube-apiserver answers it.
std::variant<api::Json, Response> requestBody(const HttpRequest& req) {
  std::string type = mediaType(req);
  if (type == api::kProtobufContentType) {
    auto j = api::k8sProtobufToJson(req.body);
    if (!j) return statusResponse(415, "UnsupportedMediaType", j.error().message);
    return std::move(*j);
  }
  if (type == "application/yaml") {
    auto j = api::parseYaml(req.body);
    if (!j) return badRequest(j.error().message);
    return std::move(*j);
  }
  if (!type.empty() && type != "application/json") {
    return statusResponse(415, "UnsupportedMediaType",
                          "the body of the request was in an unknown format - accepted media types include: "
                          "application/json, application/yaml, application/vnd.kubernetes.protobuf");
  }
  auto j = api::parseJson(req.body);
  if (!j) return badRequest(j.error().message);
  return std::move(*j);
}

// The name a binding targets, if its body names one as a string.
std::string bindingTarget(const api::Json& body) {
  auto target = body.find("target");
  return target == body.end() ? "" : api::stringField(*target, "name");
}

}  // namespace

bool isDryRun(const HttpRequest& req) {
  for (const auto& [k, v] : req.query) {
    if (k == "dryRun" && v == "All") return true;
  }
  return false;
}

std::variant<RestHandler::Decoded, Response> RestHandler::decode(const ResourceRequest& req, const api::Json& body) {
  const api::ResourceType& t = *req.type;
  std::string prefix = t.kind + " in version \"" + t.version + "\" cannot be handled as a " + t.kind + ": ";
  if (!body.is_object()) return badRequest(prefix + "the request body must be a JSON object");
  if (auto it = body.find("apiVersion"); it != body.end() && it->is_string() && *it != t.apiVersion()) {
    return badRequest("the API version in the data (" + it->get<std::string>() +
                      ") does not match the expected API version (" + t.apiVersion() + ")");
  }
  if (auto it = body.find("kind"); it != body.end() && it->is_string() && *it != t.kind) {
    return badRequest(prefix + "the kind in the data (" + it->get<std::string>() +
                      ") does not match the expected kind (" + t.kind + ")");
  }
  std::string validation = req.http->queryParam("fieldValidation");
  if (validation.empty()) validation = "Warn";
  if (validation != "Strict" && validation != "Warn" && validation != "Ignore") {
    return badRequest("fieldValidation: Unsupported value: \"" + validation +
                      "\": supported values: \"Ignore\", \"Strict\", \"Warn\"");
  }
  Decoded d;
  d.obj = t.newObject();
  std::vector<std::string> unknown;
  auto r = api::decodeJson(body, *d.obj, &unknown);
  if (!r) return badRequest(prefix + r.error().message);
  if (!unknown.empty()) {
    if (validation == "Strict") {
      std::string msg = "strict decoding error: ";
      for (size_t i = 0; i < unknown.size(); ++i) msg += (i ? ", " : "") + ("unknown field \"" + unknown[i] + "\"");
      return badRequest(prefix + msg);
    }
    if (validation == "Warn") {
      for (const auto& u : unknown) d.warnings.push_back("unknown field \"" + u + "\"");
    }
  }
  api::setTypeMeta(*d.obj, t.apiVersion(), t.kind);
  return d;
}

std::optional<Response> RestHandler::checkNamespace(const ResourceRequest& req, const std::string& ns) {
  const api::ResourceType* nsType = api::Registry::builtin().findKind("v1", "Namespace");
  auto got = objects_.get(*nsType, "", ns);
  if (!got) return fromError(got.error(), nsType, ns);
  if (!got->has_value()) return notFound(*nsType, ns);
  const auto& nsObj = static_cast<const api::Namespace&>(*(*got)->msg);
  if (nsObj.status().phase() == "Terminating" || !nsObj.metadata().deletiontimestamp().empty()) {
    return forbidden(*req.type, api::meta(*(*got)->msg).name(),
                     "unable to create new content in namespace " + ns + " because it is being terminated");
  }
  return std::nullopt;
}

Response RestHandler::create(const ResourceRequest& req) {
  auto body = requestBody(*req.http);
  if (auto* err = std::get_if<Response>(&body)) return *err;
  auto decoded = decode(req, std::get<api::Json>(body));
  if (auto* err = std::get_if<Response>(&decoded)) return *err;
  return createDecoded(req, std::move(std::get<Decoded>(decoded)), isDryRun(*req.http));
}

Response RestHandler::createObject(const api::ResourceType& type, const std::string& ns, const api::Json& body) {
  HttpRequest http;
  http.method = "POST";
  ResourceRequest req{&http, &type, ns, "", ""};
  auto decoded = decode(req, body);
  if (auto* err = std::get_if<Response>(&decoded)) return *err;
  return createDecoded(req, std::move(std::get<Decoded>(decoded)), false);
}

Response RestHandler::createDecoded(const ResourceRequest& req, Decoded decoded, bool dryRun) {
  const api::ResourceType& t = *req.type;
  pb::Message& obj = *decoded.obj;
  api::ObjectMeta& m = api::mutableMeta(obj);
  if (t.namespaced) {
    if (m.namespace_().empty()) m.set_namespace_(req.ns);
    if (m.namespace_() != req.ns) {
      return badRequest("the namespace of the provided object does not match the namespace sent on the request");
    }
    if (auto err = checkNamespace(req, req.ns)) return *err;
  } else {
    m.clear_namespace_();
  }
  m.set_uid(newUid());
  m.set_creationtimestamp(api::nowTime());
  m.set_generation(1);
  m.clear_resourceversion();
  m.clear_deletiontimestamp();
  m.clear_deletiongraceperiodseconds();
  m.clear_managedfields();
  m.clear_selflink();
  t.strategy->applyDefaults(obj);
  t.strategy->prepareForCreate(obj);

  bool generated = m.name().empty() && !m.generatename().empty();
  for (int attempt = 0;; ++attempt) {
    if (generated) m.set_name(api::generateName(m.generatename()));
    api::FieldErrors errs;
    t.strategy->validate(obj, errs);
    if (!errs.empty()) return invalid(t, m.name().empty() ? m.generatename() : m.name(), errs);
    ServiceAllocations::Change change;
    auto* svc = dynamic_cast<api::Service*>(&obj);
    if (svc != nullptr) {
      change = services_.assign(*svc, nullptr, errs);
      if (!errs.empty()) return invalid(t, m.name(), errs);
    }
    if (dryRun) {
      services_.rollback(change);
      return withWarnings(Response::json(201, renderObject(t, obj, negotiateOutput(*req.http))), decoded.warnings);
    }
    auto rev = objects_.create(t, obj);
    if (!rev) {
      services_.rollback(change);
      if (rev.error().code == ErrorCode::kAlreadyExists && generated && attempt + 1 < kGenerateNameAttempts) continue;
      return fromError(rev.error(), &t, m.name());
    }
    services_.commit(change);
    return withWarnings(Response::json(201, renderObject(t, obj, negotiateOutput(*req.http))), decoded.warnings);
  }
}

std::optional<Response> RestHandler::writeUpdate(const ResourceRequest& req, std::unique_ptr<pb::Message> next,
                                                 const ObjectStore::Object& current, bool statusOnly, bool dryRun,
                                                 std::vector<std::string> warnings,
                                                 std::unique_ptr<pb::Message>* written) {
  const api::ResourceType& t = *req.type;
  const pb::Message& old = *current.msg;
  const api::ObjectMeta& om = api::meta(old);
  {
    api::ObjectMeta& m = api::mutableMeta(*next);
    if (m.name().empty()) m.set_name(req.name);
    if (m.name() != req.name) {
      return badRequest("the name of the object (" + m.name() + ") does not match the name on the URL (" +
                        req.name + ")");
    }
    if (t.namespaced) {
      if (m.namespace_().empty()) m.set_namespace_(req.ns);
      if (m.namespace_() != req.ns) {
        return badRequest("the namespace of the provided object does not match the namespace sent on the request");
      }
    } else {
      m.clear_namespace_();
    }
  }
  // "0" and "" mean "whatever is current", as Kubernetes' unconditional
  // update; anything else is a revision, or not a resourceVersion at all.
  const std::string& wantedRv = api::meta(*next).resourceversion();
  auto wanted = parseResourceVersion(wantedRv);
  if (!wantedRv.empty() && !wanted) return invalidResourceVersion("metadata.resourceVersion", wantedRv);
  bool pinned = wanted.value_or(0) != 0;
  if (pinned && *wanted != static_cast<uint64_t>(current.modRevision)) return conflict(t, req.name, kStaleObject);
  if (!api::meta(*next).uid().empty() && api::meta(*next).uid() != om.uid()) {
    return conflict(t, req.name, "Precondition failed: UID in precondition: " + api::meta(*next).uid() +
                                     ", UID in object meta: " + om.uid());
  }
  if (statusOnly) {
    t.strategy->prepareForStatusUpdate(*next, old);
  } else {
    api::ObjectMeta& m = api::mutableMeta(*next);
    m.set_uid(om.uid());
    m.set_creationtimestamp(om.creationtimestamp());
    m.set_deletiontimestamp(om.deletiontimestamp());
    if (om.has_deletiongraceperiodseconds()) m.set_deletiongraceperiodseconds(om.deletiongraceperiodseconds());
    else m.clear_deletiongraceperiodseconds();
    m.set_generation(om.generation());
    m.clear_managedfields();
    m.clear_selflink();
    t.strategy->applyDefaults(*next);
    t.strategy->prepareForUpdate(*next, old);
    if (specChanged(*next, old)) api::mutableMeta(*next).set_generation(om.generation() + 1);
  }
  api::setTypeMeta(*next, t.apiVersion(), t.kind);
  api::mutableMeta(*next).set_resourceversion(om.resourceversion());

  api::FieldErrors errs;
  t.strategy->validateUpdate(*next, old, errs);
  if (!errs.empty()) return invalid(t, req.name, errs);
  ServiceAllocations::Change change;
  auto* svc = dynamic_cast<api::Service*>(next.get());
  if (svc != nullptr && !statusOnly) {
    change = services_.assign(*svc, static_cast<const api::Service*>(&old), errs);
    if (!errs.empty()) return invalid(t, req.name, errs);
  }
  OutputFormat fmt = negotiateOutput(*req.http);

  // The last finalizer of a terminating object removed: it goes away. Not
  // so a pod in its graceful termination (deletionGracePeriodSeconds > 0):
  // its agent still updates it and removes it with grace 0.
  const api::ObjectMeta& nm = api::meta(*next);
  if (!nm.deletiontimestamp().empty() && nm.finalizers().empty() && nm.deletiongraceperiodseconds() == 0) {
    services_.rollback(change);
    if (dryRun) return withWarnings(Response::json(200, renderObject(t, *next, fmt)), warnings);
    auto removed = objects_.remove(t, req.ns, req.name, current.modRevision);
    if (!removed) {
      if (removed.error().code == ErrorCode::kAborted && !pinned) return std::nullopt;
      return fromError(removed.error(), &t, req.name);
    }
    if (svc != nullptr) services_.release(static_cast<const api::Service&>(old));
    return withWarnings(Response::json(200, renderObject(t, *next, fmt)), warnings);
  }

  if (ObjectStore::encode(*next) == current.encoded) {
    services_.rollback(change);  // nothing changed: no write, no new resourceVersion
    return withWarnings(Response::json(200, renderObject(t, old, fmt)), warnings);
  }
  if (dryRun) {
    services_.rollback(change);
    return withWarnings(Response::json(200, renderObject(t, *next, fmt)), warnings);
  }
  auto rev = objects_.update(t, *next, current.modRevision);
  if (!rev) {
    services_.rollback(change);
    if (rev.error().code == ErrorCode::kAborted) {
      if (!pinned) return std::nullopt;
      return conflict(t, req.name, kStaleObject);
    }
    return fromError(rev.error(), &t, req.name);
  }
  services_.commit(change);
  if (written != nullptr) *written = clone(*next);
  return withWarnings(Response::json(200, renderObject(t, *next, fmt)), warnings);
}

Response RestHandler::update(const ResourceRequest& req, bool statusOnly) {
  auto body = requestBody(*req.http);
  if (auto* err = std::get_if<Response>(&body)) return *err;
  auto decoded = decode(req, std::get<api::Json>(body));
  if (auto* err = std::get_if<Response>(&decoded)) return *err;
  Decoded& d = std::get<Decoded>(decoded);
  bool dryRun = isDryRun(*req.http);
  for (int attempt = 0; attempt < kUpdateAttempts; ++attempt) {
    auto current = objects_.get(*req.type, req.ns, req.name);
    if (!current) return fromError(current.error(), req.type, req.name);
    if (!current->has_value()) {
      // Endpoints and Events are created by a PUT, as in Kubernetes
      // (AllowCreateOnUpdate), which controllers rely on.
      if (!statusOnly && (req.type->kind == "Endpoints" || req.type->kind == "Event")) {
        return createDecoded(req, Decoded{clone(*d.obj), d.warnings}, dryRun);
      }
      return notFound(*req.type, req.name);
    }
    auto r = writeUpdate(req, clone(*d.obj), **current, statusOnly, dryRun, d.warnings);
    if (r) return *r;
  }
  return conflict(*req.type, req.name, kStaleObject);
}

Response RestHandler::patch(const ResourceRequest& req, bool statusOnly) {
  std::string type = mediaType(*req.http);
  if (type == "application/apply-patch+yaml" || type == "application/apply-patch+cbor") {
    return statusResponse(415, "UnsupportedMediaType",
                          "server-side apply is not supported by sluice; use client-side `kubectl apply`");
  }
  if (type != "application/json-patch+json" && type != "application/merge-patch+json" &&
      type != "application/strategic-merge-patch+json") {
    return statusResponse(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml");
  }
  auto patchBody = api::parseJson(req.http->body);
  if (!patchBody) return badRequest(patchBody.error().message);
  bool pinned = patchPinsVersion(type, *patchBody);
  bool dryRun = isDryRun(*req.http);
  for (int attempt = 0; attempt < kUpdateAttempts; ++attempt) {
    auto current = objects_.get(*req.type, req.ns, req.name);
    if (!current) return fromError(current.error(), req.type, req.name);
    if (!current->has_value()) return notFound(*req.type, req.name);
    api::Json currentJson = api::encodeJson(*(*current)->msg);
    Result<api::Json> patched = Error::internal("unreachable");
    if (type == "application/json-patch+json") patched = api::applyJsonPatch(currentJson, *patchBody);
    else if (type == "application/merge-patch+json") patched = api::applyMergePatch(currentJson, *patchBody);
    else patched = api::applyStrategicMergePatch(currentJson, *patchBody, req.type->prototype->GetDescriptor());
    if (!patched) return patchFailure(type, patched.error());
    // Without metadata the object has no name or identity left to write:
    // Kubernetes rejects it rather than restoring it from the stored one.
    if (auto md = patched->find("metadata"); md == patched->end() || !md->is_object()) {
      api::FieldErrors errs;
      errs.required("metadata");
      return invalid(*req.type, req.name, errs);
    }
    auto decoded = decode(req, *patched);
    if (auto* err = std::get_if<Response>(&decoded)) return *err;
    Decoded& d = std::get<Decoded>(decoded);
    if (!pinned) api::mutableMeta(*d.obj).clear_resourceversion();
    auto r = writeUpdate(req, std::move(d.obj), **current, statusOnly, dryRun, d.warnings);
    if (r) return *r;
  }
  return conflict(*req.type, req.name, kStaleObject);
}

// Scale (autoscaling/v1) of a Deployment or ReplicaSet.
Response RestHandler::scale(const ResourceRequest& req) {
  auto render = [](const pb::Message& obj) {
    const api::ObjectMeta& m = api::meta(obj);
    int32_t specReplicas = 0;
    int32_t statusReplicas = 0;
    std::string selector;
    if (const auto* d = dynamic_cast<const api::Deployment*>(&obj)) {
      specReplicas = d->spec().replicas();
      statusReplicas = d->status().replicas();
      selector = selectorString(d->spec().selector());
    } else if (const auto* rs = dynamic_cast<const api::ReplicaSet*>(&obj)) {
      specReplicas = rs->spec().replicas();
      statusReplicas = rs->status().replicas();
      selector = selectorString(rs->spec().selector());
    }
    api::Json md = {{"name", m.name()}, {"namespace", m.namespace_()}, {"uid", m.uid()},
                    {"resourceVersion", m.resourceversion()}, {"creationTimestamp", m.creationtimestamp()}};
    api::Json status = {{"replicas", statusReplicas}};
    if (!selector.empty()) status["selector"] = selector;
    return api::Json{{"kind", "Scale"},
                     {"apiVersion", "autoscaling/v1"},
                     {"metadata", md},
                     {"spec", {{"replicas", specReplicas}}},
                     {"status", status}};
  };
  const std::string& method = req.http->method;
  bool dryRun = isDryRun(*req.http);
  std::optional<api::Json> patchBody;
  std::string patchType;
  if (method == "PATCH") {
    patchType = mediaType(*req.http);
    auto p = api::parseJson(req.http->body);
    if (!p) return badRequest(p.error().message);
    patchBody = std::move(*p);
  } else if (method != "GET" && method != "PUT") {
    return methodNotSupported(method, "scale");
  }
  for (int attempt = 0; attempt < kUpdateAttempts; ++attempt) {
    auto current = objects_.get(*req.type, req.ns, req.name);
    if (!current) return fromError(current.error(), req.type, req.name);
    if (!current->has_value()) return notFound(*req.type, req.name);
    const pb::Message& obj = *(*current)->msg;
    api::Json scaleJson = render(obj);
    if (method == "GET") return Response::json(200, scaleJson);

    api::Json wanted;
    if (method == "PUT") {
      auto b = api::parseJson(req.http->body);
      if (!b) return badRequest(b.error().message);
      wanted = std::move(*b);
    } else {
      Result<api::Json> patched = Error::internal("unreachable");
      if (patchType == "application/json-patch+json") patched = api::applyJsonPatch(scaleJson, *patchBody);
      else if (patchType == "application/merge-patch+json") patched = api::applyMergePatch(scaleJson, *patchBody);
      else patched = api::applyStrategicMergePatch(scaleJson, *patchBody, api::Scale::descriptor());
      if (!patched) return patchFailure(patchType, patched.error());
      wanted = std::move(*patched);
    }
    api::Scale scale;
    std::vector<std::string> unknown;
    if (auto r = api::decodeJson(wanted, scale, &unknown); !r) {
      return badRequest("Scale in version \"v1\" cannot be handled as a Scale: " + r.error().message);
    }
    if (scale.spec().replicas() < 0) {
      api::FieldErrors errs;
      errs.invalid("spec.replicas", scale.spec().replicas(), "must be greater than or equal to 0");
      api::ResourceType scaleType;
      scaleType.group = "autoscaling";
      scaleType.kind = "Scale";
      return invalid(scaleType, req.name, errs);
    }
    std::string rv = scale.metadata().resourceversion();
    if (!rv.empty() && !parseResourceVersion(rv)) return invalidResourceVersion("metadata.resourceVersion", rv);
    bool pinned = method == "PUT" ? !rv.empty() : patchPinsVersion(patchType, *patchBody);
    auto next = clone(obj);
    if (auto* d = dynamic_cast<api::Deployment*>(next.get())) d->mutable_spec()->set_replicas(scale.spec().replicas());
    if (auto* rs = dynamic_cast<api::ReplicaSet*>(next.get())) rs->mutable_spec()->set_replicas(scale.spec().replicas());
    api::mutableMeta(*next).set_resourceversion(pinned ? rv : "");
    HttpRequest plain = *req.http;
    plain.headers.clear();  // the Scale is rendered here, not a Table
    ResourceRequest inner = req;
    inner.http = &plain;
    std::unique_ptr<pb::Message> written;
    auto r = writeUpdate(inner, std::move(next), **current, false, dryRun, {}, &written);
    if (!r) continue;
    if (r->status != 200) return *r;
    return Response::json(200, render(written ? *written : obj));
  }
  return conflict(*req.type, req.name, kStaleObject);
}

// pods/binding: what a scheduler POSTs to place a pod on a node.
Response RestHandler::bind(const ResourceRequest& req) {
  if (req.http->method != "POST") return methodNotSupported(req.http->method, "binding");
  auto body = api::parseJson(req.http->body);
  if (!body || !body->is_object()) return badRequest("Binding in version \"v1\" cannot be handled as a Binding");
  std::string node = bindingTarget(*body);
  if (node.empty()) {
    api::FieldErrors errs;
    errs.required("target.name");
    api::ResourceType bindingType;
    bindingType.kind = "Binding";
    return invalid(bindingType, req.name, errs);
  }
  for (int attempt = 0; attempt < kUpdateAttempts; ++attempt) {
    auto current = objects_.get(*req.type, req.ns, req.name);
    if (!current) return fromError(current.error(), req.type, req.name);
    if (!current->has_value()) return notFound(*req.type, req.name);
    const auto& pod = static_cast<const api::Pod&>(*(*current)->msg);
    if (!pod.spec().nodename().empty()) {
      return conflict(*req.type, req.name, "pod " + req.name + " is already assigned to node \"" +
                                               pod.spec().nodename() + "\"");
    }
    auto next = std::make_unique<api::Pod>(pod);
    next->mutable_spec()->set_nodename(node);
    auto rev = objects_.update(*req.type, *next, (*current)->modRevision);
    if (rev) return statusResponse(201, "", "");
    if (rev.error().code != ErrorCode::kAborted) return fromError(rev.error(), req.type, req.name);
  }
  return conflict(*req.type, req.name, kStaleObject);
}

}  // namespace sluice::server
