#include "control/server/watch_manager.h"

#include <algorithm>
#include <map>

#include "control/api/object_meta.h"
#include "control/server/responses.h"

namespace sluice::server {
namespace {

// How long the pump waits for any write before checking timeouts and
// bookmarks, and the longest a newly registered stream waits for events
// that arrived while it was being handed over.
constexpr auto kPumpTick = std::chrono::milliseconds(50);
// Events taken from one stream per pump round, so one busy stream cannot
// starve the others.
constexpr size_t kMaxEventsPerRound = 2000;
// Page size for the initial-state list, the unsent bytes at which sending
// it pauses, and how long a client may read none of them.
constexpr int64_t kListPage = 500;
constexpr size_t kMaxUnsentInitialBytes = 4u << 20;
constexpr auto kInitialWriteTimeout = std::chrono::seconds(60);

using Clock = std::chrono::steady_clock;

std::string eventLine(std::string_view type, const std::string& objectJson) {
  std::string s = "{\"type\":\"";
  s += type;
  s += "\",\"object\":";
  s += objectJson;
  s += "}\n";
  return s;
}

std::string formatKey(const OutputFormat& f) {
  return std::to_string(static_cast<int>(f.kind)) + f.groupVersion + f.includeObject;
}

// Decoded objects and rendered JSON shared by all streams within one pump
// round: a write watched by many streams is decoded and encoded once.
class EventCache {
 public:
  std::shared_ptr<google::protobuf::Message> object(ObjectStore& objects, const api::ResourceType& type,
                                                    const store::KeyValue& kv, int64_t revision) {
    std::string k = std::to_string(revision) + "|" + std::to_string(kv.modRevision) + "|" + kv.key + "|" +
                    type.apiVersion();
    auto it = objects_.find(k);
    if (it != objects_.end()) return it->second;
    std::shared_ptr<google::protobuf::Message> msg;
    auto o = objects.decode(type, kv);
    if (o) {
      msg = std::move(o->msg);
      // A deleted object carries the deletion's revision.
      api::mutableMeta(*msg).set_resourceversion(std::to_string(revision));
    }
    objects_.emplace(k, msg);
    return msg;
  }

  const std::string& json(const api::ResourceType& type, const google::protobuf::Message& obj,
                          const OutputFormat& fmt) {
    auto k = std::make_pair(&obj, formatKey(fmt));
    auto it = json_.find(k);
    if (it != json_.end()) return it->second;
    return json_.emplace(k, api::dumpJson(renderObject(type, obj, fmt))).first->second;
  }

 private:
  std::map<std::string, std::shared_ptr<google::protobuf::Message>> objects_;
  std::map<std::pair<const google::protobuf::Message*, std::string>, std::string> json_;
};

}  // namespace

struct WatchManager::Stream {
  WatchRequest req;
  std::shared_ptr<ResponseWriter> writer;
  std::unique_ptr<store::Watch> watch;
  int64_t lastRevision = 0;
  Clock::time_point lastBookmark = Clock::now();
  std::optional<Clock::time_point> deadline;
  bool done = false;

  bool matches(const google::protobuf::Message& obj) const {
    const api::ObjectMeta& m = api::meta(obj);
    if (req.name && m.name() != *req.name) return false;
    if (!req.labels.matches(m.labels())) return false;
    if (!req.fields.empty()) {
      return req.fields.matches([&](std::string_view f) { return req.type->fieldValue(obj, f); });
    }
    return true;
  }

  void send(std::string_view type, const std::string& json) { writer->writeChunk(eventLine(type, json)); }

  void sendBookmark(int64_t revision, bool initialEventsEnd) {
    api::Json md = {{"resourceVersion", std::to_string(revision)}};
    if (initialEventsEnd) md["annotations"] = {{"k8s.io/initial-events-end", "true"}};
    api::Json obj = {{"kind", req.type->kind}, {"apiVersion", req.type->apiVersion()}, {"metadata", md}};
    send("BOOKMARK", api::dumpJson(obj));
    lastBookmark = Clock::now();
  }

