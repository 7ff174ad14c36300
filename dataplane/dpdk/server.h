// The gRPC front of sluice-dpdk (dpdk.proto) over a running Dataplane:
// streamed full sync, incremental apply, status, describe. Errors become
// gRPC status codes (kInvalidArgument -> INVALID_ARGUMENT, a stale epoch
// -> FAILED_PRECONDITION, ...), with the message naming the field.
//
// Threading: gRPC's own threads; Dataplane serialises the writes.
#pragma once

#include <memory>
#include <string>

#include "dataplane/dpdk/dataplane.h"
#include "dataplane/result.h"

namespace grpc {
class Server;
}

namespace sluice::dpdk {

class ApiServer {
 public:
  // Listens on the unix socket `path` (replacing a stale one).
  static Result<std::unique_ptr<ApiServer>> start(Dataplane& dataplane, const std::string& path);
  ~ApiServer();
  void stop();

 private:
  ApiServer() = default;
  struct Service;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string path_;
};

}  // namespace sluice::dpdk
