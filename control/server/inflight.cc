#include "control/server/inflight.h"

#include <string>
#include <vector>

#include "control/server/responses.h"

namespace sluice::server {

InflightLimiter::InflightLimiter(int maxReadOnly, int maxMutating) {
  readOnly_.limit = maxReadOnly;
  mutating_.limit = maxMutating;
}

std::shared_ptr<void> InflightLimiter::tryAcquire(bool mutating) {
  Pool& pool = mutating ? mutating_ : readOnly_;
  if (pool.limit > 0) {
    int used = pool.used.load(std::memory_order_relaxed);
    do {
      if (used >= pool.limit) return nullptr;
    } while (!pool.used.compare_exchange_weak(used, used + 1, std::memory_order_acq_rel));
  } else {
    pool.used.fetch_add(1, std::memory_order_relaxed);
  }
  // A non-null token whose deleter gives the slot back.
  return std::shared_ptr<void>(&pool,
                               [](Pool* p) { p->used.fetch_sub(1, std::memory_order_acq_rel); });
}

bool isMutating(const HttpRequest& req) { return req.method != "GET" && req.method != "HEAD"; }

bool isLongRunning(const HttpRequest& req) {
  if (req.method == "GET") {
    std::string w = req.queryParam("watch");
    if (w == "true" || w == "1") return true;
  }
  const std::vector<std::string> seg = req.pathSegments();
  // /api/v1/... or /apis/<group>/<version>/..., as ApiServer routes them.
  size_t base = 0;
  if (seg.size() >= 2 && seg[0] == "api")
    base = 2;
  else if (seg.size() >= 3 && seg[0] == "apis")
    base = 3;
  else
    return false;
  std::vector<std::string> rest(seg.begin() + static_cast<std::ptrdiff_t>(base), seg.end());
  if (!rest.empty() && rest[0] == "watch") return true;  // the legacy /watch/ paths
  std::string subresource;
  if (rest.size() >= 5 && rest[0] == "namespaces")
    subresource = rest[4];
  else if (rest.size() >= 3 && rest[0] != "namespaces")
    subresource = rest[2];
  return subresource == "attach" || subresource == "exec" || subresource == "log" ||
         subresource == "portforward" || subresource == "proxy";
}

Admission tooManyRequests() {
  Response r = statusResponse(429, "TooManyRequests", "Too many requests, please try again later.",
                              Json{{"retryAfterSeconds", 1}});
  Admission a;
  a.admitted = false;
  a.status = r.status;
  a.headers = {{"Content-Type", r.contentType},
               {"Retry-After", "1"},
               {"Cache-Control", "no-cache, private"}};
  a.body = std::move(r.body);
  return a;
}

}  // namespace sluice::server
