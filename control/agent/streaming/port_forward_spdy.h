// kubectl port-forward over SPDY (portforward.k8s.io, as kubelet serves it in
// pkg/kubelet/cri/streaming/portforward/httpstream.go). Per forwarded TCP
// connection the client opens two streams with headers
//   streamtype: error | data,  port: <pod port>,  requestid: <n>
// (the error stream first, which it half-closes at once). They are paired by
// requestid (older clients send none: the error stream's id, or the data
// stream's id - 2, as kubelet derives it), in either order. Once both are
// there, the pod port is dialed and bytes are copied both ways on the data
// stream; the error stream carries, on failure, one message (kubectl prints
// it as "an error occurred forwarding <local> -> <port>: <message>"), then
// FIN. Many connections share one session.
//
// Half-close: the client's FIN on the data stream half-closes the pod socket
// (shutdown SHUT_WR) and the pod's answer keeps flowing; the pod's EOF sends
// FIN on the data stream, after which the client gets `halfCloseGrace` to
// finish (kubectl resets the data stream at once; containerd waits 1 s),
// then the error stream gets its FIN and the connection is done.
#pragma once

#include <chrono>
#include <string>

#include "control/agent/streaming/byte_stream.h"
#include "control/agent/streaming/exec_process.h"
#include "dataplane/result.h"

namespace sluice::agent::streaming {

struct PortForwardOptions {
  // For the error message kubelet writes: "error forwarding port 80 to pod
  // <podName>, uid <podUid>: <dial error>".
  std::string podName;
  std::string podUid;
  // How long a stream waits for its pair (kubelet's streamCreationTimeout).
  std::chrono::milliseconds streamCreationTimeout{30000};
  // After the pod closed its side, how long the client may keep sending
  // (containerd's 1 s, after socat).
  std::chrono::milliseconds halfCloseGrace{1000};
};

// Serves one upgraded connection until the client closes it (ok), or a
// read/protocol error. Every dialed pod socket is closed and every thread
// joined before it returns.
Result<void> servePortForwardSpdy(ByteStream& conn, PortDialer dialer);
Result<void> servePortForwardSpdy(ByteStream& conn, PortDialer dialer,
                                  const PortForwardOptions& options);

}  // namespace sluice::agent::streaming
