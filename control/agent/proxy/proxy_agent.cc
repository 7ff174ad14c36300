#include "control/agent/proxy/proxy_agent.h"

#include <sys/utsname.h>

#include "dataplane/log.h"

namespace sluice::agent {

Result<std::unique_ptr<ProxyAgent>> ProxyAgent::start(client::ApiClient& client,
                                                      ProxyAgentOptions options) {
  auto dp = createDatapath(options.mode, options.node, options.modeFlags);
  if (!dp) return dp.error();
  return start(client, std::move(options), std::move(*dp));
}

Result<std::unique_ptr<ProxyAgent>> ProxyAgent::start(client::ApiClient& client,
                                                      ProxyAgentOptions options,
                                                      std::unique_ptr<Datapath> datapath) {
  std::unique_ptr<ProxyAgent> a(new ProxyAgent(std::move(options)));
  const ProxyAgentOptions& o = a->options_;
  a->datapath_ = std::move(datapath);
  ProxyMode& mode = a->datapath_->mode();
  // What this node's mode cannot do, said once at start (per Service, the
  // sync loop says it again for each Service that asks for it).
  utsname u{};
  const std::string kernel = ::uname(&u) == 0 ? std::string(u.release) : "";
  for (const auto& [feature, effect] : mode.capabilities().missing) {
    log::warning("proxy", "the mode lacks a feature on this node",
                 {{"mode", mode.name()}, {"kernel", kernel}, {"feature", toString(feature)}, {"effect", effect}});
  }

  if (o.healthChecks) a->health_ = std::make_unique<HealthCheckServer>();
  ProxySyncOptions so;
  so.translator.nodeName = o.node.nodeName;
  so.translator.nodeAddresses = o.node.nodeAddresses;
  so.minSyncPeriod = o.minSyncPeriod;
  ProxyAgent* self = a.get();
  a->sync_ = std::make_unique<ProxySync>(
      client, mode, so, [self](const ServiceDiff& diff, bool full) { self->onApplied(diff, full); });
  a->sync_->start();
  if (!a->sync_->waitForInitialSync(o.initialSyncTimeout)) {
    std::string why = a->sync_->lastError();
    a->stop();
    return Error::unavailable("proxy: no initial sync within " +
                              std::to_string(o.initialSyncTimeout.count()) + " ms" +
                              (why.empty() ? " (is the API server reachable?)" : ": " + why));
  }
  if (!o.metricsAddr.empty()) {
    metrics::EndpointOptions mo;
    mo.address = o.metricsAddr;
    mo.sources = {metrics::collect(metrics::agent()), [self] { return self->sync_->collect(); }};
    // Ready once the datapath holds the API's Services (kube-proxy's
    // healthz waits for its first sync the same way).
    mo.ready = [self]() -> std::optional<std::string> {
      if (self->sync_->runs() == 0) return "proxy: no successful sync yet";
      return std::nullopt;
    };
    auto m = metrics::Endpoint::start(std::move(mo));
    if (!m) {
      a->stop();
      return m.error();
    }
    a->metrics_ = std::move(*m);
  }
  if (!o.debugSocket.empty()) {
    auto d = DebugServer::start(o.debugSocket, mode, [self] { return self->sync_->table(); });
    if (!d) {
      a->stop();
      return d.error();
    }
    a->debug_ = std::move(*d);
  }
  return a;
}

ProxyAgent::~ProxyAgent() { stop(); }

void ProxyAgent::stop() {
  if (debug_) debug_->stop();
  if (metrics_) metrics_->stop();
  if (sync_) sync_->stop();
  health_.reset();
  if (datapath_) datapath_->stop();
}

void ProxyAgent::onApplied(const ServiceDiff& diff, bool full) {
  if (auto r = datapath_->claimServiceAddresses(diff, full); !r) {
    log::warning(log::Limit{"proxy/claim"}, "proxy", "claiming service addresses failed", {{"err", r.error().message}});
  }
  if (health_) {
    if (auto r = health_->update(diff, full); !r) {
      log::warning(log::Limit{"proxy/health-check"}, "proxy", "health check servers not updated",
                   {{"err", r.error().message}});
    }
  }
}

Result<void> ProxyAgent::onPodInterface(const std::string& ifname) {
  return datapath_->attachPodInterface(ifname);
}

Result<void> ProxyAgent::onPodInterfaceRemoved(const std::string& ifname) {
  return datapath_->detachPodInterface(ifname);
}

}  // namespace sluice::agent
