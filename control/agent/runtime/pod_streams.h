// The pod runtime's side of kubectl logs / exec / port-forward: the
// StreamingBackend the agent's streaming server calls. Pods are found by
// namespace/name in their persisted state (DATA/pods/<uid>/state.json), so
// this works on pods the running agent adopted as well as ones it started.
//   logs          DATA/pods/<uid>/logs/<container>/<restartCount>.log, or the
//                 instance before it for --previous
//   exec          a process entered into the container's PID, mount (root),
//                 UTS, IPC and network namespaces with the container's
//                 environment; a pty for -t, pipes otherwise
//   port-forward  a TCP connection to 127.0.0.1:PORT opened inside the pod's
//                 network namespace (kubelet/CRI do the same)
#pragma once

#include <string>

#include "control/agent/streaming/streaming_server.h"

namespace sluice::agent {

streaming::StreamingBackend podStreamingBackend(const std::string& dataDir);

// Starts `options.command` in the namespaces and root of the running
// process `containerPid` (the container's first process).
Result<std::unique_ptr<streaming::ExecProcess>> startExec(pid_t containerPid, const streaming::ExecOptions& options);

}  // namespace sluice::agent
