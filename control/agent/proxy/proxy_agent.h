// ProxyAgent: the proxy half of `sluice agent` (and of `sluice up`) in one
// object — the Datapath the mode factory chose (or one given, for tests),
// ProxySync feeding it from the API, the mode claiming service addresses
// after each change, the agent's metrics endpoint (/metrics with the
// proxy's series and the agent registry's — pods, probes, runtime errors —
// plus /healthz, /livez, /readyz) and the node-local gRPC debug API. The pod runtime calls onPodInterface() when a pod's
// host-side veth appears. Nothing here knows which mode runs.
//
// Restart-safe: stop() leaves the datapath programmed, and the next start()
// adopts it, so established connections keep flowing while the agent is
// down and after.
#pragma once

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "control/agent/proxy/debug_client.h"
#include "control/agent/proxy/debug_service.h"
#include "control/agent/proxy/health_check.h"
#include "control/agent/proxy/mode_factory.h"
#include "control/agent/proxy/proxy_sync.h"
#include "control/client/api_client.h"
#include "control/metrics/endpoint.h"
#include "dataplane/datapath.h"

namespace sluice::agent {

struct ProxyAgentOptions {
  // nodeName: endpoints with this nodeName are node-local; nodeAddresses:
  // NodePort addresses and SNAT source; uplink: "" = no NodePort/LB from
  // outside.
  NodeConfig node;
  std::string mode = "ebpf";  // a name modeDrivers() knows
  AllModeFlags modeFlags;     // --<mode>-<flag> values
  std::string metricsAddr = "127.0.0.1:10249";    // "" = no metrics server
  std::string debugSocket = kDefaultDebugSocket;  // "" = no debug API
  std::chrono::milliseconds minSyncPeriod{20};
  // start() fails if the first list + full sync takes longer.
  std::chrono::milliseconds initialSyncTimeout{60000};
  // Serve the healthCheckNodePort of eTP=Local Services (kube-proxy does).
  bool healthChecks = true;
};

class ProxyAgent {
 public:
  // Creates the datapath (mode factory), starts syncing, waits for the
  // first full sync, then serves metrics and the debug API. `client` must
  // outlive the agent.
  static Result<std::unique_ptr<ProxyAgent>> start(client::ApiClient& client,
                                                   ProxyAgentOptions options);
  // The same with a datapath made by the caller (options.mode is ignored).
  static Result<std::unique_ptr<ProxyAgent>> start(client::ApiClient& client,
                                                   ProxyAgentOptions options,
                                                   std::unique_ptr<Datapath> datapath);
  ~ProxyAgent();
  ProxyAgent(const ProxyAgent&) = delete;
  ProxyAgent& operator=(const ProxyAgent&) = delete;

  // Stops watching and serving; the datapath stays programmed (see above).
  void stop();

  // A pod's host-side interface appeared / is going (per-packet service
  // translation for the pod's traffic).
  Result<void> onPodInterface(const std::string& ifname);
  Result<void> onPodInterfaceRemoved(const std::string& ifname);

  ProxySync& sync() { return *sync_; }
  Datapath& datapath() { return *datapath_; }
  // The metrics server's port (0 without one).
  uint16_t metricsPort() const { return metrics_ ? metrics_->port() : 0; }
  // The healthCheckNodePorts served now.
  std::set<uint16_t> healthCheckPorts() const {
    return health_ ? health_->ports() : std::set<uint16_t>();
  }
  // Service addresses the node answers for now (LoadBalancer IPs on the
  // uplink in the eBPF mode).
  std::set<IpAddress> lbAddresses() const { return datapath_->claimedAddresses(); }
  const ProxyAgentOptions& options() const { return options_; }

 private:
  explicit ProxyAgent(ProxyAgentOptions options) : options_(std::move(options)) {}
  void onApplied(const ServiceDiff& diff, bool full);

  const ProxyAgentOptions options_;
  std::unique_ptr<Datapath> datapath_;
  std::unique_ptr<ProxySync> sync_;
  std::unique_ptr<metrics::Endpoint> metrics_;
  std::unique_ptr<DebugServer> debug_;
  std::unique_ptr<HealthCheckServer> health_;  // null when options say no
};

}  // namespace sluice::agent
