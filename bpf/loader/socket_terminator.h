// SocketTerminator: stale connected UDP sockets (bpf/sock_term.bpf.c). After
// apply() removes backends from a service with a UDP frontend, the sockets
// bpf_sock connected to those backends through that service are destroyed
// (their next recv()/send() fails with ECONNABORTED, so the application
// reconnects to a live backend). Sockets are found in the network
// namespace of the thread that calls run() (the node's, for the agent).
//
// Optional: a kernel without iter/udp (5.9) or the bpf_sock_destroy kfunc
// (6.5) still balances; available() says why not. The probes decide
// (kernel_features.h): the object is not even tried where they fail, so a
// 6.1 node logs no libbpf load error for it.
//
// Threading: run() and lastRun() may be called from any thread.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bpf/abi/sock.h"
#include "bpf/loader/ebpf_options.h"
#include "bpf/loader/kernel_features.h"
#include "bpf/loader/pinned_objects.h"
#include "dataplane/result.h"

struct sock_term_bpf;

namespace sluice::bpf {

class SocketTerminator {
 public:
  // Loads the iterator object with the mode's pinned maps where `kernel`
  // has what it needs; never fails (see available()).
  SocketTerminator(const EbpfOptions& options, const KernelFeatures& kernel);
  ~SocketTerminator();
  SocketTerminator(const SocketTerminator&) = delete;
  SocketTerminator& operator=(const SocketTerminator&) = delete;

  // OK when the iterator is loaded; otherwise the error says why.
  Result<void> available() const;
  // One sweep over the node's UDP sockets for these targets (1,024 per
  // iterator run); the target map is left empty whatever happens.
  Result<void> run(const std::vector<sl_sock_term_key>& targets);
  // The last sweep's error, or OK (also OK before any sweep).
  Result<void> lastRun() const;

 private:
  Skeleton<sock_term_bpf> skel_;
  std::string loadError_;
  mutable std::mutex mu_;  // guards lastError_ and serialises sweeps
  std::optional<Error> lastError_;
};

}  // namespace sluice::bpf
