// One pod's lifecycle on this node (the kubelet's pod worker): network
// namespace through CNI, init containers in order, containers with restart
// policy and back-off, probes, status, graceful termination. Runs on its own
// thread, woken by spec changes and every syncPeriod.
//
// PersistedPod is what survives an agent restart (DATA/pods/<uid>/state.json);
// everything else (back-off deadlines, probe counters) starts afresh.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cni/netns.h"
#include "cni/runtime.h"
#include "control/agent/runtime/cgroups.h"
#include "control/agent/runtime/container.h"
#include "control/agent/runtime/pod_runtime.h"
#include "control/agent/runtime/probes.h"

namespace sluice::agent {

using Json = nlohmann::json;

// Shared by every worker of one PodRuntime.
struct PodEnv {
  client::ApiClient* client = nullptr;
  PodRuntimeOptions options;
  std::optional<cni::Netns> nodeNetns;
  std::optional<cni::CniRuntime> cni;
  cni::NetworkConfigList network;
  std::mutex cniMu;  // one plugin chain at a time
  std::string hostIp;
  // Absent when this machine has no usable cgroups (cgroupError says why):
  // pods without limits then run unconfined and report no metrics.
  std::optional<CgroupManager> cgroups;
  std::string cgroupError;

  std::string podDir(const std::string& uid) const { return options.dataDir + "/pods/" + uid; }
  static std::string netnsName(const std::string& uid) { return "sluice-" + uid; }
  cni::RuntimeConfig attachment(const std::string& uid, const std::string& ns,
                                const std::string& name) const;
};

struct TerminatedInfo {
  int exitCode = 0;
  int signal = 0;
  std::string reason;
  std::string message;
  int64_t startedAtMs = 0;
  int64_t finishedAtMs = 0;
};

struct ContainerRecord {
  std::string name;
  bool init = false;
  int restartCount = 0;
  bool started = false;  // an instance exists (running, or terminated below)
  bool running = false;
  bool ready = false;
  ProcessIdentity proc;
  int64_t startedAtMs = 0;
  std::optional<TerminatedInfo> terminated;
  std::optional<TerminatedInfo> last;
  // The container cgroup's OOM-kill counter when this instance started: a
  // higher count at its exit means the OOM killer ended it.
  uint64_t oomKillsAtStart = 0;
};

struct PersistedPod {
  std::string uid, ns, name;
  std::string netnsPath, podIp;
  std::string hostInterface;  // the pod veth's node side (from the CNI result)
  bool networkReady = false;
  bool initDone = false;
  bool initFailed = false;
  int64_t startTimeMs = 0;
  CgroupDirs cgroup;  // the pod's cgroup (containers below it); empty: none made
  std::vector<ContainerRecord> containers;  // init containers first

  Json toJson() const;
  static std::optional<PersistedPod> fromJson(const Json& j);
  static std::optional<PersistedPod> load(const std::string& path);
};

// Kills what a persisted pod recorded, releases its network, removes its
// directory (orphans after a restart, teardownAll).
void cleanupPod(PodEnv& env, const PersistedPod& pod);

class PodWorker {
 public:
  PodWorker(PodEnv& env, client::ObjectPtr pod, std::unique_ptr<PersistedPod> restored);
  ~PodWorker();  // stops the thread; containers keep running
  PodWorker(const PodWorker&) = delete;
  PodWorker& operator=(const PodWorker&) = delete;

  void update(client::ObjectPtr pod);
  // The object was removed from the API (force delete): stop now.
  void gone();
  bool finished() const { return finished_.load(); }

  // What the metrics reporter samples: the pod and its running (non-init)
  // containers' cgroups, as of the last sync. Any thread.
  struct Snapshot {
    std::string uid, ns, name;
    Json labels;
    std::vector<std::pair<std::string, CgroupDirs>> containers;
  };
  Snapshot snapshot() const;

 private:
  // Per-container state that is not persisted.
  struct Live {
    std::string waitingReason, waitingMessage;
    int64_t backoffUntilMs = 0;
    int64_t exitWaitSinceMs = 0;
    int64_t stopDeadlineMs = 0;  // SIGKILL after this (0: not stopping)
    std::optional<ProbeState> liveness, readiness;
  };

  void run();
  void sync();
  // Creates the container's cgroup with its limits; the launch then joins it.
  Result<void> prepareCgroup(const Json& spec, ContainerRecord& rec, ContainerLaunch& l);
  void takeSnapshot(const Json& pod);
  bool setUpNetwork(const Json& pod);
  void ensureRecords(const Json& pod);
  const Json* containerSpec(const Json& pod, const ContainerRecord& rec) const;
  // Starts rec's next instance; false (with a waiting reason) if it cannot.
  bool start(const Json& pod, ContainerRecord& rec);
  // Notices a running container's exit; true if it is (still) running.
  bool checkRunning(ContainerRecord& rec, int64_t nowMs);
  void reconcileMain(const Json& pod, ContainerRecord& rec, int64_t nowMs);
  void reconcileInit(const Json& pod, int64_t nowMs);
  // Restart by policy after back-off; false if it stays terminated.
  bool restartIfDue(const Json& pod, ContainerRecord& rec, bool wantRestart, int64_t nowMs);
  void probe(const Json& pod, ContainerRecord& rec, int64_t nowMs);
  void requestStop(ContainerRecord& rec, int64_t graceMs, int64_t nowMs);
  void terminate(const Json& pod, bool gone, int64_t nowMs);
  void publish(const Json& pod);
  void persist();
  Json buildStatus(const Json& pod, int64_t nowMs);
  Json containerStatus(const Json& pod, const ContainerRecord& rec) const;
  std::string phase(const Json& pod) const;

  PodEnv& env_;
  PersistedPod state_;
  std::map<std::string, Live> live_;  // by container name
  std::map<std::string, std::pair<std::string, std::string>>
      conditionTimes_;  // type -> (status, time)
  std::string lastPublished_;
  std::string lastPersisted_;
  std::string networkError_;
  int64_t networkRetryAtMs_ = 0;
  bool terminating_ = false;
  int64_t killDeadlineMs_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Snapshot snapshot_;  // guarded by mu_
  client::ObjectPtr pod_;
  bool gone_ = false;
  bool wake_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<bool> finished_{false};
  std::thread thread_;
};

}  // namespace sluice::agent
