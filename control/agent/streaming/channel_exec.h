// kubectl exec / attach over WebSocket: the channel.k8s.io protocol family
// as kubelet serves it. Each binary message starts with a channel byte:
//   0 stdin (client -> server)    1 stdout    2 stderr
//   3 error: the exit as a metav1.Status JSON (v4+), then the server closes
//   4 resize: {"Width":W,"Height":H} (client -> server, tty only)
//   255 close (v5): [255, channel] ends that channel's input (stdin EOF)
// kubectl >= 1.30 offers v5.channel.k8s.io; v4 is served for other clients.
#pragma once

#include <string>
#include <vector>

#include "control/agent/streaming/exec_process.h"
#include "control/agent/streaming/websocket.h"

namespace sluice::agent::streaming {

// Subprotocols served, in preference order.
const std::vector<std::string>& channelProtocols();

// Runs one exec session to its end: starts the process, pumps its streams
// to and from the client, reports the exit status, closes the WebSocket.
// When the client goes away first, the process is killed.
void serveExecChannels(WebSocket& ws, const std::string& protocol, const ExecOptions& options,
                       const ExecLauncher& launch);

// Parses a resize message's JSON; nullopt when malformed.
std::optional<std::pair<uint16_t, uint16_t>> parseResize(std::string_view json);

}  // namespace sluice::agent::streaming
