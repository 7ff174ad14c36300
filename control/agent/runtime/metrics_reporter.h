// The agent's metrics-server role: every resolution period it samples the
// cgroups of this node's running pods and the node itself, and writes
// metrics.k8s.io/v1beta1 objects through the API (the server stores them;
// `kubectl top` and the HPA controller read them):
//   PodMetrics  <ns>/<pod>: per running container, cpu as a rate in
//               nanocores (cpuacct / cpu.stat usage delta over the window)
//               and memory as the working set (usage - inactive_file);
//   NodeMetrics <node>:     cpu from /proc/stat (non-idle time delta), memory
//               working set from /proc/meminfo (MemTotal - MemFree -
//               Inactive(file), what cAdvisor reports for the root cgroup).
// Each object carries `timestamp` (the sample's end) and `window` (the time
// between the two samples), as metrics-server's do; a rate needs two samples,
// so a pod's first PodMetrics comes one period after it started.
//
// PodMetrics carry the pod's labels (for `kubectl top pods -l`) plus
// sluice.io/node=<node>, by which a restarted agent finds and removes the
// stale ones of pods deleted while it was away. A deleted or terminating
// pod's PodMetrics are removed at the next period.
//
// Threading: its own thread; `pods` is called from it.
#pragma once

#include <atomic>
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

#include "control/agent/runtime/pod_worker.h"
#include "control/client/api_client.h"

namespace sluice::agent {

// The label on every PodMetrics an agent writes (its node's name).
inline constexpr const char* kMetricsNodeLabel = "sluice.io/node";

extern const client::Resource kPodMetricsResource, kNodeMetricsResource;

struct MetricsReporterOptions {
  std::string nodeName;
  std::chrono::milliseconds resolution = std::chrono::seconds(15);
};

class MetricsReporter {
 public:
  using PodLister = std::function<std::vector<PodWorker::Snapshot>()>;
  // cgroups may be null (no usable cgroups): then only NodeMetrics.
  MetricsReporter(client::ApiClient& client, const CgroupManager* cgroups,
                  MetricsReporterOptions options, PodLister pods);
  ~MetricsReporter();
  MetricsReporter(const MetricsReporter&) = delete;
  MetricsReporter& operator=(const MetricsReporter&) = delete;
  void stop();

 private:
  struct CpuSample {
    uint64_t nanos = 0;
    std::chrono::steady_clock::time_point at;
  };
  void run();
  void tick();
  void reportNode();
  void reportPods();
  // Create or replace; false (logged) on failure.
  bool write(const client::Resource& r, const std::string& ns, const Json& obj);

  client::ApiClient& client_;
  const CgroupManager* cgroups_;
  MetricsReporterOptions options_;
  PodLister pods_;
  std::map<std::string, CpuSample> last_;  // by "uid/container"
  std::optional<CpuSample> lastNode_;
  std::set<std::pair<std::string, std::string>> written_;  // (ns, name) of our PodMetrics
  bool listedStale_ = false;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace sluice::agent
