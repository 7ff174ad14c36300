// get, list and watch.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <limits>

#include "control/api/object_meta.h"
#include "control/api/selector.h"
#include "control/server/credentials.h"
#include "control/server/list_writer.h"
#include "control/server/rest_handler.h"
#include "dataplane/log.h"

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
  return base64Encode(api::dumpJson(j));
}

Result<std::pair<int64_t, std::string>> decodeContinue(const std::string& token) {
  auto raw = base64Decode(token);
  if (!raw) return Error::invalid("continue key is not valid: " + raw.error().message);
  auto j = api::parseJson(*raw);
  const Error bad = Error::invalid(
      "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)");
  if (!j || !j->is_object()) return bad;
  auto rv = j->find("rv");
  auto start = j->find("start");
  if (rv == j->end() || !rv->is_number_integer() || start == j->end() || !start->is_string()) return bad;
  int64_t revision = rv->get<int64_t>();
  if (revision <= 0) return bad;
  std::string key = start->get<std::string>();
  if (!key.empty() && key.back() == '\0') key.pop_back();
  return std::make_pair(revision, key);
}

// An integer query parameter (limit, timeoutSeconds): absent is nullopt, a
// malformed one the 400 naming it (Kubernetes decodes these as int64).
std::variant<std::optional<int64_t>, Response> intParam(const HttpRequest& req, const char* name) {
  if (!req.hasQueryParam(name)) return std::optional<int64_t>();
  std::string text = req.queryParam(name);
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE) {
    return badRequest(std::string(name) + ": Invalid value: \"" + text + "\": must be an integer");
  }
  return std::optional<int64_t>(v);
}

// Pages a list reads from the store at a time: the decoded page and its
// encoding are all a list request holds, whatever the list's length.
constexpr int64_t kListPage = 500;
constexpr int64_t kMinListPage = 100;
// A list's encoding is sent in chunks of about this size once it outgrows
// one; at most kMaxUnsentListBytes wait for a slow client before encoding
// goes on.
constexpr size_t kListChunkBytes = 1u << 20;
constexpr size_t kMaxUnsentListBytes = 4u << 20;
// A client that reads none of them for this long is given up on.
constexpr auto kListWriteTimeout = std::chrono::seconds(60);

}  // namespace

std::optional<uint64_t> parseResourceVersion(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t next = v * 10 + static_cast<uint64_t>(c - '0');
    if (next / 10 != v) return std::nullopt;  // past 2^64-1
    v = next;
  }
  return v;
}

Response invalidResourceVersion(std::string_view where, std::string_view text) {
  return badRequest("invalid resource version: " + std::string(where) + ": Invalid value: \"" + std::string(text) +
                    "\": must be an unsigned decimal integer");
}

Response RestHandler::get(const ResourceRequest& req) {
  auto obj = objects_.get(*req.type, req.ns, req.name);
  if (!obj) return fromError(obj.error(), req.type, req.name);
  if (!obj->has_value()) return notFound(*req.type, req.name);
  return Response::json(200, renderObject(*req.type, *(*obj)->msg, negotiateOutput(*req.http)));
}

