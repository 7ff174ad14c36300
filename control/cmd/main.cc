// The `sluice` executable:
//   sluice up [--data-dir DIR] [--mode ebpf] ...
//       a single-node cluster in one process: API server with the embedded
//       store, controllers, and the node agent with this host as the node
//   sluice server [--data-dir DIR] [--listen ADDR:PORT] ...
//       the Kubernetes-compatible API server and controllers; writes
//       DIR/kubeconfig
//   sluice agent --kubeconfig F --node-name N [--data-dir D] ...
//       the node agent: the pods bound to node N and the service proxy
//   sluice debug [--socket S] lb list | maglev SERVICE | ct list
//       what the node agent's proxy programmed, over its gRPC socket
//   sluice kubectl ARGS...
//       runs the installed kubectl with KUBECONFIG=DIR/kubeconfig (DIR from
//       $SLUICE_DATA_DIR, default /var/lib/sluice), as k3s does
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "control/agent/proxy/debug_client.h"
#include "control/agent/runtime/echo_workload.h"
#include "control/cmd/agent_cmd.h"
#include "control/cmd/dpdk_lab.h"
#include "control/cmd/server_cmd.h"
#include "dataplane/log.h"

namespace {

using sluice::cmd::kDefaultDataDir;
namespace log = sluice::log;

int runKubectl(int argc, char** argv) {
  const char* dir = std::getenv("SLUICE_DATA_DIR");
  std::string kubeconfig = std::string(dir != nullptr ? dir : kDefaultDataDir) + "/kubeconfig";
  if (::access(kubeconfig.c_str(), R_OK) != 0) {
    log::error("kubectl", "kubeconfig not readable; is `sluice server` running (set SLUICE_DATA_DIR for another "
               "data directory)?", {{"kubeconfig", kubeconfig}});
    return 1;
  }
  ::setenv("KUBECONFIG", kubeconfig.c_str(), 1);
  const char* kubectl = std::getenv("SLUICE_KUBECTL");
  std::string binary = kubectl != nullptr ? kubectl : "kubectl";
  std::vector<char*> args;
  args.push_back(binary.data());
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  ::execvp(binary.c_str(), args.data());
  log::error("kubectl", "cannot run kubectl", {{"binary", binary}, {"err", std::strerror(errno)}});
  return 127;
}

int runServer(const sluice::cmd::ServerFlags& f) {
  sluice::cmd::blockSignals();
  // As Go programs (kube-apiserver) do at start: a busy server needs more
  // than the 1,024 fds of the default soft limit.
  sluice::server::raiseFdLimit();
  auto server = sluice::cmd::ServerProcess::start(f);
  if (!server) {
    log::error("server", "start failed", {{"err", server.error().message}});
    return 1;
  }
  std::cout << "sluice server: serving on " << (*server)->server().url() << "\n"
            << "sluice server: kubeconfig " << (*server)->kubeconfigPath() << "\n"
            << std::flush;
  int sig = sluice::cmd::waitForSignal();
  std::cout << "sluice server: stopping (signal " << sig << ")\n" << std::flush;
  (*server)->stop();
  return 0;
}

int runAgent(const sluice::cmd::AgentFlags& f) {
  if (f.cleanup) {
    sluice::agent::PodRuntime::teardownAll(sluice::cmd::runtimeOptions(f));
    return 0;
  }
  auto kc = sluice::client::Kubeconfig::load(f.kubeconfig);
  if (!kc) {
    log::error("agent", "kubeconfig", {{"err", kc.error().message}});
    return 1;
  }
  sluice::cmd::blockSignals();
  auto client = sluice::client::ApiClient::create(*kc, "sluice-agent/" + f.nodeName);
  if (!client) {
    log::error("agent", "API client", {{"err", client.error().message}});
    return 1;
  }
  auto agent = sluice::cmd::AgentProcess::start(**client, f);
  if (!agent) {
    log::error("agent", "start failed", {{"err", agent.error().message}});
    return 1;
  }
  if (f.mode != "none") {
    std::cout << "sluice agent: proxy in " << f.mode << " mode, metrics on " << f.metricsAddr
              << ", debug API on unix:" << f.debugSocket << "\n";
  }
  std::cout << "sluice agent: node " << f.nodeName << " ready (pod CIDR " << (*agent)->podCidr() << ")\n"
            << std::flush;
  int sig = sluice::cmd::waitForSignal();
  std::cout << "sluice agent: stopping (signal " << sig << "); pods keep running\n" << std::flush;
  (*agent)->stop();
  return 0;
}

// The host name as a node name (DNS-1123 subdomain: lower case, [a-z0-9.-]).
std::string defaultNodeName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "node";
  std::string n;
  for (char c : std::string(buf)) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    n.push_back(std::isalnum(static_cast<unsigned char>(l)) || l == '.' || l == '-' ? l : '-');
  }
  while (!n.empty() && !std::isalnum(static_cast<unsigned char>(n.back()))) n.pop_back();
  return n.empty() ? "node" : n;
}