  void sendError(const api::Json& status) {
    send("ERROR", api::dumpJson(status));
    finish();
  }

  void finish() {
    if (done) return;
    done = true;
    if (watch) watch->cancel();
    writer->endStream();
  }

  // Converts and sends one store event; false if the stream ended.
  void deliver(ObjectStore& objects, EventCache& cache, const store::Event& ev) {
    int64_t revision = ev.kv.modRevision;
    lastRevision = std::max(lastRevision, revision);
    std::shared_ptr<google::protobuf::Message> now;
    std::shared_ptr<google::protobuf::Message> before;
    if (ev.type == store::EventType::kPut) now = cache.object(objects, *req.type, ev.kv, revision);
    if (ev.prevKv) before = cache.object(objects, *req.type, *ev.prevKv, revision);
    bool nowMatch = now && matches(*now);
    bool beforeMatch = before && matches(*before);
    if (ev.type == store::EventType::kPut) {
      if (nowMatch) {
        send(beforeMatch ? "MODIFIED" : "ADDED", cache.json(*req.type, *now, req.format));
      } else if (beforeMatch) {
        // Left the selection: Kubernetes reports DELETED with the new state.
        send("DELETED", cache.json(*req.type, *now, req.format));
      }
    } else if (beforeMatch) {
      send("DELETED", cache.json(*req.type, *before, req.format));
    }
  }
};

WatchManager::WatchManager(ObjectStore& objects, WatchOptions options)
    : objects_(objects), options_(options) {}

WatchManager::~WatchManager() { stop(); }

Result<void> WatchManager::start() {
  auto w = objects_.raw().watch("/registry/", 0);
  if (!w) return w.error();
  progressWatch_ = std::move(*w);
  thread_ = std::thread([this] { pump(); });
  return okResult();
}

void WatchManager::stop() {
  if (stopping_.exchange(true)) return;
  if (progressWatch_) progressWatch_->cancel();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  for (auto& s : streams_) s->finish();
  streams_.clear();
}

size_t WatchManager::activeStreams() const {
  std::lock_guard lock(mu_);
  return streams_.size();
}

std::map<const api::ResourceType*, size_t> WatchManager::streamsByType() const {
  std::lock_guard lock(mu_);
  std::map<const api::ResourceType*, size_t> out;
  for (const auto& s : streams_) ++out[s->req.type];
  return out;
}

void WatchManager::serve(const WatchRequest& request, std::shared_ptr<ResponseWriter> writer) {
  auto stream = std::make_shared<Stream>();
  stream->req = request;
  stream->writer = writer;
  if (request.timeout) stream->deadline = Clock::now() + *request.timeout;
  writer->startStream(200, {{"Content-Type", "application/json"}, {"Cache-Control", "no-cache, private"}});

  const std::string prefix = request.name ? ObjectStore::key(*request.type, request.ns, *request.name)
                                          : ObjectStore::prefix(*request.type, request.ns);
  int64_t from = request.fromRevision;
  EventCache cache;
  if (request.sendInitialState) {
    // The current state as ADDED events, read at one revision; the watch
    // continues from exactly that revision.
    std::string after;
    int64_t at = 0;
    while (true) {
      auto page = objects_.raw().list(prefix, kListPage, after, at);
      if (!page) {
        stream->sendError(statusJson(500, "InternalError", page.error().message));
        return;
      }
      at = page->revision;
      for (const auto& kv : page->kvs) {
        if (request.name && kv.key != prefix) continue;
        auto o = objects_.decode(*request.type, kv);
        if (o && stream->matches(*o->msg)) {
          stream->send("ADDED", api::dumpJson(renderObject(*request.type, *o->msg, request.format)));
        }
      }
      if (!page->more || page->kvs.empty()) break;
      // A page at a time: the initial state of a large collection is not
      // queued whole for a client that reads it slowly.
      if (!writer->waitPendingBelow(kMaxUnsentInitialBytes, kInitialWriteTimeout)) {
        stream->finish();
        return;
      }
      after = page->kvs.back().key;
    }
    from = at;
  }
  stream->lastRevision = from;
  auto w = objects_.raw().watch(prefix, from);
  if (!w) {
    if (w.error().code == ErrorCode::kOutOfRange) {
      auto compacted = objects_.raw().compactedRevision();
      std::string msg = "too old resource version: " + std::to_string(from) + " (" +
                        std::to_string((compacted ? *compacted : 0) + 1) + ")";
      stream->sendError(statusJson(410, "Expired", msg));
    } else {
      stream->sendError(statusJson(500, "InternalError", w.error().message));
    }
    return;
  }
  stream->watch = std::move(*w);
  if (request.initialEventsEndBookmark) stream->sendBookmark(from, true);
  // Replay what the store already holds for us, then hand over to the pump.
  std::vector<store::Event> events;
  while (true) {
    events.clear();
    auto r = stream->watch->next(events, std::chrono::milliseconds(0));
    if (!r) {
      if (r.error().code == ErrorCode::kOutOfRange) {
        stream->sendError(statusJson(410, "Expired", "too old resource version: " + std::to_string(from)));
      } else {
        stream->finish();
      }
      return;
    }
    if (events.empty()) break;
    for (const auto& ev : events) stream->deliver(objects_, cache, ev);
  }
  std::lock_guard lock(mu_);
  if (stopping_) {
    stream->finish();
    return;
  }
  streams_.push_back(std::move(stream));
}

void WatchManager::pump() {
  std::vector<store::Event> events;
  int64_t progress = 0;
  while (!stopping_.load()) {
    events.clear();
    auto r = progressWatch_->next(events, kPumpTick);
    if (!r) {
      if (stopping_.load()) break;
      // Fell behind the registry-wide buffer: restart it from now. Streams
      // are unaffected; only bookmarks lag until the next write.
      auto w = objects_.raw().watch("/registry/", 0);
      if (w) progressWatch_ = std::move(*w);
      else std::this_thread::sleep_for(kPumpTick);
      continue;
    }
    for (const auto& e : events) progress = std::max(progress, e.kv.modRevision);

    std::vector<std::shared_ptr<Stream>> streams;
    {
      std::lock_guard lock(mu_);
      streams = streams_;
    }
    EventCache cache;
    auto now = Clock::now();
    for (auto& s : streams) {
      if (s->writer->closed() || (s->deadline && now >= *s->deadline)) {
        s->finish();
        continue;
      }
      size_t taken = 0;
      while (taken < kMaxEventsPerRound) {
        std::vector<store::Event> batch;
        auto res = s->watch->next(batch, std::chrono::milliseconds(0));
        if (!res) {
          if (res.error().code == ErrorCode::kOutOfRange) {
            s->sendError(statusJson(410, "Expired", "watch fell behind: " + res.error().message));
          } else {
            s->finish();
          }
          break;
        }
        if (batch.empty()) break;
        taken += batch.size();
        for (const auto& ev : batch) s->deliver(objects_, cache, ev);
      }
      if (s->done) continue;
      // Everything up to `progress` was published before the registry-wide
      // watch saw it, and has just been drained above.
      bool drained = taken < kMaxEventsPerRound;
      if (drained) s->lastRevision = std::max(s->lastRevision, progress);
      if (s->req.bookmarks && drained && now - s->lastBookmark >= options_.bookmarkInterval) {
        s->sendBookmark(s->lastRevision, false);
      }
      if (s->writer->pendingBytes() > options_.maxPendingBytes) s->finish();
    }
    std::lock_guard lock(mu_);
    streams_.erase(std::remove_if(streams_.begin(), streams_.end(), [](const auto& s) { return s->done; }),
                   streams_.end());
  }
}

}  // namespace sluice::server
