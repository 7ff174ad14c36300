// NodeProxy: how the API server reaches a node agent for the pod
// subresources kubelet serves in Kubernetes — pods/log, pods/exec,
// pods/attach, pods/portforward. Like kube-apiserver's upgrade-aware proxy,
// it opens HTTPS to the agent's streaming port (Node
// status.daemonEndpoints.kubeletEndpoint.Port on the node's InternalIP),
// sends the request there (path rewritten to the agent's
// /containerLogs/, /exec/, /attach/, /portForward/ form, the node's own
// token as the credential), then takes the client's connection over and splices
// bytes both ways: a log stream, a WebSocket or a SPDY session pass through
// untouched, whichever protocol the client and agent agree on.
//
// The agent's serving certificate is self-signed and not verified (as
// kube-apiserver without --kubelet-certificate-authority); the agent checks
// the bearer token, its own node token, in constant time.
//
// Threading: forward() blocks a request worker until the agent answered the
// TLS handshake (bounded by a timeout); the splice then runs on the proxy's
// own I/O thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "control/server/http_server.h"
#include "dataplane/result.h"

namespace sluice::server {

class NodeProxy {
 public:
  // The credential the server presents to a node's agent: that node's own
  // token (authz.h), so an agent accepts exactly its own credential.
  using TokenFor = std::function<std::string(const std::string& nodeName)>;
  explicit NodeProxy(TokenFor tokenFor);
  ~NodeProxy();  // closes open splices
  NodeProxy(const NodeProxy&) = delete;
  NodeProxy& operator=(const NodeProxy&) = delete;

  // Sends `request` to https://host:port`agentTarget` and hands the client's
  // connection to the agent's answer. When the agent cannot be reached,
  // answers the client with a Status itself (500, as kube-apiserver reports
  // "error dialing backend").
  void forward(const HttpRequest& request, const std::string& nodeName, const std::string& host, uint16_t port,
               const std::string& agentTarget, const std::shared_ptr<ResponseWriter>& writer);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::server
