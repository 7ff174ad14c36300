// The agent's pod runtime (the kubelet's role): watches the pods bound to
// this node and, per pod, wires a network namespace through the CNI plugin,
// runs init containers in order and then the containers, restarts them by
// policy with back-off, runs probes, reports status, and on deletion stops
// them gracefully, releases the network and removes the pod.
//
// State lives under the data directory so a restarted agent adopts running
// pods instead of killing them:
//   DATA/pods/<uid>/state.json                    netns, pod IP, cgroup dirs,
//                                                 per-container pid + start time
//   DATA/pods/<uid>/logs/<container>/<restartCount>.log
//   DATA/pods/<uid>/containers/<container>/<restartCount>.exit   (written by the shim)
//   DATA/pods/<uid>/volumes/<volume>/             emptyDir
//   DATA/cni-cache/, DATA/ipam/                   CNI result cache and sluice-ipam's allocations
// and each pod's network namespace is /run/netns/sluice-<uid>.
//
// Threading: one informer thread, one worker thread per pod, one
// housekeeping thread. stop() leaves pods running (that is what adoption
// relies on); teardownAll() removes everything the data directory records.
//
// Each pod gets a cgroup, <cgroupParent>/pod<uid>/<container>, holding the
// container's limits (cgroups.h), recorded in state.json and removed with
// the pod; a MetricsReporter thread writes PodMetrics/NodeMetrics from them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control/client/api_client.h"
#include "control/client/informer.h"
#include "dataplane/result.h"

namespace sluice::agent {

struct PodRuntimeOptions {
  std::string nodeName;
  std::string dataDir;
  // CNI_PATH: where sluice-cni, sluice-ipam (and reference plugins) live.
  std::vector<std::string> cniPluginDirs = {"/usr/lib/sluice/cni", "/opt/cni/bin", "/usr/lib/cni"};
  // A .conflist/.conf text; empty: sluice-cni with sluice-ipam on podCidr.
  std::string cniConfig;
  std::string podCidr = "10.244.0.0/24";
  // The node's network namespace (a simulated node); empty: the agent's own.
  // CNI plugins run in it, so pod veths hang there.
  std::string nodeNetnsPath;
  // status.hostIP; empty: the node namespace's first non-loopback IPv4.
  std::string hostIp;
  // What `sluice/echo` images run, before "--port N ... --tag T".
  std::vector<std::string> echoCommand = {"/proc/self/exe", "echo"};
  // Restart back-off: base doubled per restart up to max (kubelet: 10 s, 5 min).
  std::chrono::milliseconds backoffBase = std::chrono::seconds(10);
  std::chrono::milliseconds backoffMax = std::chrono::minutes(5);
  // How often each pod's processes are checked.
  std::chrono::milliseconds syncPeriod = std::chrono::milliseconds(250);
  // Called with a pod's host-side interface (in the node namespace) after
  // CNI ADD (up = true) and before CNI DEL (up = false): the proxy agent's
  // ProxyAgent::onPodInterface / onPodInterfaceRemoved. Runs on a pod
  // worker's thread.
  std::function<void(const std::string& hostIfName, bool up)> podInterfaceHook;
  // Where pod cgroups go (cgroups.h): relative to the agent's own cgroup in
  // each hierarchy, or absolute from the hierarchy's root ("/kubepods").
  std::string cgroupParent = "sluice";
  // How often PodMetrics/NodeMetrics are written (metrics-server's
  // --metric-resolution); zero: not at all.
  std::chrono::milliseconds metricsResolution = std::chrono::seconds(15);
};

class PodWorker;
class MetricsReporter;
struct PodEnv;
struct PersistedPod;

class PodRuntime {
 public:
  // Adopts pods recorded under dataDir, then starts watching.
  static Result<std::unique_ptr<PodRuntime>> start(client::ApiClient& client,
                                                   PodRuntimeOptions options);
  ~PodRuntime();
  PodRuntime(const PodRuntime&) = delete;
  PodRuntime& operator=(const PodRuntime&) = delete;

  // Stops watching and syncing; containers keep running.
  void stop();
  // Kills every container recorded under dataDir, releases their network
  // and removes their state (tests' cleanup, `sluice agent --cleanup`).
  static void teardownAll(const PodRuntimeOptions& options);

  const std::string& hostIp() const;

 private:
  PodRuntime(client::ApiClient& client, PodRuntimeOptions options);
  void onPod(const client::ObjectPtr& pod);
  void onPodDeleted(const client::ObjectPtr& pod);
  void housekeeping();

  client::ApiClient& client_;
  std::unique_ptr<PodEnv> env_;
  std::unique_ptr<client::Informer> informer_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<PodWorker>> workers_;      // by uid
  std::map<std::string, std::unique_ptr<PersistedPod>> restored_;  // by uid, until claimed
  std::atomic<bool> stop_{false};
  std::condition_variable cv_;
  std::thread housekeeper_;
  std::unique_ptr<MetricsReporter> metrics_;
};

}  // namespace sluice::agent