// The node's InternalIP and NodePort address.
using sluice::cmd::primaryIpv4;

// Whether a.b.c.d/len overlaps any IPv4 network on this host's interfaces.
bool overlapsHostNetwork(const std::string& cidr) {
  size_t slash = cidr.find('/');
  in_addr net{};
  if (slash == std::string::npos || ::inet_pton(AF_INET, cidr.substr(0, slash).c_str(), &net) != 1) return true;
  int len = std::atoi(cidr.c_str() + slash + 1);
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return true;
  bool overlap = false;
  for (ifaddrs* a = list; a != nullptr && !overlap; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_netmask == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    uint32_t addr = ntohl(reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr.s_addr);
    uint32_t mask = ntohl(reinterpret_cast<sockaddr_in*>(a->ifa_netmask)->sin_addr.s_addr);
    uint32_t poolMask = len <= 0 ? 0 : ~uint32_t{0} << (32 - std::min(len, 32));
    uint32_t common = mask & poolMask;  // the shorter prefix decides
    overlap = ((addr ^ ntohl(net.s_addr)) & common) == 0;
  }
  ::freeifaddrs(list);
  return overlap;
}

// `sluice up --mode=dpdk` without an uplink (--uplink, --dpdk-uplink-vdev,
// --dpdk-uplink-pci): the veth and outside namespace of dpdk_lab.h.
struct UpDpdkLabFlags {
  std::string link = "sluice-up0";
  std::string netns = "sluice-outside";
  std::string subnet = "192.168.250.0/24";
};

bool wantsDpdkLab(const sluice::cmd::AgentFlags& af) {
  if (af.mode != "dpdk" || !af.uplink.empty()) return false;
  auto flags = af.modeFlags.find("dpdk");
  if (flags == af.modeFlags.end()) return true;
  auto given = [&](const char* name) {
    auto it = flags->second.find(name);
    return it != flags->second.end() && !it->second.empty();
  };
  return !given("uplink-vdev") && !given("uplink-pci");
}

