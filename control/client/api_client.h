// ApiClient: a Kubernetes REST client over HTTPS (Boost.Beast), the way
// client-go talks to an API server: bearer token or client certificate,
// JSON bodies, Status objects mapped to error codes, and watch streams read
// event by event. The controllers, the agent's pod runtime and its proxy
// sync all use it, against `sluice server` or any Kubernetes API server.
//
// Threading: every method may be called from any thread; connections are
// pooled and reused (keep-alive), one request per connection at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/client/kubeconfig.h"
#include "dataplane/result.h"

namespace sluice::client {

using Json = nlohmann::json;

// A REST resource: group/version/plural and whether it is namespaced.
struct Resource {
  std::string group;  // "" for core
  std::string version;
  std::string plural;
  bool namespaced = true;

  // "/api/v1/namespaces/NS/pods/NAME/SUB", or the collection path when name
  // is empty ("/api/v1/pods" across namespaces when ns is empty too).
  std::string path(std::string_view ns = {}, std::string_view name = {}, std::string_view sub = {}) const;
  std::string apiVersion() const { return group.empty() ? version : group + "/" + version; }
};

namespace resources {
extern const Resource kNamespaces, kNodes, kPods, kServices, kEndpoints, kEvents, kReplicaSets, kDeployments,
    kEndpointSlices, kLeases, kHorizontalPodAutoscalers;
}  // namespace resources

struct ListOptions {
  std::string labelSelector;
  std::string fieldSelector;
  int64_t limit = 0;
  std::string continueToken;
  std::string resourceVersion;
  // Appends "?labelSelector=...&..." (or nothing).
  std::string query() const;
};

struct HttpResult {
  int status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

class ApiClient {
 public:
  static Result<std::unique_ptr<ApiClient>> create(Kubeconfig config, std::string userAgent = "sluice");
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  const Kubeconfig& config() const;

  // One request. Transport failures (connect, TLS, reset) are kUnavailable;
  // any HTTP status is returned as is.
  Result<HttpResult> request(const std::string& method, const std::string& target, const std::string& body = {},
                             const std::string& contentType = "application/json",
                             const std::string& accept = "application/json");

  // JSON verbs. Non-2xx answers become errors carrying the Status message:
  // 404 kNotFound, 409 AlreadyExists kAlreadyExists, 409 Conflict kAborted,
  // 410 kOutOfRange, 400/422 kInvalidArgument, 401/403 kFailedPrecondition,
  // 429/5xx and transport kUnavailable.
  Result<Json> get(const Resource& r, std::string_view ns, std::string_view name);
  Result<Json> list(const Resource& r, std::string_view ns, const ListOptions& opts = {});
  Result<Json> create(const Resource& r, std::string_view ns, const Json& obj);
  // PUT with obj.metadata.resourceVersion as the precondition.
  Result<Json> update(const Resource& r, std::string_view ns, const Json& obj);
  Result<Json> updateStatus(const Resource& r, std::string_view ns, const Json& obj);
  // patchType: "application/merge-patch+json", "application/json-patch+json",
  // "application/strategic-merge-patch+json".
  Result<Json> patch(const Resource& r, std::string_view ns, std::string_view name, const Json& patch,
                     const std::string& patchType = "application/merge-patch+json", std::string_view sub = {});
  // DELETE with DeleteOptions (propagationPolicy, preconditions,
  // gracePeriodSeconds); returns the object or Status the server answered.
  Result<Json> remove(const Resource& r, std::string_view ns, std::string_view name,
                      const Json& deleteOptions = Json::object());
  // Any JSON call: method + full target path (for subresources such as
  // pods/binding, or paths outside the helpers).
  Result<Json> call(const std::string& method, const std::string& target, const Json* body = nullptr,
                    const std::string& contentType = "application/json");

  // Watch events: type is ADDED, MODIFIED, DELETED or BOOKMARK.
  using WatchHandler = std::function<bool(const std::string& type, const Json& object)>;
  // Streams `r` (in ns, or all namespaces) from `opts.resourceVersion` with
  // bookmarks, calling `onEvent` for each event until it returns false,
  // `stop` becomes true, the server ends the stream, or `timeout` passes.
  // Returns ok when the stream ended normally (the caller re-watches from
  // the last resourceVersion it saw), kOutOfRange for 410 Gone (the caller
  // must re-list), other errors otherwise.
  Result<void> watch(const Resource& r, std::string_view ns, const ListOptions& opts, const WatchHandler& onEvent,
                     const std::atomic<bool>* stop, std::chrono::seconds timeout = std::chrono::seconds(300));
  // Ends the watch running with this `stop` flag now, even one blocked in
  // the middle of reading a partial TLS record (shuts its socket down).
  void cancelWatch(const std::atomic<bool>* stop);

  struct Impl;

 private:
  explicit ApiClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Maps an HTTP status and Kubernetes Status body to an Error.
Error statusError(int httpStatus, const std::string& body, const std::string& what);

// Small helpers for objects as JSON.
std::string namespaceOf(const Json& obj);
std::string nameOf(const Json& obj);
std::string uidOf(const Json& obj);
// "ns/name" or "name" — the work-queue key client-go uses.
std::string keyOf(const Json& obj);
// The controller ownerReference of obj, if any.
const Json* controllerRef(const Json& obj);

}  // namespace sluice::client
