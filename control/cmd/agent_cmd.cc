#include "control/cmd/agent_cmd.h"

#include <filesystem>
#include <iostream>

#include "control/cmd/server_cmd.h"

namespace sluice::cmd {

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
  app.add_option("--pod-cidr", f.podCidr, "this node's pod CIDR")->capture_default_str();
  app.add_option("--node-ip", f.nodeIp, "InternalIP and pods' hostIP");
  app.add_flag("--cleanup", f.cleanup, "kill every pod recorded under the data directory and exit");
  app.add_option("--mode", f.mode, "service proxy: ebpf, ipvs, dpdk, or none (pods only)")->capture_default_str();
  app.add_option("--node-address", f.nodeAddresses, "address NodePorts are served on (repeatable; default --node-ip)");
  app.add_option("--uplink", f.uplink, "uplink interface for NodePort/LoadBalancer traffic from outside");
  app.add_flag("--no-xdp", f.noXdp, "no XDP program in front of the uplink");
  app.add_option("--bpf-pin-dir", f.bpfPinDir, "bpffs directory of the pinned maps")->capture_default_str();
  app.add_option("--cgroup", f.cgroupPath, "cgroup v2 directory for socket load balancing (default: the cgroup2 root)");
  app.add_option("--metrics-bind-address", f.metricsAddr, "Prometheus /metrics ADDR:PORT")->capture_default_str();
  app.add_option("--debug-socket", f.debugSocket, "unix socket of the debug gRPC API")->capture_default_str();
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
  ro.podCidr = f.podCidr;
  ro.nodeNetnsPath = f.nodeNetns;
  ro.hostIp = f.nodeIp;
  ro.echoCommand = {selfExe(), "echo"};
  return ro;
}

Result<std::unique_ptr<AgentProcess>> AgentProcess::start(client::ApiClient& client, const AgentFlags& f) {
  std::unique_ptr<AgentProcess> a(new AgentProcess());
  agent::PodRuntimeOptions ro = runtimeOptions(f);
  if (f.mode != "none") {
    agent::ProxyAgentOptions po;
    po.nodeName = f.nodeName;
    std::vector<std::string> addrs = f.nodeAddresses;
    if (addrs.empty() && !f.nodeIp.empty()) addrs.push_back(f.nodeIp);
    for (const std::string& s : addrs) {
      auto ip = IpAddress::parse(s);
      if (!ip) return Error{ErrorCode::kInvalidArgument, "--node-address " + s + ": " + ip.error().message};
      po.nodeAddresses.push_back(*ip);
    }
    po.mode = f.mode;
    po.uplink = f.uplink;
    po.uplinkXdp = !f.noXdp;
    po.pinDir = f.bpfPinDir;
    po.cgroupPath = f.cgroupPath;
    po.metricsAddr = f.metricsAddr;
    po.debugSocket = f.debugSocket;
    auto p = agent::ProxyAgent::start(client, po);
    if (!p) return Error{p.error().code, "proxy: " + p.error().message};
    a->proxy_ = std::move(*p);
    agent::ProxyAgent* px = a->proxy_.get();
    // The proxy translates each pod's own traffic on its host-side veth.
    ro.podInterfaceHook = [px](const std::string& ifname, bool up) {
      auto r = up ? px->onPodInterface(ifname) : px->onPodInterfaceRemoved(ifname);
      if (!r) std::cerr << "sluice agent: proxy: " << r.error().message << "\n";
    };
  }
  auto runtime = agent::PodRuntime::start(client, ro);
  if (!runtime) return runtime.error();
  a->runtime_ = std::move(*runtime);
  agent::NodeAgentOptions no;
  no.nodeName = f.nodeName;
  no.internalIp = f.nodeIp.empty() ? a->runtime_->hostIp() : f.nodeIp;
  no.podCidr = f.podCidr;
  auto node = agent::NodeAgent::start(client, no);
  if (!node) return node.error();
  a->node_ = std::move(*node);
  if (a->node_->podCidr() != ro.podCidr) {
    std::cerr << "sluice agent: warning: Node " << f.nodeName << " has podCIDR " << a->node_->podCidr()
              << " but pods get addresses from --pod-cidr " << ro.podCidr << "\n";
  }
  return a;
}

AgentProcess::~AgentProcess() { stop(); }

void AgentProcess::stop() {
  if (node_) node_->stop();
  if (runtime_) runtime_->stop();
  if (proxy_) proxy_->stop();  // the datapath stays programmed for the next start
  node_.reset();
  runtime_.reset();
  proxy_.reset();
}

std::string AgentProcess::podCidr() const { return node_ ? node_->podCidr() : std::string(); }

}  // namespace sluice::cmd
