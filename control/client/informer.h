// Informer: client-go's shared informer for one resource — list, then watch
// from the list's resourceVersion, keeping a local cache of every object and
// calling handlers for each change. A 410 Gone (or any broken stream) makes
// it re-list and deliver the difference as adds, updates and deletes, so
// handlers see every object's latest state and every deletion exactly once.
//
// Handlers run on the informer's thread, in event order; they should only
// enqueue keys. Cache reads are thread-safe and return immutable snapshots.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "control/client/api_client.h"

namespace sluice::client {

using ObjectPtr = std::shared_ptr<const Json>;

struct InformerHandlers {
  std::function<void(const ObjectPtr&)> onAdd;
  std::function<void(const ObjectPtr& old, const ObjectPtr& cur)> onUpdate;
  std::function<void(const ObjectPtr&)> onDelete;
};

class Informer {
 public:
  // Watches `resource` in `ns` ("" = all namespaces), filtered by the
  // selectors in `opts` (resourceVersion/limit/continue are the informer's).
  Informer(ApiClient& client, Resource resource, std::string ns = {}, ListOptions opts = {});
  ~Informer();
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Before start().
  void addHandlers(InformerHandlers handlers);
  void start();
  void stop();
  // True once the first list has been delivered to the handlers.
  bool waitForSync(std::chrono::milliseconds timeout);
  bool synced() const { return synced_.load(); }

  // Cache reads. Keys are "ns/name" (or "name" for cluster-scoped kinds).
  ObjectPtr get(const std::string& key) const;
  ObjectPtr get(const std::string& ns, const std::string& name) const;
  std::vector<ObjectPtr> list(const std::string& ns = {}) const;
  size_t size() const;
  // The resourceVersion the cache reflects.
  std::string resourceVersion() const;
  const Resource& resource() const { return resource_; }

 private:
  void run();
  // Lists everything and reconciles the cache with it; returns the list's
  // resourceVersion.
  Result<std::string> relist();
  void apply(const std::string& type, const Json& object);

  ApiClient& client_;
  Resource resource_;
  std::string ns_;
  ListOptions opts_;
  std::vector<InformerHandlers> handlers_;

  mutable std::mutex mu_;
  std::map<std::string, ObjectPtr> cache_;
  std::string resourceVersion_;

  std::atomic<bool> stop_{false};
  std::atomic<bool> synced_{false};
  std::mutex syncMu_;
  std::condition_variable syncCv_;
  std::thread thread_;
};

}  // namespace sluice::client
