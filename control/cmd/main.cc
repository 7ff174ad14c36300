// The `sluice` executable. This issue brings two commands:
//   sluice server [--data-dir DIR] [--listen ADDR:PORT] ...
//       the Kubernetes-compatible API server; writes DIR/kubeconfig
//   sluice kubectl ARGS...
//       runs the installed kubectl with KUBECONFIG=DIR/kubeconfig (DIR from
//       $SLUICE_DATA_DIR, default /var/lib/sluice), as k3s does
// `up`, `agent` and `debug` arrive with their issues.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "control/client/api_client.h"
#include "control/controllers/manager.h"
#include "control/server/api_server.h"

namespace {

constexpr const char* kDefaultDataDir = "/var/lib/sluice";

struct ListenAddress {
  std::string host;
  uint16_t port = 0;
};

// "127.0.0.1:6443", "[::1]:6443", ":6443" (all addresses).
std::optional<ListenAddress> parseListen(const std::string& s) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  ListenAddress a;
  a.host = s.substr(0, colon);
  if (a.host.size() >= 2 && a.host.front() == '[' && a.host.back() == ']') a.host = a.host.substr(1, a.host.size() - 2);
  if (a.host.empty()) a.host = "0.0.0.0";
  std::string port = s.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  unsigned long p = std::stoul(port);
  if (p > 65535) return std::nullopt;
  a.port = static_cast<uint16_t>(p);
  return a;
}

int runKubectl(int argc, char** argv) {
  const char* dir = std::getenv("SLUICE_DATA_DIR");
  std::string kubeconfig = std::string(dir != nullptr ? dir : kDefaultDataDir) + "/kubeconfig";
  if (::access(kubeconfig.c_str(), R_OK) != 0) {
    std::cerr << "sluice kubectl: " << kubeconfig << " not readable; is `sluice server` running "
              << "(set SLUICE_DATA_DIR for another data directory)?\n";
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
  std::cerr << "sluice kubectl: cannot run " << binary << ": " << std::strerror(errno) << "\n";
  return 127;
}

int runServer(const std::string& dataDir, const std::string& listen, const std::string& serviceCidr,
              const std::string& nodePorts, const std::string& lbPool, int verbosity, int compactSeconds,
              bool controllersOn) {
  auto addr = parseListen(listen);
  if (!addr) {
    std::cerr << "sluice server: --listen " << listen << ": expected ADDR:PORT\n";
    return 2;
  }
  sluice::server::ApiServerOptions o;
  o.dataDir = dataDir;
  o.listenHost = addr->host;
  o.listenPort = addr->port;
  o.network.serviceCidr = serviceCidr;
  o.network.loadBalancerPool = lbPool;
  o.logRequests = verbosity > 0;
  o.compactInterval = std::chrono::seconds(compactSeconds);
  size_t dash = nodePorts.find('-');
  if (dash == std::string::npos) {
    std::cerr << "sluice server: --service-node-port-range " << nodePorts << ": expected FIRST-LAST\n";
    return 2;
  }
  o.network.nodePortFirst = std::atoi(nodePorts.substr(0, dash).c_str());
  o.network.nodePortLast = std::atoi(nodePorts.substr(dash + 1).c_str());

  // Signals are taken synchronously below, so block them in every thread.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto server = sluice::server::ApiServer::start(o);
  if (!server) {
    std::cerr << "sluice server: " << server.error().message << "\n";
    return 1;
  }
  std::cout << "sluice server: serving on " << (*server)->url() << "\n"
            << "sluice server: kubeconfig " << (*server)->kubeconfigPath() << "\n"
            << std::flush;
  // The controllers reach the server through its own REST API with the
  // admin credentials, as kube-controller-manager does.
  std::unique_ptr<sluice::client::ApiClient> client;
  std::unique_ptr<sluice::controllers::ControllerManager> controllers;
  if (controllersOn) {
    auto kc = sluice::client::Kubeconfig::load((*server)->kubeconfigPath());
    if (!kc) {
      std::cerr << "sluice server: " << kc.error().message << "\n";
      return 1;
    }
    auto c = sluice::client::ApiClient::create(*kc, "sluice-controller-manager");
    if (!c) {
      std::cerr << "sluice server: " << c.error().message << "\n";
      return 1;
    }
    client = std::move(*c);
    auto m = sluice::controllers::ControllerManager::start(*client);
    if (!m) {
      std::cerr << "sluice server: " << m.error().message << "\n";
      return 1;
    }
    controllers = std::move(*m);
  }
  int sig = 0;
  sigwait(&set, &sig);
  std::cout << "sluice server: stopping (signal " << sig << ")\n" << std::flush;
  if (controllers) controllers->stop();
  (*server)->stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // kubectl's own flags must pass through untouched, so it is dispatched
  // before option parsing.
  if (argc >= 2 && std::string(argv[1]) == "kubectl") return runKubectl(argc, argv);

  CLI::App app{"sluice: Kubernetes-style service networking"};
  app.require_subcommand(1);
  CLI::App* server = app.add_subcommand("server", "run the Kubernetes-compatible API server");
  std::string dataDir = kDefaultDataDir;
  std::string listen = "127.0.0.1:6443";
  std::string serviceCidr = "10.96.0.0/12";
  std::string nodePorts = "30000-32767";
  std::string lbPool = "192.0.2.0/24";
  int verbosity = 0;
  int compactSeconds = 300;
  server->add_option("--data-dir", dataDir, "state, credentials and kubeconfig directory")->capture_default_str();
  server->add_option("--listen", listen, "HTTPS listen address ADDR:PORT (port 0: any free port)")->capture_default_str();
  server->add_option("--service-cluster-ip-range,--service-cidr", serviceCidr, "ClusterIP range")->capture_default_str();
  server->add_option("--service-node-port-range", nodePorts, "NodePort range FIRST-LAST")->capture_default_str();
  server->add_option("--lb-pool", lbPool, "LoadBalancer ingress address pool (CIDR)")->capture_default_str();
  server->add_option("--compact-interval", compactSeconds, "seconds of history kept for watches (0: keep all)")
      ->capture_default_str();
  server->add_option("-v,--v", verbosity, "log level (1: every request)");
  bool noControllers = false;
  server->add_flag("--disable-controllers", noControllers, "serve the API only (no ReplicaSet, Deployment, ... controllers)");
  app.add_subcommand("kubectl", "run kubectl against this server (KUBECONFIG=$SLUICE_DATA_DIR/kubeconfig)");
  CLI11_PARSE(app, argc, argv);
  if (server->parsed()) {
    return runServer(dataDir, listen, serviceCidr, nodePorts, lbPool, verbosity, compactSeconds, !noControllers);
  }
  return 0;
}
