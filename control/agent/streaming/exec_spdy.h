// kubectl exec (and attach) over SPDY, the channel protocols
// v4.channel.k8s.io, v3.channel.k8s.io and v2.channel.k8s.io as kubelet
// serves them (pkg/kubelet/cri/streaming/remotecommand/httpstream.go,
// exec.go); kubectl 1.29 and older use these, later ones WebSocket.
//
// The client opens one stream per channel, told apart by the streamtype
// header: error, stdin, stdout, stderr, and (v3+, with a tty) resize. The
// server waits until as many streams as the options call for arrived:
// 1 (error) + stdin + stdout + stderr (not with a tty) + resize (tty, v3+).
// Then the process runs: stdin stream -> process (FIN = EOF), process stdout
// and stderr -> their streams, resize stream = JSON {"Width":w,"Height":h}
// values, one per line. When the process exited and its output drained, the
// error stream carries the outcome:
//   v4:     a metav1.Status as JSON (execExitStatusJson), also on success;
//   v2, v3: nothing on success, else the status message as text.
// Then every stream ends and the session closes (GOAWAY), as kubelet's
// conn.Close() does.
#pragma once

#include <chrono>
#include <string>

#include "control/agent/streaming/byte_stream.h"
#include "control/agent/streaming/exec_process.h"
#include "dataplane/result.h"

namespace sluice::agent::streaming {

inline constexpr std::string_view kExecProtocolV4 = "v4.channel.k8s.io";
inline constexpr std::string_view kExecProtocolV3 = "v3.channel.k8s.io";
inline constexpr std::string_view kExecProtocolV2 = "v2.channel.k8s.io";

struct ExecSpdyOptions {
  // kubelet's streamCreationTimeout: how long the client has to open the
  // streams before the connection is dropped.
  std::chrono::milliseconds streamCreationTimeout{30000};
};

// `protocol` is what the upgrade negotiated (X-Stream-Protocol-Version);
// `options` come from the request's query (command, stdin, stdout, stderr,
// tty; stderr is ignored with a tty, as kubelet does). Returns once the
// process ended and the session is closed; ok also when the process failed
// (that went to the client on the error stream). If the client goes away
// first, the process is killed and reaped.
Result<void> serveExecSpdy(ByteStream& conn, const std::string& protocol,
                           const ExecOptions& options, ExecLauncher launcher,
                           const ExecSpdyOptions& spdyOptions = {});

}  // namespace sluice::agent::streaming
