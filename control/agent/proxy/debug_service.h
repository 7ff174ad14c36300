// The agent's node-local gRPC API for `sluice debug` (debug.proto): a
// ProxyDebug server on a unix socket, answering from EbpfMode::dump() (the
// maps as the kernel holds them) named with the proxy's ServiceTable. The
// conversion from a dump to responses is a pure function, for tests.
//
// Threading: gRPC's worker threads call dump() and the table source; both
// are thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "bpf/loader/ebpf_mode.h"
#include "control/agent/proxy/debug.grpc.pb.h"
#include "control/agent/proxy/debug.pb.h"
#include "dataplane/result.h"
#include "dataplane/service.h"

namespace grpc {
class Server;
}

namespace sluice::agent {

using TableSource = std::function<ServiceTable()>;

// `cilium bpf lb list`: every frontend with its cluster-wide backend set.
debug::ListServicesResponse describeServices(const EbpfDump& dump, const ServiceTable& table);
// The Maglev tables of `service` ("ns/name:port" or "ns/name"); kNotFound if
// the service or its programmed frontends are unknown.
Result<debug::GetMaglevResponse> describeMaglev(const EbpfDump& dump, const ServiceTable& table,
                                                const std::string& service);
// `cilium bpf ct list`. nowNs: CLOCK_MONOTONIC now, for idle times.
debug::ListConntrackResponse describeConntrack(const EbpfDump& dump, uint64_t nowNs);

class DebugServer {
 public:
  // Serves on unix:socketPath (replacing a stale socket file; the directory
  // is created). mode may be null: the RPCs then answer UNIMPLEMENTED,
  // naming modeName.
  static Result<std::unique_ptr<DebugServer>> start(const std::string& socketPath,
                                                    EbpfMode* mode, std::string modeName,
                                                    TableSource table);
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
