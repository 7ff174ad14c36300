#include "control/agent/proxy/proxy_agent.h"

#include <iostream>

namespace sluice::agent {

Result<std::unique_ptr<ProxyAgent>> ProxyAgent::start(client::ApiClient& client,
                                                      ProxyAgentOptions options) {
  std::unique_ptr<ProxyAgent> a(new ProxyAgent(std::move(options)));
  const ProxyAgentOptions& o = a->options_;

  ModeOptions mo;
  mo.mode = o.mode;
  mo.pinDir = o.pinDir;
  mo.cgroupPath = o.cgroupPath;
  mo.uplink = o.uplink;
  mo.uplinkXdp = o.uplinkXdp;
  mo.nodeAddresses = o.nodeAddresses;
  auto dp = createDatapath(mo);
  if (!dp) return dp.error();
  a->datapath_ = std::move(*dp);
  if (a->datapath_->uplinkIfindex() != 0) {
    a->lb_ = std::make_unique<LbAddresses>(a->datapath_->uplinkIfindex());
  }

  ProxySyncOptions so;
  so.translator.nodeName = o.nodeName;
  so.translator.nodeAddresses = o.nodeAddresses;
  so.minSyncPeriod = o.minSyncPeriod;
  ProxyAgent* self = a.get();
  a->sync_ = std::make_unique<ProxySync>(
      client, a->datapath_->mode(), so,
      [self](const ServiceDiff& diff, bool full) { self->onApplied(diff, full); });
  a->sync_->start();
  if (!a->sync_->waitForInitialSync(o.initialSyncTimeout)) {
    std::string why = a->sync_->lastError();
    a->stop();
    return Error::unavailable("proxy: no initial sync within " +
                              std::to_string(o.initialSyncTimeout.count()) + " ms" +
                              (why.empty() ? " (is the API server reachable?)" : ": " + why));
  }
  if (!o.metricsAddr.empty()) {
    auto m = MetricsServer::start(o.metricsAddr, [self] { return self->sync_->renderMetrics(); });
    if (!m) {
      a->stop();
      return m.error();
    }
    a->metrics_ = std::move(*m);
  }
  if (!o.debugSocket.empty()) {
    auto d = DebugServer::start(o.debugSocket, a->datapath_->ebpf(), o.mode,
                                [self] { return self->sync_->table(); });
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
}

void ProxyAgent::onApplied(const ServiceDiff& diff, bool full) {
  std::lock_guard lock(lbMu_);
  if (!lb_) return;
  if (auto r = lb_->apply(diff, full); !r) {
    std::cerr << "sluice agent: proxy: " << r.error().message << "\n";
  }
}

Result<void> ProxyAgent::onPodInterface(const std::string& ifname) {
  return datapath_->attachPodInterface(ifname);
}

Result<void> ProxyAgent::onPodInterfaceRemoved(const std::string& ifname) {
  return datapath_->detachPodInterface(ifname);
}

std::set<IpAddress> ProxyAgent::lbAddresses() const {
  std::lock_guard lock(lbMu_);
  return lb_ ? lb_->addresses() : std::set<IpAddress>();
}

}  // namespace sluice::agent
