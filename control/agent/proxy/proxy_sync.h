// ProxySync: the agent's proxy control loop (kube-proxy's role). Informers
// on Services and EndpointSlices (all namespaces) mark the Kubernetes
// services they touch dirty; a sync thread translates the dirty ones
// (ServiceTranslator), turns the difference to what is programmed into a
// ServiceDiff and hands it to ProxyMode::apply(). The datapath gets one full
// sync(), at start (adopting what a previous agent left); after that only
// diffs, except to recover from a failed apply (the next round resyncs,
// dataplane/proxy_mode.h states why) and when the mode's epoch says it lost
// state (a restarted DPDK process, say).
//
// What a Service asks for that the mode cannot do (ModeCapabilities) is said
// once per service port and feature: a log line, a Warning Event on the
// Service, and the sluice_proxy_unsupported_requests gauge.
//
// Runs are rate-limited like kube-proxy's BoundedFrequencyRunner: at most one
// per minSyncPeriod, so a burst of changes coalesces into one diff.
//
// Metrics: network programming latency (from an EndpointSlice's
// endpoints.kubernetes.io/last-change-trigger-time to apply() returning),
// sync duration, what is programmed and the mode's datapath counters.
//
// Threading: informer handlers only mark keys; everything else runs on the
// sync thread. table(), collect(), renderMetrics() and the counters are
// thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/histogram.h>

#include "control/agent/proxy/service_translator.h"
#include "control/client/informer.h"
#include "control/metrics/registry.h"
#include "dataplane/proxy_mode.h"
#include "dataplane/service_diff.h"

namespace sluice::agent {

inline constexpr const char* kLastChangeTriggerTimeAnnotation =
    "endpoints.kubernetes.io/last-change-trigger-time";

struct ProxySyncOptions {
  TranslatorOptions translator;
  // Minimum time between two runs (kube-proxy --iptables-min-sync-period is
  // 1 s; a BPF map update costs microseconds, so a short period only bounds
  // how many runs a burst causes).
  std::chrono::milliseconds minSyncPeriod{20};
  // After a failed apply or sync: wait this long, then resync fully.
  std::chrono::milliseconds retryPeriod{1000};
};

class ProxySync {
 public:
  // Called on the sync thread after every successful sync or apply with what
  // it programmed. full: `diff` is ServiceDiff::fullSync of the whole table
  // (start, or a resync): the receiver starts over from it.
  using AppliedHook = std::function<void(const ServiceDiff& diff, bool full)>;

  ProxySync(client::ApiClient& client, ProxyMode& mode, ProxySyncOptions options,
            AppliedHook onApplied = {});
  ~ProxySync();
  ProxySync(const ProxySync&) = delete;
  ProxySync& operator=(const ProxySync&) = delete;

  void start();
  void stop();
  // True once the informers listed everything and mode.sync() succeeded.
  bool waitForInitialSync(std::chrono::milliseconds timeout);

  // The table programmed (or being programmed) now.
  ServiceTable table() const;
  uint64_t runs() const;          // successful sync + apply rounds
  uint64_t errors() const;        // failed rounds
  std::string lastError() const;  // empty if none
  // The proxy's metric families, read at scrape time (metrics::CollectFn).
  std::vector<prometheus::MetricFamily> collect() const;
  // Their Prometheus text.
  std::string renderMetrics() const;

 private:
  using Clock = std::chrono::steady_clock;
  using WallTime = std::chrono::system_clock::time_point;

  void markService(const std::string& key);
  void onSlice(const client::ObjectPtr& old, const client::ObjectPtr& cur, bool deleted);
  void run();
  bool fullSync();
  // Says what `services` ask for that the mode cannot do, once each.
  void reportUnmet(const std::vector<Service>& services, bool full);
  void postUnsupportedEvent(const ServiceKey& key, const UnmetRequest& request);
  bool applyDirty(std::set<std::string> dirty, std::map<std::string, std::vector<WallTime>> triggers);
  // The dataplane Services of Kubernetes service "ns/name" from the caches.
  std::vector<Service> translate(const std::string& key);
  void recordError(const std::string& what);

  client::ApiClient& client_;
  ProxyMode& mode_;
  const ProxySyncOptions options_;
  const ServiceTranslator translator_;
  AppliedHook onApplied_;
  const WallTime startedAt_ = std::chrono::system_clock::now();

  std::unique_ptr<client::Informer> services_;
  std::unique_ptr<client::Informer> slices_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;
  bool stop_ = false;
  bool initialSynced_ = false;
  std::set<std::string> dirty_;  // Kubernetes services "ns/name"
  std::map<std::string, std::vector<WallTime>> triggers_;  // by service, pending
  // Slices by service ("ns/name" -> slice keys): the informer cache has no index.
  std::map<std::string, std::set<std::string>> slicesOf_;
  ServiceTable desired_;  // what the datapath has been told to program
  // desired_'s service ports by Kubernetes service ("ns/name").
  std::map<std::string, std::set<ServiceKey>> portsOf_;
  // Services left out because they conflict with another's frontend
  // (retried every run until the other lets go).
  std::set<std::string> conflicted_;
  bool stateLost_ = false;     // the mode's listener fired: resync
  uint64_t syncedEpoch_ = 0;   // mode epoch the last full sync programmed
  uint64_t resyncs_ = 0;       // full syncs after the first
  // Unmet requests said so far, by service port (sync thread only, read
  // under mu_ for metrics).
  std::map<ServiceKey, std::vector<UnmetRequest>> unmet_;
  uint64_t runs_ = 0;
  uint64_t errors_ = 0;
  std::string lastError_;
  double lastSyncTimestamp_ = 0;

  // 1 ms .. ~17 min doubling: 1 ms-resolution programming latencies and
  // multi-minute outliers (kube-proxy's buckets start at 250 ms).
  prometheus::Histogram programmingLatency_{metrics::exponentialBuckets(0.001, 2, 21)};
  prometheus::Histogram syncDuration_{metrics::exponentialBuckets(0.001, 2, 21)};
  std::thread thread_;
};


}  // namespace sluice::agent
