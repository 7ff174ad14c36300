// WatchManager: serves `?watch=1` streams from store watches without a
// thread per stream.
//
// A request's handler thread opens the store watch (replaying history from
// the requested resourceVersion), sends the stream header and any initial
// events, drains what is already buffered, then hands the stream to the one
// pump thread. The pump blocks on a store watch of the whole registry (it
// fires on every write), then drains each stream's store watch, filters by
// label/field selector (an object leaving the selection is DELETED, one
// entering it ADDED, as Kubernetes' watch cache does), encodes each event
// once per revision and format for all streams, and queues the chunks on the
// connection. The registry-wide watch also tells the pump which revision
// every stream has seen everything up to, which is what BOOKMARK events
// carry. Streams end on client disconnect, timeoutSeconds, a slow consumer
// (too many unsent bytes), or compaction overtaking them (ERROR 410).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "control/api/registry.h"
#include "control/api/selector.h"
#include "control/server/http_server.h"
#include "control/server/object_store.h"
#include "control/server/output.h"

namespace sluice::server {

struct WatchOptions {
  // How often a stream that asked for bookmarks gets one (Kubernetes: ~1 min).
  std::chrono::milliseconds bookmarkInterval{60'000};
  // A stream whose client has this many bytes unsent is ended; the client
  // re-lists and re-watches, as after any watch error.
  size_t maxPendingBytes = 64 * 1024 * 1024;
};

struct WatchRequest {
  const api::ResourceType* type = nullptr;
  std::string ns;                   // "" = all namespaces / cluster-scoped
  std::optional<std::string> name;  // fieldSelector metadata.name=...
  api::Selector labels;
  api::FieldSelector fields;
  // Events after this revision; 0 = send the current state as ADDED first.
  int64_t fromRevision = 0;
  bool sendInitialState = false;
  bool bookmarks = false;
  bool initialEventsEndBookmark = false;  // sendInitialEvents=true
  OutputFormat format;
  std::optional<std::chrono::seconds> timeout;
};

class WatchManager {
 public:
  WatchManager(ObjectStore& objects, WatchOptions options);
  ~WatchManager();
  WatchManager(const WatchManager&) = delete;
  WatchManager& operator=(const WatchManager&) = delete;

  Result<void> start();
  // Ends every stream and joins the pump.
  void stop();

  // Runs on the request's handler thread; answers through `writer`.
  void serve(const WatchRequest& request, std::shared_ptr<ResponseWriter> writer);

  size_t activeStreams() const;
  // Open streams by the resource they watch (apiserver_registered_watchers).
  std::map<const api::ResourceType*, size_t> streamsByType() const;

  struct Stream;

 private:
  void pump();

  ObjectStore& objects_;
  WatchOptions options_;
  std::unique_ptr<store::Watch> progressWatch_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<Stream>> streams_;
  std::thread thread_;
};

}  // namespace sluice::server
