// A node's side of node health, for the agent (and test agents): register
// the Node with a Ready condition, then heartbeat as the kubelet does — renew
// the Lease named after the node in kube-node-lease every renewInterval
// (holderIdentity, leaseDurationSeconds, renewTime) and re-post the Ready
// condition whenever the server's copy is not Ready (after the node
// lifecycle controller marked it Unknown) or is older than statusInterval.
// Only the REST client and a Clock: usable outside the controller manager.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "control/client/api_client.h"
#include "control/controllers/clock.h"

namespace sluice::controllers {

inline constexpr const char* kNodeLeaseNamespace = "kube-node-lease";

struct NodeHeartbeatOptions {
  // The Node to register: metadata.name at least; labels, spec and
  // status (capacity, allocatable, addresses, nodeInfo) as the node has them.
  client::Json node;
  // The kubelet's defaults: a 40 s lease renewed every 10 s (25 %), and a
  // full status post every 5 min.
  std::chrono::seconds leaseDuration{40};
  std::chrono::milliseconds renewInterval{10000};
  std::chrono::seconds statusInterval{300};
  const Clock* clock = nullptr;  // nullptr: the system clock
};

class NodeHeartbeat {
 public:
  // Registers (creates, or updates the status of) the Node and its Lease,
  // then heartbeats on a thread until stop().
  static Result<std::unique_ptr<NodeHeartbeat>> start(client::ApiClient& client, NodeHeartbeatOptions options);
  ~NodeHeartbeat();
  NodeHeartbeat(const NodeHeartbeat&) = delete;
  NodeHeartbeat& operator=(const NodeHeartbeat&) = delete;

  // One heartbeat now: lease renewal plus the Ready post if due.
  Result<void> beat();
  void stop();
  const std::string& name() const { return name_; }

 private:
  NodeHeartbeat(client::ApiClient& client, NodeHeartbeatOptions options);
  Result<void> registerNode();
  Result<void> renewLease();
  Result<void> postReady(bool force);

  client::ApiClient& client_;
  NodeHeartbeatOptions options_;
  SystemClock systemClock_;
  const Clock* clock_;
  std::string name_;
  std::string uid_;
  std::chrono::system_clock::time_point lastStatus_{};

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace sluice::controllers