std::optional<Response> RestHandler::list(const ResourceRequest& req, const std::shared_ptr<ResponseWriter>& writer) {
  const api::ResourceType& type = *req.type;
  auto parsed = parseSelection(req);
  if (auto* err = std::get_if<Response>(&parsed)) return *err;
  const Selection& sel = std::get<Selection>(parsed);

  auto limitParam = intParam(*req.http, "limit");
  if (auto* err = std::get_if<Response>(&limitParam)) return *err;
  int64_t limit = std::max<int64_t>(std::get<std::optional<int64_t>>(limitParam).value_or(0), 0);
  std::string match = req.http->queryParam("resourceVersionMatch");
  if (!match.empty() && match != "Exact" && match != "NotOlderThan") {
    api::FieldErrors errs;
    errs.notSupported("resourceVersionMatch", match, {"Exact", "NotOlderThan"});
    api::ResourceType listOptions;
    listOptions.group = "meta.k8s.io";
    listOptions.kind = "ListOptions";
    return invalid(listOptions, "", errs);
  }
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
    auto parsedRv = parseResourceVersion(rv);
    if (!rv.empty() && !parsedRv) return invalidResourceVersion("resourceVersion", rv);
    auto cur = objects_.raw().currentRevision();
    if (parsedRv && cur && *parsedRv > static_cast<uint64_t>(*cur)) {
      return statusResponse(504, "Timeout", "Too large resource version: " + rv + ", current resource version: " +
                                                std::to_string(*cur));
    }
    if (match == "Exact") {
      if (!parsedRv) return badRequest("resourceVersionMatch: Exact requires a resourceVersion");
      atRevision = static_cast<int64_t>(*parsedRv);
    }
  }

  std::string prefix = sel.name && !req.ns.empty() && type.namespaced
                           ? ObjectStore::key(type, req.ns, *sel.name)
                           : !type.namespaced && sel.name ? ObjectStore::key(type, "", *sel.name)
                                                          : ObjectStore::prefix(type, req.ns);
  ListWriter out(type, negotiateOutput(*req.http));
  bool streaming = false;
  // Past the first page the response may be under way: a failure then can
  // only cut the connection, so the client sees a broken list, never a
  // short one.
  auto fail = [&](Response r) -> std::optional<Response> {
    if (!streaming) return r;
    log::error("server", "list failed after the response began", {{"target", req.http->target}, {"err", r.body}});
    writer->abort();
    return std::nullopt;
  };
  std::string continueToken;
  int64_t revision = 0;
  while (true) {
    // Pages of at least kMinListPage keys, so that a small limit with a
    // selective selector does not read the store a key at a time.
    int64_t wanted = limit > 0 ? limit - static_cast<int64_t>(out.items()) : kListPage;
    auto page = objects_.raw().list(prefix, std::clamp(wanted, kMinListPage, kListPage), after, atRevision);
    if (!page) {
      if (page.error().code == ErrorCode::kOutOfRange) {
        return fail(token.empty() ? gone("too old resource version: " + std::to_string(atRevision))
                                  : gone(std::string(kContinueTooOld)));
      }
      return fail(fromError(page.error(), &type, ""));
    }
    revision = atRevision = page->revision;  // every page at the first one's revision
    bool full = false;
    for (size_t i = 0; i < page->kvs.size(); ++i) {
      const auto& kv = page->kvs[i];
      after = kv.key;
      auto o = objects_.decode(type, kv);
      if (!o) return fail(internalError(o.error().message));
      if (!selected(type, sel, *o->msg)) continue;
      out.add(*o->msg);
      if (limit > 0 && static_cast<int64_t>(out.items()) >= limit) {
        full = true;
        if (i + 1 < page->kvs.size() || page->more) continueToken = encodeContinue(revision, kv.key);
        break;
      }
    }
    if (full || !page->more || page->kvs.empty()) break;
    if (out.pendingBytes() >= kListChunkBytes) {
      if (!streaming) {
        writer->startStream(200, {{"Content-Type", "application/json"}, {"Cache-Control", "no-cache, private"}},
                            /*keepAlive=*/true);
        streaming = true;
      }
      writer->writeChunk(out.take());
      if (!writer->waitPendingBelow(kMaxUnsentListBytes, kListWriteTimeout)) {
        writer->abort();  // the client left or stopped reading
        return std::nullopt;
      }
    }
  }
  out.finish(std::to_string(revision), continueToken);
  if (!streaming) {
    Response r;
    r.body = out.take();
    return r;
  }
  writer->writeChunk(out.take());
  writer->endStream();
  return std::nullopt;
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
  // Every parameter is checked before the stream's 200 goes out: after it,
  // an error can only be an ERROR event.
  auto reject = [&](const Response& bad) {
    writer->send(bad.status, {{"Content-Type", bad.contentType}, {"Cache-Control", "no-cache, private"}}, bad.body);
  };
  std::string rv = req.http->queryParam("resourceVersion");
  std::string initial = req.http->queryParam("sendInitialEvents");
  auto parsedRv = parseResourceVersion(rv);
  if (!rv.empty() && !parsedRv) return reject(invalidResourceVersion("resourceVersion", rv));
  if (parsedRv.value_or(0) > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return reject(statusResponse(504, "Timeout", "Too large resource version: " + rv));
  }
  if (parsedRv.value_or(0) == 0) {
    w.sendInitialState = true;
  } else {
    w.fromRevision = static_cast<int64_t>(*parsedRv);
  }
  if (initial == "true") {
    w.sendInitialState = true;
    w.initialEventsEndBookmark = w.bookmarks;
  }
  auto timeout = intParam(*req.http, "timeoutSeconds");
  if (auto* err = std::get_if<Response>(&timeout)) return reject(*err);
  if (auto t = std::get<std::optional<int64_t>>(timeout); t && *t > 0) w.timeout = std::chrono::seconds(*t);
  watches_.serve(w, writer);
}

}  // namespace sluice::server
