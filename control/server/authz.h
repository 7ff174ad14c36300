// Who a request comes from and what it may do.
//
// Authentication: bearer tokens. The admin token (DATA_DIR/token) is user
// "admin" in group system:masters. Each node agent has a token of its own,
// bound to its Node: "sluice-node.<node name>.<HMAC-SHA256(node secret,
// "system:node:<name>") in hex>", the node secret (DATA_DIR/node-secret,
// 256 random bits) never leaving the server; it is user system:node:<name>
// in group system:nodes, as a kubelet's client certificate makes it in
// Kubernetes. No token store: the server recomputes the MAC, compared in
// constant time. `sluice node-kubeconfig` (and `sluice up`, for its own
// node) issues them.
//
// Authorization: system:masters may do anything (full RBAC for users comes
// later). A node may do what Kubernetes' Node authorizer and NodeRestriction
// admission let a kubelet do, and nothing else: read the objects a node
// agent and kube-proxy watch (pods, services, endpoints, endpointslices,
// nodes, namespaces); create and change its own Node and Lease; change the
// status of, and delete, pods bound to it; write its own NodeMetrics and its
// pods' PodMetrics; create Events. Anything else is 403 with Kubernetes'
// message ("... is forbidden: User "system:node:n1" cannot patch resource
// "deployments" in API group "apps" in the namespace "default"").
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/api/registry.h"

namespace sluice::server {

struct UserInfo {
  std::string name;  // "admin", "system:node:n1"
  std::vector<std::string> groups;
  bool isMaster() const;
  // The node name of a node identity, "" otherwise.
  std::string nodeName() const;
};

class Authenticator {
 public:
  Authenticator(std::string adminToken, std::string nodeSecret)
      : adminToken_(std::move(adminToken)), nodeSecret_(std::move(nodeSecret)) {}
  // The identity behind "Authorization: Bearer <token>", or nullopt (401).
  std::optional<UserInfo> authenticate(std::string_view authorizationHeader) const;
  // The token of node `nodeName` (what its kubeconfig carries, and what the
  // server presents to that node's agent when it proxies a stream).
  std::string nodeToken(const std::string& nodeName) const;

 private:
  std::string adminToken_;
  std::string nodeSecret_;
};

// One request as the authorizer sees it (Kubernetes' attributes).
struct RequestAttributes {
  std::string verb;  // get list watch create update patch delete deletecollection
  const api::ResourceType* type = nullptr;
  std::string ns;
  std::string name;
  std::string subresource;
};

// The Kubernetes verb of a resource request.
std::string requestVerb(std::string_view method, bool hasName, bool watch);

// spec.nodeName of pod ns/name as stored now ("" if it has none; nullopt if
// there is no such pod). The authorizer reads only what it must.
using PodNodeLookup = std::function<std::optional<std::string>(const std::string& ns, const std::string& name)>;

// nullopt: allowed. Otherwise the reason, for a 403 Status.
std::optional<std::string> authorize(const UserInfo& user, const RequestAttributes& attrs,
                                     const PodNodeLookup& podNode);

}  // namespace sluice::server
