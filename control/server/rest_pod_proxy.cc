// pods/log, pods/exec, pods/attach, pods/portforward: validated here as
// kube-apiserver does (pod exists and is bound, the container is named and
// exists), then proxied to the agent on the pod's node (NodeProxy), which
// serves them under kubelet's paths.
#include <string>
#include <vector>

#include "control/api/json_codec.h"
#include "control/server/rest_handler.h"

namespace sluice::server {

namespace {

constexpr uint16_t kDefaultAgentPort = 10250;  // kubelet's port

std::string rawQuery(const HttpRequest& http) {
  size_t q = http.target.find('?');
  return q == std::string::npos ? std::string() : http.target.substr(q);
}

// The names in pod.spec.<list> (containers, initContainers).
std::vector<std::string> containerNames(const api::Json& pod, std::string_view list) {
  std::vector<std::string> names;
  const api::Json* cs = api::findPath(pod, {"spec", list});
  if (cs != nullptr && cs->is_array()) {
    for (const auto& c : *cs) names.push_back(api::stringField(c, "name"));
  }
  return names;
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : " ") + n;
  return "[" + s + "]";
}

}  // namespace

std::optional<Response> RestHandler::podProxy(const ResourceRequest& req,
                                              const std::shared_ptr<ResponseWriter>& writer) {
  const std::string& method = req.http->method;
  const std::string& sub = req.subresource;
  if (method != "GET" && !(method == "POST" && sub != "log")) {
    return methodNotSupported(method, "pods/" + sub);
  }
  auto obj = objects_.get(*req.type, req.ns, req.name);
  if (!obj) return fromError(obj.error(), req.type, req.name);
  if (!obj->has_value()) return notFound(*req.type, req.name);
  const api::Json pod = api::encodeJson(*(*obj)->msg);
  const api::Json* spec = api::findPath(pod, {"spec"});
  const std::string nodeName = spec != nullptr ? api::stringField(*spec, "nodeName") : "";
  if (nodeName.empty()) return badRequest("pod " + req.name + " does not have a host assigned");

  std::string container;
  if (sub != "portforward") {
    container = req.http->queryParam("container");
    auto names = containerNames(pod, "containers");
    if (container.empty()) {
      if (names.size() != 1) {
        return badRequest("a container name must be specified for pod " + req.name + ", choose one of: " +
                          joined(names));
      }
      container = names.front();
    }
    bool known = false;
    for (const auto& n : names) known = known || n == container;
    for (const auto& n : containerNames(pod, "initContainers")) known = known || n == container;
    if (!known) return badRequest("container " + container + " is not valid for pod " + req.name);
  }
  if (nodeProxy_ == nullptr) {
    return statusResponse(503, "ServiceUnavailable", "pods/" + sub + " cannot reach node agents in this server");
  }

  const api::ResourceType* nodes = api::Registry::builtin().find("", "v1", "nodes");
  auto nodeObj = objects_.get(*nodes, "", nodeName);
  if (!nodeObj) return fromError(nodeObj.error(), nodes, nodeName);
  if (!nodeObj->has_value()) {
    return statusResponse(500, "InternalError", "error dialing backend: node " + nodeName + " not found");
  }
  const api::Json node = api::encodeJson(*(*nodeObj)->msg);
  std::string host;
  const api::Json* addresses = api::findPath(node, {"status", "addresses"});
  for (const char* wanted : {"InternalIP", "ExternalIP", "Hostname"}) {
    if (!host.empty() || addresses == nullptr || !addresses->is_array()) break;
    for (const auto& a : *addresses) {
      if (api::stringField(a, "type") == wanted) {
        host = api::stringField(a, "address");
        break;
      }
    }
  }
  if (host.empty()) {
    return statusResponse(500, "InternalError", "error dialing backend: node " + nodeName + " has no address");
  }
  uint16_t port = kDefaultAgentPort;
  // An empty daemonEndpoints or kubeletEndpoint ({}) is the default port.
  if (const api::Json* p = api::findPath(node, {"status", "daemonEndpoints", "kubeletEndpoint", "Port"});
      p != nullptr && p->is_number_integer() && p->get<int64_t>() > 0 && p->get<int64_t>() < 65536) {
    port = static_cast<uint16_t>(p->get<int64_t>());
  }

  std::string target;
  const std::string podPath = "/" + req.ns + "/" + req.name;
  if (sub == "log") target = "/containerLogs" + podPath + "/" + container;
  if (sub == "exec") target = "/exec" + podPath + "/" + container;
  if (sub == "attach") target = "/attach" + podPath + "/" + container;
  if (sub == "portforward") target = "/portForward" + podPath;
  nodeProxy_->forward(*req.http, nodeName, host, port, target + rawQuery(*req.http), writer);
  return std::nullopt;
}

}  // namespace sluice::server
