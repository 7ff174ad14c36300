// `sluice server`'s parts as a reusable unit: its flags and a running API
// server with its controller manager, so `sluice up` starts exactly what
// `sluice server` does.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "control/client/api_client.h"
#include "control/controllers/manager.h"
#include "control/server/api_server.h"

namespace sluice::cmd {

constexpr const char* kDefaultDataDir = "/var/lib/sluice";

struct ServerFlags {
  std::string dataDir = kDefaultDataDir;
  std::string listen = "0.0.0.0:6443";  // all addresses, as kube-apiserver binds
  std::string serviceCidr = "10.96.0.0/12";
  std::string nodePorts = "30000-32767";
  std::string lbPool = "192.0.2.0/24";
  // Node IPAM (--allocate-node-cidrs in Kubernetes): empty disables it.
  std::string clusterCidr = "10.244.0.0/16";
  int nodeCidrMaskSize = 24;
  // The `kubernetes` Service's endpoint address; empty: defaultAdvertiseAddress().
  std::string advertiseAddress;
  int compactSeconds = 300;
  bool noControllers = false;
  // kube-apiserver's defaults; 0 disables a limit.
  int maxRequestsInflight = 400;
  int maxMutatingRequestsInflight = 200;
  // 0: sized from the fd limit (server::defaultMaxConnections()).
  size_t maxConnections = 0;
};

void addServerFlags(CLI::App& app, ServerFlags& f);

// Logging flags of every long-running command (server, agent, up), as
// Kubernetes components take them: -v N, --log-format, --log-file.
struct LogFlags {
  int verbosity = 0;
  std::string format = "text";
  std::string file;
};
void addLogFlags(CLI::App& app, LogFlags& f);
// Installs the spdlog sink for these flags.
Result<void> installLogging(const LogFlags& f);

// The API server plus, unless disabled, the controllers, which reach it
// through its own REST API with the admin credentials (as
// kube-controller-manager does).
class ServerProcess {
 public:
  // Errors name the flag or part that failed; `what` prefixes messages.
  static Result<std::unique_ptr<ServerProcess>> start(const ServerFlags& f);
  ~ServerProcess();
  void stop();

  server::ApiServer& server() { return *server_; }
  std::string kubeconfigPath() const { return server_->kubeconfigPath(); }

 private:
  std::unique_ptr<server::ApiServer> server_;
  std::unique_ptr<client::ApiClient> client_;
  std::unique_ptr<controllers::ControllerManager> controllers_;
};

// Blocks SIGINT/SIGTERM in every thread (call before starting threads) and
// ignores SIGPIPE; waitForSignal() then returns the signal that arrived.
void blockSignals();

// `sluice node-kubeconfig`: a kubeconfig for node `nodeName`'s agent (user
// system:node:NAME), from the server's data directory (its CA, its node
// secret and, unless given, its URL).
Result<std::string> nodeKubeconfig(const std::string& dataDir, const std::string& nodeName,
                                   const std::string& serverUrl);
int waitForSignal();

// The path of the running executable.
std::string selfExe();

// The IPv4 address of the interface holding the default route (else the
// first non-loopback one), "" if none: `sluice up`'s node IP and the
// default advertise address.
std::string primaryIpv4();

// --advertise-address's default, as kube-apiserver's: the listen host
// unless it is a wildcard or loopback, else primaryIpv4() (else the listen
// host, so a host without IPv4 still gets an address).
std::string defaultAdvertiseAddress(const std::string& listenHost);

}  // namespace sluice::cmd
