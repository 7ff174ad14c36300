// kube-apiserver's max-in-flight filter (--max-requests-inflight,
// --max-mutating-requests-inflight): a request takes a slot of its pool
// (read-only: GET/HEAD; mutating: the rest) from the moment its header has
// arrived until its handler returned; with the pool full it is answered 429
// with Retry-After: 1. Long-running requests take no slot.
//
// Unlike kube-apiserver, no user is exempt: sluice's admin token is its
// only identity (kube-apiserver lets system:masters through), and the 429
// is a Kubernetes Status (kube-apiserver writes the same message as plain
// text; client-go reads Retry-After either way and retries).
#pragma once

#include <atomic>
#include <memory>

#include "control/server/http_server.h"

namespace sluice::server {

class InflightLimiter {
 public:
  // 0 or less: that pool is unlimited.
  InflightLimiter(int maxReadOnly, int maxMutating);

  // A slot (released when the last copy is dropped), or nullptr when the
  // request's pool is full. Thread-safe.
  std::shared_ptr<void> tryAcquire(bool mutating);
  // Slots of that pool in use now (apiserver_current_inflight_requests).
  int inUse(bool mutating) const { return (mutating ? mutating_ : readOnly_).used.load(std::memory_order_relaxed); }

 private:
  struct Pool {
    int limit = 0;
    std::atomic<int> used{0};
  };
  Pool readOnly_;
  Pool mutating_;
};

// Whether kube-apiserver counts the request as long-running (its
// BasicLongRunningRequestCheck): watch and proxy verbs, and the attach,
// exec, log, portforward and proxy subresources.
bool isLongRunning(const HttpRequest& req);
// Not GET/HEAD (kube-apiserver: any verb but get, list, watch).
bool isMutating(const HttpRequest& req);

// The 429 Status with Retry-After: 1.
Admission tooManyRequests();

}  // namespace sluice::server
