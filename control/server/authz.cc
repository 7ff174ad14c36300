#include "control/server/authz.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <set>

namespace sluice::server {

namespace {

constexpr std::string_view kBearer = "Bearer ";
constexpr std::string_view kNodeTokenPrefix = "sluice-node.";
constexpr const char* kNodeUserPrefix = "system:node:";

bool constantTimeEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hmacHex(const std::string& key, const std::string& message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 15];
  }
  return out;
}

bool isReadVerb(const std::string& v) { return v == "get" || v == "list" || v == "watch"; }

}  // namespace

bool UserInfo::isMaster() const {
  return std::find(groups.begin(), groups.end(), "system:masters") != groups.end();
}

std::string UserInfo::nodeName() const {
  if (name.rfind(kNodeUserPrefix, 0) != 0) return "";
  if (std::find(groups.begin(), groups.end(), "system:nodes") == groups.end()) return "";
  return name.substr(std::string_view(kNodeUserPrefix).size());
}

std::string Authenticator::nodeToken(const std::string& nodeName) const {
  return std::string(kNodeTokenPrefix) + nodeName + "." + hmacHex(nodeSecret_, kNodeUserPrefix + nodeName);
}

std::optional<UserInfo> Authenticator::authenticate(std::string_view header) const {
  if (header.size() <= kBearer.size() || header.substr(0, kBearer.size()) != kBearer) return std::nullopt;
  const std::string_view token = header.substr(kBearer.size());
  if (!adminToken_.empty() && constantTimeEqual(token, adminToken_)) {
    return UserInfo{"admin", {"system:masters", "system:authenticated"}};
  }
  if (nodeSecret_.empty() || token.substr(0, kNodeTokenPrefix.size()) != kNodeTokenPrefix) return std::nullopt;
  const size_t dot = token.rfind('.');
  if (dot == std::string_view::npos || dot <= kNodeTokenPrefix.size()) return std::nullopt;
  const std::string node(token.substr(kNodeTokenPrefix.size(), dot - kNodeTokenPrefix.size()));
  // The whole token is recomputed and compared, so a forged name fails
  // exactly like a forged MAC.
  if (!constantTimeEqual(token, nodeToken(node))) return std::nullopt;
  return UserInfo{kNodeUserPrefix + node, {"system:nodes", "system:authenticated"}};
}

std::string requestVerb(std::string_view method, bool hasName, bool watch) {
  if (method == "GET" || method == "HEAD") return watch ? "watch" : hasName ? "get" : "list";
  if (method == "POST") return "create";
  if (method == "PUT") return "update";
  if (method == "PATCH") return "patch";
  if (method == "DELETE") return hasName ? "delete" : "deletecollection";
  return "unknown";
}

std::optional<std::string> authorize(const UserInfo& user, const RequestAttributes& a,
                                     const PodNodeLookup& podNode) {
  if (user.isMaster()) return std::nullopt;
  const std::string group = a.type ? a.type->group : "";
  const std::string resource = a.type ? a.type->resource : "";
  auto forbidden = [&]() -> std::optional<std::string> {
    std::string what = a.type ? a.type->qualifiedResource() : resource;
    if (!a.subresource.empty()) what += "/" + a.subresource;
    std::string msg = (a.name.empty() ? what : what + " \"" + a.name + "\"") + " is forbidden: User \"" + user.name +
                      "\" cannot " + a.verb + " resource \"" + resource +
                      (a.subresource.empty() ? "" : "/" + a.subresource) + "\" in API group \"" + group + "\"";
    msg += a.ns.empty() ? " at the cluster scope" : " in the namespace \"" + a.ns + "\"";
    return msg;
  };
  const std::string node = user.nodeName();
  if (node.empty()) return forbidden();

  // Reads a node agent and its proxy need (kubelet lists pods, kube-proxy
  // watches services and endpoint slices). Secrets and config maps stay
  // out: no pod of this runtime mounts them yet.
  static const std::set<std::pair<std::string, std::string>> kReadable = {
      {"", "pods"},       {"", "services"},  {"", "endpoints"},       {"", "nodes"},
      {"", "namespaces"}, {"discovery.k8s.io", "endpointslices"},     {"coordination.k8s.io", "leases"},
  };
  if (isReadVerb(a.verb) && a.subresource.empty() && kReadable.count({group, resource})) return std::nullopt;

  // Its own Node, status included.
  if (group.empty() && resource == "nodes") {
    if ((a.verb == "create" || a.verb == "update" || a.verb == "patch" || a.verb == "get") && a.name == node) {
      return std::nullopt;
    }
    return forbidden();
  }
  // Its own heartbeat Lease.
  if (group == "coordination.k8s.io" && resource == "leases") {
    if (a.ns == "kube-node-lease" && a.name == node &&
        (a.verb == "create" || a.verb == "update" || a.verb == "patch" || a.verb == "get")) {
      return std::nullopt;
    }
    return forbidden();
  }
  // Pods bound to it: their status, and deleting them once terminated.
  if (group.empty() && resource == "pods") {
    const bool statusWrite = a.subresource == "status" && (a.verb == "update" || a.verb == "patch");
    const bool del = a.subresource.empty() && a.verb == "delete";
    if ((statusWrite || del || (a.subresource == "status" && a.verb == "get")) && !a.name.empty()) {
      auto bound = podNode(a.ns, a.name);
      if (bound && *bound == node) return std::nullopt;
    }
    return forbidden();
  }
  // Events it reports.
  if (group.empty() && resource == "events" && (a.verb == "create" || a.verb == "patch" || a.verb == "update")) {
    return std::nullopt;
  }
  // Resource metrics it measures: its NodeMetrics, its pods' PodMetrics.
  if (group == "metrics.k8s.io" && (a.verb == "create" || a.verb == "update" || a.verb == "patch" ||
                                   a.verb == "get" || a.verb == "delete")) {
    if (resource == "nodes" && a.name == node) return std::nullopt;
    if (resource == "pods" && !a.name.empty()) {
      auto bound = podNode(a.ns, a.name);
      if (bound && *bound == node) return std::nullopt;
      // The metrics of a pod already gone are removed by its node, which
      // no longer has anything to prove them by.
      if (!bound && a.verb == "delete") return std::nullopt;
    }
    return forbidden();
  }
  return forbidden();
}

}  // namespace sluice::server
