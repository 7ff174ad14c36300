// The agent's streaming server: the part of kubelet's HTTPS API the API
// server proxies pods/log, pods/exec and pods/portforward to (NodeProxy),
// under kubelet's paths:
//   GET      /containerLogs/{ns}/{pod}/{container}?follow&previous&tailLines&limitBytes
//   GET|POST /exec/{ns}/{pod}/{container}?command=...&stdin&stdout&stderr&tty
//                WebSocket (v5/v4.channel.k8s.io) or SPDY/3.1 upgrade
//   GET|POST /portForward/{ns}/{pod}
//                WebSocket tunnel (SPDY/3.1+portforward.k8s.io) or SPDY/3.1 upgrade
// Requests must carry the agent's own node token (the API server presents
// it when it proxies, server/node_proxy.h), compared in constant time; a
// server without a token refuses to start. HTTPS with a self-signed
// certificate generated under dataDir.
//
// Threading: the HTTP workers only parse and route; each exec, port-forward
// or followed log runs on its own session thread until it ends, so long
// sessions never starve the worker pool. stop() closes every session.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "control/agent/streaming/exec_process.h"
#include "dataplane/result.h"

namespace sluice::agent::streaming {

// One container instance's log file.
struct LogSource {
  std::string path;
  // While true, a follow keeps waiting for more; the follow ends once it is
  // false and the file is drained (the instance exited, as kubelet does).
  std::function<bool()> running;
};

// What the runtime provides; errors carry kNotFound / kInvalidArgument /
// kFailedPrecondition so the server answers 404 / 400 / 400.
struct StreamingBackend {
  std::function<Result<LogSource>(const std::string& ns, const std::string& pod, const std::string& container,
                                  bool previous)>
      logs;
  std::function<Result<ExecLauncher>(const std::string& ns, const std::string& pod, const std::string& container)>
      exec;
  std::function<Result<PortDialer>(const std::string& ns, const std::string& pod)> portForward;
};

struct StreamingServerOptions {
  std::string address = "0.0.0.0";
  uint16_t port = 10250;  // kubelet's; 0 picks a free one (see port())
  // Serving certificate and key are generated here on first start.
  std::string tlsDir;
  std::vector<std::string> sans;  // node addresses for the certificate
  // The bearer token requests must carry; required (start() refuses "").
  std::string token;
};

class StreamingServer {
 public:
  static Result<std::unique_ptr<StreamingServer>> start(StreamingServerOptions options, StreamingBackend backend);
  ~StreamingServer();
  StreamingServer(const StreamingServer&) = delete;
  StreamingServer& operator=(const StreamingServer&) = delete;

  uint16_t port() const;
  void stop();

  struct Impl;

 private:
  explicit StreamingServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::agent::streaming
