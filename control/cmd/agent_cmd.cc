#include "control/cmd/agent_cmd.h"

#include <filesystem>

#include "control/agent/runtime/pod_streams.h"
#include "control/cmd/server_cmd.h"
#include "dataplane/log.h"

namespace sluice::cmd {
namespace {

// How long an agent without --pod-cidr waits for the server's node IPAM.
// The controller answers within a second once it runs; this also covers a
// server still starting (informers syncing) when both start together.
constexpr std::chrono::seconds kPodCidrWait{120};

}  // namespace

void addAgentFlags(CLI::App& app, AgentFlags& f, bool forUp) {
  if (!forUp) {
    app.add_option("--kubeconfig", f.kubeconfig, "kubeconfig of the API server");
    app.add_option("--node-name", f.nodeName, "this node's name")->required();
    app.add_option("--data-dir", f.dataDir, "pod state, logs, volumes")->capture_default_str();
    app.add_option("--node-netns", f.nodeNetns, "the node's network namespace (simulated nodes)");
  } else {
    app.add_option("--node-name", f.nodeName, "this node's name (default: the host name)");
  }
  app.add_option("--cni-bin-dir", f.cniBinDirs, "CNI plugin directory (repeatable)");
  app.add_option("--pod-cidr", f.podCidr,
                 "this node's pod CIDR (default: the one the server assigns to the Node, see --cluster-cidr)");
  app.add_option("--node-ip", f.nodeIp, "InternalIP and pods' hostIP");
  app.add_flag("--cleanup", f.cleanup, "kill every pod recorded under the data directory and exit");
  app.add_option("--pod-cgroup-parent", f.podCgroupParent,
                 "pods' cgroup parent: relative to the agent's cgroup, or absolute (/kubepods)")
      ->capture_default_str();
  app.add_option("--metric-resolution", f.metricResolutionSeconds,
                 "seconds between PodMetrics/NodeMetrics writes (0: none)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  std::string modes;
  for (const ModeDriver& d : agent::modeDrivers()) modes += d.name + ", ";
  app.add_option("--mode", f.mode, "service proxy: " + modes + "or none (pods only)")->capture_default_str();
  app.add_option("--node-address", f.nodeAddresses, "address NodePorts are served on (repeatable; default --node-ip)");
  app.add_option("--uplink", f.uplink, "uplink interface for NodePort/LoadBalancer traffic from outside");
  // Each mode's own flags, --<mode>-<name>, declared by the mode itself.
  for (const ModeDriver& d : agent::modeDrivers()) {
    for (const ModeFlag& flag : d.flags) {
      std::string& value = f.modeFlags[d.name][flag.name];
      value = flag.defaultValue;
      app.add_option("--" + d.name + "-" + flag.name, value, d.name + " mode: " + flag.help)
          ->capture_default_str();
    }
  }
  app.add_option("--metrics-bind-address", f.metricsAddr, "Prometheus /metrics ADDR:PORT")->capture_default_str();
  app.add_option("--debug-socket", f.debugSocket, "unix socket of the debug gRPC API")->capture_default_str();
  app.add_option("--streaming-address", f.streamingAddress,
                 "listen address of the logs/exec/port-forward API the server proxies to")
      ->capture_default_str();
  app.add_option("--streaming-port", f.streamingPort, "its port (kubelet's 10250; 0 picks a free one)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
}

agent::PodRuntimeOptions runtimeOptions(const AgentFlags& f) {
  agent::PodRuntimeOptions ro;
  ro.nodeName = f.nodeName;
  ro.dataDir = f.dataDir;
  if (!f.cniBinDirs.empty()) {
    ro.cniPluginDirs = f.cniBinDirs;
  } else {
    // Running from a build tree (build/control/cmd/sluice): its CNI plugins
    // are in build/cni/, searched first.
    std::filesystem::path built = std::filesystem::path(selfExe()).parent_path() / "../../cni";
    std::error_code ec;
    if (std::filesystem::exists(built / "sluice-cni", ec)) {
      ro.cniPluginDirs.insert(ro.cniPluginDirs.begin(), std::filesystem::canonical(built, ec).string());
    }
  }
  // Without --pod-cidr, start() fills in the Node's. --cleanup keeps the
  // default: DEL releases addresses by container ID, the subnet only has
  // to parse.
  if (!f.podCidr.empty()) ro.podCidr = f.podCidr;
  ro.nodeNetnsPath = f.nodeNetns;
  ro.hostIp = f.nodeIp;
  ro.echoCommand = {selfExe(), "echo"};
  ro.cgroupParent = f.podCgroupParent;
  ro.metricsResolution = std::chrono::seconds(f.metricResolutionSeconds);
  return ro;
}

Result<NodeConfig> nodeConfig(const AgentFlags& f) {
  NodeConfig node;
  node.nodeName = f.nodeName;
  std::vector<std::string> addrs = f.nodeAddresses;
  if (addrs.empty() && !f.nodeIp.empty()) addrs.push_back(f.nodeIp);
  for (const std::string& s : addrs) {
    auto ip = IpAddress::parse(s);
    if (!ip) return Error{ErrorCode::kInvalidArgument, "--node-address " + s + ": " + ip.error().message};
    node.nodeAddresses.push_back(*ip);
  }
  node.uplink = f.uplink;
  node.instance = f.nodeName;
  return node;
}

Result<std::unique_ptr<AgentProcess>> AgentProcess::start(client::ApiClient& client, const AgentFlags& f) {
  std::unique_ptr<AgentProcess> a(new AgentProcess());
  agent::PodRuntimeOptions ro = runtimeOptions(f);
  if (f.podCidr.empty()) {
    // Before anything else starts: without a CIDR no pod can get an address.
    auto cidr = agent::NodeAgent::awaitPodCidr(client, f.nodeName, kPodCidrWait);
    if (!cidr) return cidr.error();
    ro.podCidr = *cidr;
  }
  if (f.mode != "none") {
    agent::ProxyAgentOptions po;
    auto node = nodeConfig(f);
    if (!node) return node.error();
    po.node = std::move(*node);
    po.mode = f.mode;
    po.modeFlags = f.modeFlags;
    po.metricsAddr = f.metricsAddr;
    po.debugSocket = f.debugSocket;
    auto p = agent::ProxyAgent::start(client, po);
    if (!p) return Error{p.error().code, "proxy: " + p.error().message};
    a->proxy_ = std::move(*p);
    agent::ProxyAgent* px = a->proxy_.get();
    // The proxy translates each pod's own traffic on its host-side veth.
    ro.podInterfaceHook = [px](const std::string& ifname, bool up) {
      auto r = up ? px->onPodInterface(ifname) : px->onPodInterfaceRemoved(ifname);
      if (!r) log::warning("proxy", "pod interface hook failed", {{"interface", ifname}, {"err", r.error().message}});
    };
  }
  auto runtime = agent::PodRuntime::start(client, ro);
  if (!runtime) return runtime.error();
  a->runtime_ = std::move(*runtime);
  agent::streaming::StreamingServerOptions so;
  so.address = f.streamingAddress;
  so.port = static_cast<uint16_t>(f.streamingPort);
  so.tlsDir = f.dataDir + "/streaming-tls";
  if (!f.nodeIp.empty()) so.sans.push_back(f.nodeIp);
  // The API server proxies with this node's own token: the one the agent's
  // kubeconfig carries (a node kubeconfig, `sluice node-kubeconfig`).
  so.token = client.config().token;
  auto streaming = agent::streaming::StreamingServer::start(so, agent::podStreamingBackend(f.dataDir));
  if (!streaming) return streaming.error();
  a->streaming_ = std::move(*streaming);
  agent::NodeAgentOptions no;
  no.streamingPort = a->streaming_->port();
  no.nodeName = f.nodeName;
  no.internalIp = f.nodeIp.empty() ? a->runtime_->hostIp() : f.nodeIp;
  // The CIDR pods use, so a Node deleted under us comes back with it.
  no.podCidr = ro.podCidr;
  auto node = agent::NodeAgent::start(client, no);
  if (!node) return node.error();
  a->node_ = std::move(*node);
  if (a->node_->podCidr() != ro.podCidr) {
    log::warning("agent", "the Node's podCIDR is not the one pods get addresses from (--pod-cidr)",
                 {{"node", f.nodeName}, {"nodePodCIDR", a->node_->podCidr()}, {"podCIDR", ro.podCidr}});
  }
  return a;
}

AgentProcess::~AgentProcess() { stop(); }

void AgentProcess::stop() {
  if (node_) node_->stop();
  if (streaming_) streaming_->stop();  // ends exec / port-forward sessions
  if (runtime_) runtime_->stop();
  if (proxy_) proxy_->stop();  // the datapath stays programmed for the next start
  node_.reset();
  streaming_.reset();
  runtime_.reset();
  proxy_.reset();
}

std::string AgentProcess::podCidr() const { return node_ ? node_->podCidr() : std::string(); }

}  // namespace sluice::cmd