int runUp(sluice::cmd::ServerFlags sf, sluice::cmd::AgentFlags af, bool lbPoolGiven,
          const UpDpdkLabFlags& labFlags) {
  af.dataDir = sf.dataDir + "/agent";
  if (af.nodeName.empty()) af.nodeName = defaultNodeName();
  std::optional<sluice::cmd::DpdkLab> lab;
  if (wantsDpdkLab(af)) {
    auto l = sluice::cmd::DpdkLab::make(labFlags.link, labFlags.netns, labFlags.subnet);
    if (!l) {
      log::error("up", "dpdk lab uplink", {{"err", l.error().message}});
      return 2;
    }
    lab = std::move(*l);
    af.uplink = lab->link;
    if (af.nodeIp.empty()) af.nodeIp = lab->nodeAddress().toString();
  }
  if (af.cleanup) {
    sluice::agent::PodRuntime::teardownAll(sluice::cmd::runtimeOptions(af));
    std::cout << "sluice up: removed the pods recorded under " << af.dataDir << "\n";
    // The datapath outlives `sluice up` on purpose (a restart adopts it);
    // the mode removes what it left on the node.
    if (af.mode != "none") {
      auto node = sluice::cmd::nodeConfig(af);
      auto r = node ? sluice::agent::cleanupDatapath(af.mode, *node, af.modeFlags) : sluice::Result<void>(node.error());
      if (!r) {
        log::error("up", "datapath cleanup failed", {{"mode", af.mode}, {"err", r.error().message}});
        return 1;
      }
      std::cout << "sluice up: removed the " << af.mode << " datapath\n";
    }
    if (lab) {
      if (auto r = sluice::cmd::removeDpdkLab(*lab); !r) {
        log::error("up", "dpdk lab uplink removal failed", {{"link", lab->link}, {"err", r.error().message}});
        return 1;
      }
      std::cout << "sluice up: removed the uplink " << lab->link << " and netns " << lab->outsideNetns << "\n";
    }
    return 0;
  }
  if (af.nodeIp.empty()) af.nodeIp = primaryIpv4();
  if (af.podCidr.empty() && (sf.noControllers || sf.clusterCidr.empty())) {
    // No node IPAM in this process to wait for: the single node takes the
    // first block of the usual cluster CIDR, as before node IPAM existed.
    af.podCidr = "10.244.0.0/24";
  }
  if (!lbPoolGiven) {
    // LoadBalancer addresses must not shadow addresses this host already
    // reaches (its own network, its gateway): take the first documentation
    // range no interface is on.
    for (const char* pool : {"198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24"}) {
      if (!overlapsHostNetwork(pool)) {
        sf.lbPool = pool;
        break;
      }
    }
  }
  if (af.nodeIp.empty()) {
    log::error("up", "no IPv4 address on this host for the node; pass --node-ip");
    return 1;
  }
  if (af.mode == "dpdk") {
    // The node's own traffic to Services goes through the dataplane: the
    // service range and the LoadBalancer pool are routed into its TAP.
    std::string& routes = af.modeFlags["dpdk"]["kernel-routes"];
    if (routes.empty()) routes = sf.serviceCidr + "," + sf.lbPool;
  }
  if (lab) {
    auto pool = sluice::cni::IpPrefix::parse(sf.lbPool);
    if (pool) lab->outsideRoutes.push_back(*pool);
    if (auto r = sluice::cmd::createDpdkLab(*lab); !r) {
      log::error("up", "dpdk lab uplink", {{"link", lab->link}, {"netns", lab->outsideNetns}, {"err", r.error().message}});
      return 1;
    }
    std::cout << "sluice up: dpdk uplink " << lab->link << " (a veth; sluice-dpdk takes it), the outside is netns "
              << lab->outsideNetns << " (" << lab->outsideAddress().toString() << ", LoadBalancer pool " << sf.lbPool
              << " on-link)\n"
              << std::flush;
  }
  sluice::cmd::blockSignals();
  sluice::server::raiseFdLimit();  // as runServer()
  auto server = sluice::cmd::ServerProcess::start(sf);
  if (!server) {
    log::error("up", "server start failed", {{"err", server.error().message}});
    return 1;
  }
  std::cout << "sluice up: API server on " << (*server)->server().url() << "\n" << std::flush;
  auto kc = sluice::client::Kubeconfig::load((*server)->kubeconfigPath());
  if (!kc) {
    log::error("up", "kubeconfig", {{"err", kc.error().message}});
    return 1;
  }
  // The agent acts as its node (system:node:NAME), never as the admin: a
  // node may change only its own Node, Lease and pods.
  kc->token = (*server)->server().nodeToken(af.nodeName);
  auto client = sluice::client::ApiClient::create(*kc, "sluice-agent/" + af.nodeName);
  if (!client) {
    log::error("up", "API client", {{"err", client.error().message}});
    return 1;
  }
  auto agent = sluice::cmd::AgentProcess::start(**client, af);
  if (!agent) {
    log::error("up", "agent start failed", {{"err", agent.error().message}});
    (*server)->stop();
    return 1;
  }
  std::cout << "sluice up: node " << af.nodeName << " (" << af.nodeIp << ", pods in " << (*agent)->podCidr()
            << "), proxy mode " << af.mode << "\n";
  if (lab) {
    std::cout << "sluice up: from outside: ip netns exec " << lab->outsideNetns << " curl http://" << af.nodeIp
              << ":NODEPORT/\n";
  }
  std::cout
            << "sluice up: ready; kubectl: `sluice kubectl get pods` or KUBECONFIG=" << (*server)->kubeconfigPath()
            << "\n"
            << std::flush;
  int sig = sluice::cmd::waitForSignal();
  std::cout << "sluice up: stopping (signal " << sig << "); pods keep running until `sluice up --cleanup`\n"
            << std::flush;
  (*agent)->stop();
  (*server)->stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // kubectl's own flags must pass through untouched, so it is dispatched
  // before option parsing.
  if (argc >= 2 && std::string(argv[1]) == "kubectl") return runKubectl(argc, argv);
  // The built-in workload of `sluice/echo` images (hidden: the runtime runs it).
  if (argc >= 2 && std::string(argv[1]) == "echo") return sluice::agent::runEchoWorkload(argc, argv, 2);

  CLI::App app{"sluice: Kubernetes-style service networking"};
  app.require_subcommand(1);

  CLI::App* up = app.add_subcommand("up", "run a single-node cluster: server, controllers and agent in one process");
  sluice::cmd::ServerFlags upServer;
  sluice::cmd::AgentFlags upAgent;
  sluice::cmd::addServerFlags(*up, upServer);
  sluice::cmd::addAgentFlags(*up, upAgent, /*forUp=*/true);
  sluice::cmd::LogFlags upLog;
  sluice::cmd::addLogFlags(*up, upLog);
  UpDpdkLabFlags upLab;
  up->add_option("--dpdk-lab-link", upLab.link,
                 "dpdk mode without an uplink: the veth made for sluice-dpdk")
      ->capture_default_str();
  up->add_option("--dpdk-lab-netns", upLab.netns,
                 "dpdk mode without an uplink: the namespace holding the veth's other end (the outside)")
      ->capture_default_str();
  up->add_option("--dpdk-lab-subnet", upLab.subnet,
                 "dpdk mode without an uplink: the link's subnet (node .1 on the TAP, outside .2)")
      ->capture_default_str();

  CLI::App* server = app.add_subcommand("server", "run the Kubernetes-compatible API server");
  sluice::cmd::ServerFlags serverFlags;
  sluice::cmd::addServerFlags(*server, serverFlags);
  sluice::cmd::LogFlags serverLog;
  sluice::cmd::addLogFlags(*server, serverLog);

  CLI::App* agent = app.add_subcommand("agent", "run the node agent (pods as processes, service proxy)");
  sluice::cmd::AgentFlags agentFlags;
  sluice::cmd::addAgentFlags(*agent, agentFlags, /*forUp=*/false);
  sluice::cmd::LogFlags agentLog;
  sluice::cmd::addLogFlags(*agent, agentLog);

  CLI::App* debug = app.add_subcommand("debug", "show what the agent's proxy programmed");
  std::string debugSocket = sluice::agent::kDefaultDebugSocket;
  std::vector<std::string> debugArgs;
  debug->add_option("--socket", debugSocket, "the agent's debug socket")->capture_default_str();
  debug->add_option("command", debugArgs, "lb list | maglev SERVICE | ct list")->required();

  CLI::App* nodeKc = app.add_subcommand(
      "node-kubeconfig", "print a kubeconfig for a node agent (identity system:node:NAME), from the server's data dir");
  std::string nkDataDir = kDefaultDataDir;
  std::string nkNode;
  std::string nkServer;
  nodeKc->add_option("--data-dir", nkDataDir, "the server's data directory")->capture_default_str();
  nodeKc->add_option("--node-name", nkNode, "the node the agent runs as")->required();
  nodeKc->add_option("--server", nkServer, "API server URL (default: the one in DATA_DIR/kubeconfig)");

  app.add_subcommand("kubectl", "run kubectl against this server (KUBECONFIG=$SLUICE_DATA_DIR/kubeconfig)");
  CLI11_PARSE(app, argc, argv);
  using Logged = std::pair<CLI::App*, sluice::cmd::LogFlags*>;
  for (auto [cmd, flags] : {Logged{up, &upLog}, Logged{server, &serverLog}, Logged{agent, &agentLog}}) {
    if (!cmd->parsed()) continue;
    if (auto r = sluice::cmd::installLogging(*flags); !r) {
      sluice::log::error("sluice", "logging", {{"err", r.error().message}});
      return 2;
    }
  }
  if (nodeKc->parsed()) {
    auto out = sluice::cmd::nodeKubeconfig(nkDataDir, nkNode, nkServer);
    if (!out) {
      sluice::log::error("node-kubeconfig", "failed", {{"err", out.error().message}});
      return 1;
    }
    std::cout << *out;
    return 0;
  }
  if (debug->parsed()) {
    auto out = sluice::agent::runDebugCommand(debugSocket, debugArgs);
    if (!out) {
      log::error("debug", "request failed", {{"err", out.error().message}});
      return 1;
    }
    std::cout << *out;
    return 0;
  }
  if (agent->parsed()) {
    if (agentFlags.kubeconfig.empty() && !agentFlags.cleanup) {
      log::error("agent", "--kubeconfig is required");
      return 2;
    }
    return runAgent(agentFlags);
  }
  if (server->parsed()) return runServer(serverFlags);
  if (up->parsed()) return runUp(upServer, upAgent, up->get_option("--lb-pool")->count() > 0, upLab);
  return 0;
}
