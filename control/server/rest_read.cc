// get, list and watch.
#include <algorithm>

#include "control/api/object_meta.h"
#include "control/api/selector.h"
#include "control/server/credentials.h"
#include "control/server/rest_handler.h"

namespace sluice::server {
namespace {

constexpr std::string_view kContinueTooOld =
    "The provided continue parameter is too old to display a consistent list result. You can start "
    "a new list without the continue parameter, or use the continue token in this response to "
    "retrieve the remainder of the results. Continuing with the provided token results in an "
    "inconsistent list - objects that were created, modified, or deleted between the time the first "
    "chunk was returned and now may show up in the list.";

struct Selection {
  api::Selector labels;
  api::FieldSelector fields;
  std::optional<std::string> name;  // fieldSelector metadata.name=...
};

// Parses labelSelector/fieldSelector; an error is the 400 to send.
std::variant<Selection, Response> parseSelection(const ResourceRequest& req) {
  Selection s;
  auto labels = api::Selector::parse(req.http->queryParam("labelSelector"));
  if (!labels) return badRequest(labels.error().message);
  s.labels = std::move(*labels);
  auto fields = api::FieldSelector::parse(req.http->queryParam("fieldSelector"));
  if (!fields) return badRequest(fields.error().message);
  if (auto bad = fields->unsupportedField(req.type->selectableFields())) {
    return badRequest("field label not supported: " + *bad);
  }
  s.fields = std::move(*fields);
  s.name = s.fields.exactValue("metadata.name");
  return s;
}

bool selected(const api::ResourceType& type, const Selection& sel, const google::protobuf::Message& obj) {
  const api::ObjectMeta& m = api::meta(obj);
  if (sel.name && m.name() != *sel.name) return false;
  if (!sel.labels.matches(m.labels())) return false;
  if (sel.fields.empty()) return true;
  return sel.fields.matches([&](std::string_view f) { return type.fieldValue(obj, f); });
}

std::string encodeContinue(int64_t revision, const std::string& key) {
  api::Json j = {{"v", "meta.k8s.io/v1"}, {"rv", revision}, {"start", key + std::string(1, '\0')}};
  return base64Encode(j.dump());
}

Result<std::pair<int64_t, std::string>> decodeContinue(const std::string& token) {
  auto raw = base64Decode(token);
  if (!raw) return Error::invalid("continue key is not valid: " + raw.error().message);
  auto j = api::parseJson(*raw);
  if (!j || !j->is_object() || !j->contains("rv") || !j->contains("start")) {
    return Error::invalid("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
  }
  std::string start = (*j)["start"].get<std::string>();
  if (!start.empty() && start.back() == '\0') start.pop_back();
  return std::make_pair((*j)["rv"].get<int64_t>(), start);
}

std::optional<int64_t> parseInt(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (*end != '\0') return std::nullopt;
  return v;
}

}  // namespace

Response RestHandler::get(const ResourceRequest& req) {
  auto obj = objects_.get(*req.type, req.ns, req.name);
  if (!obj) return fromError(obj.error(), req.type, req.name);
  if (!obj->has_value()) return notFound(*req.type, req.name);
  return Response::json(200, renderObject(*req.type, *(*obj)->msg, negotiateOutput(*req.http)));
}

Response RestHandler::list(const ResourceRequest& req) {
  const api::ResourceType& type = *req.type;
  auto parsed = parseSelection(req);
  if (auto* err = std::get_if<Response>(&parsed)) return *err;
  const Selection& sel = std::get<Selection>(parsed);

  int64_t limit = 0;
  if (auto l = parseInt(req.http->queryParam("limit")); l && *l > 0) limit = *l;
  int64_t atRevision = 0;
  std::string after;
  std::string token = req.http->queryParam("continue");
  if (!token.empty()) {
    auto c = decodeContinue(token);
    if (!c) return badRequest(c.error().message);
    atRevision = c->first;
    after = c->second;
  } else {
    std::string rv = req.http->queryParam("resourceVersion");
    if (req.http->queryParam("resourceVersionMatch") == "Exact") {
      auto r = parseInt(rv);
      if (!r) return badRequest("resourceVersionMatch: Exact requires a resourceVersion");
      atRevision = *r;
    } else if (!rv.empty() && rv != "0") {
      auto r = parseInt(rv);
      if (!r) return badRequest("invalid resource version: " + rv);
      auto cur = objects_.raw().currentRevision();
      if (cur && *r > *cur) {
        return statusResponse(504, "Timeout", "Too large resource version: " + rv + ", current resource version: " +
                                                  std::to_string(*cur));
      }
    }
  }

  std::string prefix = sel.name && !req.ns.empty() && type.namespaced
                           ? ObjectStore::key(type, req.ns, *sel.name)
                           : !type.namespaced && sel.name ? ObjectStore::key(type, "", *sel.name)
                                                          : ObjectStore::prefix(type, req.ns);
  std::vector<std::unique_ptr<google::protobuf::Message>> owned;
  std::string continueToken;
  int64_t revision = 0;
  while (true) {
    int64_t pageSize = limit > 0 ? std::max<int64_t>(limit - static_cast<int64_t>(owned.size()), 100) : 0;
    auto page = objects_.raw().list(prefix, pageSize, after, atRevision);
    if (!page) {
      if (page.error().code == ErrorCode::kOutOfRange) {
        return token.empty() ? gone("too old resource version: " + std::to_string(atRevision))
                             : gone(std::string(kContinueTooOld));
      }
      return fromError(page.error(), &type, "");
    }
    revision = atRevision = page->revision;
    bool full = false;
    for (size_t i = 0; i < page->kvs.size(); ++i) {
      const auto& kv = page->kvs[i];
      after = kv.key;
      auto o = objects_.decode(type, kv);
      if (!o) return internalError(o.error().message);
      if (!selected(type, sel, *o->msg)) continue;
      owned.push_back(std::move(o->msg));
      if (limit > 0 && static_cast<int64_t>(owned.size()) >= limit) {
        full = true;
        if (i + 1 < page->kvs.size() || page->more) continueToken = encodeContinue(revision, kv.key);
        break;
      }
    }
    if (full || !page->more || page->kvs.empty()) break;
  }
  std::vector<const google::protobuf::Message*> items;
  items.reserve(owned.size());
  for (const auto& o : owned) items.push_back(o.get());
  return Response::json(200, renderList(type, items, negotiateOutput(*req.http), std::to_string(revision),
                                        continueToken, std::nullopt));
}

void RestHandler::watch(const ResourceRequest& req, const std::shared_ptr<ResponseWriter>& writer) {
  auto parsed = parseSelection(req);
  if (auto* err = std::get_if<Response>(&parsed)) {
    writer->send(err->status, {{"Content-Type", err->contentType}}, err->body);
    return;
  }
  Selection& sel = std::get<Selection>(parsed);
  WatchRequest w;
  w.type = req.type;
  w.ns = req.ns;
  w.name = sel.name;
  w.labels = std::move(sel.labels);
  w.fields = std::move(sel.fields);
  w.format = negotiateOutput(*req.http);
  std::string b = req.http->queryParam("allowWatchBookmarks");
  w.bookmarks = b == "true" || b == "1";
  std::string rv = req.http->queryParam("resourceVersion");
  std::string initial = req.http->queryParam("sendInitialEvents");
  if (rv.empty() || rv == "0") {
    w.sendInitialState = true;
  } else {
    auto r = parseInt(rv);
    if (!r) {
      Response bad = badRequest("invalid resource version: " + rv);
      writer->send(bad.status, {{"Content-Type", bad.contentType}}, bad.body);
      return;
    }
    w.fromRevision = *r;
  }
  if (initial == "true") {
    w.sendInitialState = true;
    w.initialEventsEndBookmark = w.bookmarks;
  }
  if (auto t = parseInt(req.http->queryParam("timeoutSeconds")); t && *t > 0) w.timeout = std::chrono::seconds(*t);
  watches_.serve(w, writer);
}

}  // namespace sluice::server
