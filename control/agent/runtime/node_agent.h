// Node registration and heartbeat (the kubelet's node status loop): creates
// or updates this node's Node object (addresses, capacity/allocatable,
// podCIDR, nodeInfo, Ready condition), then every heartbeat period renews the
// Ready condition's lastHeartbeatTime and, when the server serves
// coordination.k8s.io Leases, the Lease kube-node-lease/<node>.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "control/client/api_client.h"
#include "dataplane/result.h"

namespace sluice::agent {

struct NodeAgentOptions {
  std::string nodeName;
  std::string internalIp;  // NodeAddress InternalIP
  std::string podCidr;     // spec.podCIDR (set at creation; kept if the server set one)
  // status.daemonEndpoints.kubeletEndpoint.Port: the streaming server the API
  // server proxies kubectl logs/exec/port-forward to (0: none published).
  int streamingPort = 0;
  std::chrono::milliseconds heartbeat = std::chrono::seconds(10);
  int64_t leaseDurationSeconds = 40;
};

class NodeAgent {
 public:
  // Registers the node (synchronously: an error is returned), then beats.
  static Result<std::unique_ptr<NodeAgent>> start(client::ApiClient& client,
                                                  NodeAgentOptions options);
  // For an agent without --pod-cidr: creates the Node without a podCIDR if
  // it does not exist (its status comes with start()), then waits until it
  // has spec.podCIDR (the server's node IPAM sets it) and returns that.
  // kUnavailable after `timeout`, saying what to check.
  static Result<std::string> awaitPodCidr(client::ApiClient& client, const std::string& nodeName,
                                          std::chrono::milliseconds timeout);
  ~NodeAgent();
  NodeAgent(const NodeAgent&) = delete;
  NodeAgent& operator=(const NodeAgent&) = delete;
  void stop();
  // The podCIDR the Node object carries (ours, or one the server assigned).
  const std::string& podCidr() const { return podCidr_; }

 private:
  NodeAgent(client::ApiClient& client, NodeAgentOptions options)
      : client_(client), options_(std::move(options)) {}
  Result<void> registerNode();
  Result<void> heartbeat();
  void renewLease();
  void run();

  client::ApiClient& client_;
  NodeAgentOptions options_;
  std::string podCidr_;
  std::string readySince_;
  bool leasesServed_ = true;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace sluice::agent
