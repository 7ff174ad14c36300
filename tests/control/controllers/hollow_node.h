// Hollow nodes: test agents standing in for the node agent, as Kubernetes'
// kubemark does for its scale tests. Each registers a Ready Node (with
// allocatable cpu/memory/pods and a heartbeat), reports the pods bound to it
// Running and Ready (pod IP from a per-node fake range, container statuses,
// PodScheduled/Initialized/ContainersReady/Ready conditions, startTime), and
// completes the deletion of its terminating pods (grace 0). No process runs.
//
// Many hollow nodes share one pod watch and one worker pool, so 100 of them
// cost one informer. With bindUnscheduled they also bind pods that have no
// nodeName (pods/binding), round-robin over the nodes, for tests that run no
// scheduler.
//
// Knobs: a pod can be held NotReady (setPodReady), and readiness can be
// delayed (readyDelay, real time) so tests and benchmarks see rollouts wait.
// Timestamps come from the injected clock, so minReadySeconds and progress
// deadlines stay deterministic under a ManualClock.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "control/client/api_client.h"
#include "control/client/informer.h"
#include "control/client/work_queue.h"
#include "control/controllers/clock.h"

namespace sluice::testing {

struct HollowNodeOptions {
  std::vector<std::string> names;  // one hollow node per name
  // Index of names[0] for the fake address ranges: node i gets InternalIP
  // 172.(16+i/256).(i%256).1 and pods 10.(200+i/256).(i%256).2-254.
  int firstIndex = 0;
  bool bindUnscheduled = false;
  std::chrono::milliseconds readyDelay{0};
  const controllers::Clock* clock = nullptr;  // nullptr: system clock
  int workers = 4;
  std::string cpu = "8";
  std::string memory = "32Gi";
  std::string maxPods = "250";
  std::chrono::milliseconds heartbeat{10000};
};

class HollowNodes {
 public:
  static Result<std::unique_ptr<HollowNodes>> start(client::ApiClient& client, HollowNodeOptions options);
  ~HollowNodes();
  HollowNodes(const HollowNodes&) = delete;
  HollowNodes& operator=(const HollowNodes&) = delete;

  void stop();

  // Holds a pod NotReady (Running, Ready=False) until set ready again.
  void setPodReady(const std::string& ns, const std::string& name, bool ready);
  void setReadyDelay(std::chrono::milliseconds d);
  // Pods currently reported Running by these nodes.
  size_t runningPods() const;
  const std::vector<std::string>& names() const { return options_.names; }

 private:
  HollowNodes(client::ApiClient& client, HollowNodeOptions options);
  Result<void> registerNodes();
  void heartbeatLoop();
  Result<void> reconcile(const std::string& key);
  Result<void> bind(const client::Json& pod);
  Result<void> report(const std::string& key, const client::Json& pod, int node);
  std::string allocateIp(const std::string& key, int node);
  void releaseIp(const std::string& key);
  client::Json nodeObject(int node) const;
  std::string now() const;

  client::ApiClient& client_;
  HollowNodeOptions options_;
  controllers::SystemClock systemClock_;
  const controllers::Clock* clock_;
  std::map<std::string, int> nodeIndex_;
  client::Informer pods_;
  client::WorkQueue queue_;

  mutable std::mutex mu_;
  std::set<std::string> notReady_;
  std::map<std::string, std::chrono::steady_clock::time_point> firstSeen_;
  std::map<std::string, std::pair<int, int>> ips_;  // pod key -> (node, host octet)
  std::vector<std::set<int>> usedOctets_;
  std::atomic<uint64_t> nextBind_{0};
  std::atomic<int64_t> readyDelayMs_{0};

  std::atomic<bool> stop_{false};
  std::vector<std::thread> workers_;
  std::thread heartbeat_;
  std::mutex hbMu_;
  std::condition_variable hbCv_;
};

}  // namespace sluice::testing
