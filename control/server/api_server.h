// ApiServer: `sluice server`. Owns the store (timed: instrumented_store.h),
// the HTTPS listener (with kube-apiserver's /metrics: request_metrics.h), the REST
// handler, the watch pump, the Service allocations, discovery and the admin
// credentials, and wires them together:
//   request header -> bearer-token check (401) -> in-flight limits (429)
//     [on the I/O thread, before the body is read: inflight.h]
//   -> discovery/OpenAPI/version
//   -> /api/v1/..., /apis/<group>/<version>/... -> RestHandler
// On start it creates what a fresh cluster has: the default, kube-system,
// kube-public and kube-node-lease namespaces, and the `kubernetes` Service
// (first service IP, port 443) with Endpoints and an EndpointSlice pointing
// at this server (kubernetes_endpoints.h), kept so while it runs (a deleted
// Service comes back, as kube-apiserver's controller recreates it).
//
// The data directory holds the CA key, the admin token and every object:
// it is made 0700 (also when it already existed) and its files 0600.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "control/api/registry.h"
#include "control/server/discovery.h"
#include "control/server/authz.h"
#include "control/server/http_server.h"
#include "control/server/inflight.h"
#include "control/server/instrumented_store.h"
#include "control/server/object_store.h"
#include "control/server/node_proxy.h"
#include "control/server/rest_handler.h"
#include "control/server/service_allocations.h"
#include "control/server/watch_manager.h"
#include "control/store/store.h"

namespace sluice::server {

struct ApiServerOptions {
  std::string dataDir = "/var/lib/sluice";
  std::string listenHost = "127.0.0.1";
  uint16_t listenPort = 6443;  // 0 = any free port
  ServiceNetworkOptions network;
  WatchOptions watch;
  int workerThreads = 16;
  // kube-apiserver's --max-requests-inflight / --max-mutating-requests-inflight
  // (0: unlimited).
  int maxRequestsInflight = 400;
  int maxMutatingRequestsInflight = 200;
  // Connection cap and timeouts of the HTTPS listener.
  HttpLimits http;
  // History older than this many seconds is compacted away (0 = never);
  // watches and continue tokens older than that get 410 Gone.
  std::chrono::seconds compactInterval{300};
  bool writeKubeconfig = true;
  // The address in the `kubernetes` Service's endpoints (--advertise-address);
  // empty: the listen host, or 127.0.0.1 when that is a wildcard.
  std::string advertiseAddress;
  // How often those endpoints are checked and repaired (kube-apiserver's
  // endpoint reconciler runs every 10 s).
  std::chrono::milliseconds kubernetesEndpointsInterval{10000};
};

struct ResourceRequest;

class ApiServer final : public HttpHandler {
 public:
  // Opens (or creates) DATA_DIR/state.db, credentials and kubeconfig, then
  // serves. Errors carry what failed (directory, store lock, listen).
  static Result<std::unique_ptr<ApiServer>> start(ApiServerOptions options);
  // With a store the caller opened (tests).
  static Result<std::unique_ptr<ApiServer>> start(ApiServerOptions options, std::unique_ptr<store::Store> store);

  ~ApiServer() override;
  void stop();

  uint16_t port() const { return port_; }
  std::string url() const;
  const std::string& token() const { return token_; }
  // The token of node `nodeName` (authz.h): what its agent's kubeconfig
  // carries (`sluice node-kubeconfig`, and `sluice up` for its own node).
  std::string nodeToken(const std::string& nodeName) const { return authn_->nodeToken(nodeName); }
  const std::string& caCertPem() const { return caCertPem_; }
  std::string kubeconfigPath() const { return options_.dataDir + "/kubeconfig"; }
  store::Store& store() { return *store_; }
  WatchManager& watches() { return *watches_; }

  Admission admit(const HttpRequest& request) override;
  void handle(HttpRequest request, std::shared_ptr<ResponseWriter> writer) override;

 private:
  explicit ApiServer(ApiServerOptions options) : options_(std::move(options)) {}
  Result<void> init(std::unique_ptr<store::Store> store);
  Result<void> restoreAllocations();
  Result<void> bootstrap();
  // Creates default/kubernetes if missing, or fixes its target port.
  Result<void> ensureKubernetesService();
  void compactLoop();
  void kubernetesEndpointsLoop();
  std::optional<Response> route(const HttpRequest& req, const std::shared_ptr<ResponseWriter>& writer);
  // 403 when the request's identity may not do what it asks (authz.h).
  std::optional<Response> authorizeRequest(const HttpRequest& req, const ResourceRequest& rr);
  std::string advertiseAddress() const;
  // The families read from live state on each scrape of /metrics.
  std::vector<prometheus::MetricFamily> collectMetrics();

  ApiServerOptions options_;
  std::unique_ptr<store::Store> store_;
  InstrumentedStore* instrumentedStore_ = nullptr;  // store_, for object counts
  std::unique_ptr<ObjectStore> objects_;
  std::unique_ptr<ServiceAllocations> services_;
  std::unique_ptr<WatchManager> watches_;
  std::unique_ptr<RestHandler> rest_;
  std::unique_ptr<NodeProxy> nodeProxy_;  // pods/log, exec, portforward -> agents
  std::unique_ptr<Authenticator> authn_;
  std::unique_ptr<Discovery> discovery_;
  std::unique_ptr<InflightLimiter> inflight_;
  std::unique_ptr<HttpServer> http_;
  std::string token_;
  std::string caCertPem_;
  uint16_t port_ = 0;

  std::mutex stopMu_;
  std::condition_variable stopCv_;
  bool stopped_ = false;
  std::thread compactor_;
  std::thread endpointsReconciler_;
};

}  // namespace sluice::server
