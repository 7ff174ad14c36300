// `sluice agent`'s parts as a reusable unit: its flags and a running node
// agent — the proxy the mode factory chose (ProxyAgent), the pod runtime,
// and node registration — so `sluice up` starts exactly what `sluice agent`
// does, in the same process as the server.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "control/agent/proxy/debug_client.h"
#include "control/agent/proxy/proxy_agent.h"
#include "control/agent/runtime/node_agent.h"
#include "control/agent/runtime/pod_runtime.h"
#include "control/agent/streaming/streaming_server.h"
#include "control/client/api_client.h"

namespace sluice::cmd {

struct AgentFlags {
  std::string kubeconfig;
  std::string nodeName;
  std::string dataDir = "/var/lib/sluice/agent";
  std::vector<std::string> cniBinDirs;
  // Empty: the pod CIDR the server's node IPAM sets on this Node.
  std::string podCidr;
  std::string nodeNetns;
  std::string nodeIp;
  bool cleanup = false;
  std::string podCgroupParent = "sluice";  // PodRuntimeOptions::cgroupParent
  int metricResolutionSeconds = 15;        // PodMetrics/NodeMetrics period; 0: off
  // The service proxy (ProxyAgent).
  std::string mode = "ebpf";  // a mode of the factory, or none (pods only)
  std::vector<std::string> nodeAddresses;
  std::string uplink;
  // --<mode>-<flag> values of every mode, defaults filled in.
  agent::AllModeFlags modeFlags;
  std::string metricsAddr = "127.0.0.1:10249";
  std::string debugSocket = agent::kDefaultDebugSocket;
  // kubelet's streaming API (logs, exec, port-forward) the server proxies to.
  std::string streamingAddress = "0.0.0.0";
  int streamingPort = 10250;  // 0: pick a free port (published on the Node)
};

// `forUp`: the flags `sluice up` shares (no --kubeconfig, --data-dir).
void addAgentFlags(CLI::App& app, AgentFlags& f, bool forUp);

// The pod runtime's options for these flags (also for --cleanup).
agent::PodRuntimeOptions runtimeOptions(const AgentFlags& f);
// The node as the proxy mode sees it, for these flags.
Result<NodeConfig> nodeConfig(const AgentFlags& f);

class AgentProcess {
 public:
  // Starts proxy, pod runtime and node registration, in that order, on
  // `client` (which must outlive the agent).
  static Result<std::unique_ptr<AgentProcess>> start(client::ApiClient& client, const AgentFlags& f);
  ~AgentProcess();
  // Stops in reverse order. Pods, their network and the datapath stay in
  // place for the next start to adopt.
  void stop();
  std::string podCidr() const;

 private:
  std::unique_ptr<agent::ProxyAgent> proxy_;
  std::unique_ptr<agent::PodRuntime> runtime_;
  std::unique_ptr<agent::streaming::StreamingServer> streaming_;
  std::unique_ptr<agent::NodeAgent> node_;
};

}  // namespace sluice::cmd
