// The agent's node-local gRPC API for `sluice debug` (debug.proto): a
// ProxyDebug server on a unix socket, answering from the mode's
// mode-neutral description (ProxyMode::describe*(): what the datapath holds
// now), so it works unchanged for every mode. The conversions from a
// description to responses are pure functions, for tests.
//
// Threading: gRPC's worker threads call the mode's describe*() and the
// table source; both are thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "control/agent/proxy/debug.grpc.pb.h"
#include "control/agent/proxy/debug.pb.h"
#include "dataplane/proxy_mode.h"
#include "dataplane/result.h"
#include "dataplane/service.h"

namespace grpc {
class Server;
}

namespace sluice::agent {

using TableSource = std::function<ServiceTable()>;

// `cilium bpf lb list`: every frontend with its cluster-wide backend set.
debug::ListServicesResponse describeServices(std::string_view mode,
                                             const std::vector<DescribedFrontend>& frontends);
// The service port `name` names ("ns/name:port", or "ns/name" for a service
// with one port), by the proxy's table; kNotFound if unknown or ambiguous.
Result<ServiceKey> findServiceKey(const ServiceTable& table, const std::string& name);
// The Maglev tables of one service port.
debug::GetMaglevResponse describeMaglev(const DescribedSelection& selection);
// `cilium bpf ct list`.
debug::ListConntrackResponse describeConntrack(const std::vector<DescribedFlow>& flows);
// The mode, its epoch and its missing features.
debug::GetModeResponse describeMode(const ProxyMode& mode);

class DebugServer {
 public:
  // Serves on unix:socketPath (replacing a stale socket file; the directory
  // is created, the socket is private to root). `mode` must outlive it.
  static Result<std::unique_ptr<DebugServer>> start(const std::string& socketPath,
                                                    const ProxyMode& mode, TableSource table);
  ~DebugServer();
  DebugServer(const DebugServer&) = delete;
  DebugServer& operator=(const DebugServer&) = delete;
  void stop();
  const std::string& socketPath() const { return socketPath_; }

 private:
  class Impl;
  DebugServer() = default;
  std::string socketPath_;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace sluice::agent
