#include "control/server/rest_handler.h"

namespace sluice::server {

RestHandler::RestHandler(ObjectStore& objects, ServiceAllocations& services, WatchManager& watches)
    : objects_(objects), services_(services), watches_(watches) {}

std::optional<Response> RestHandler::handle(const ResourceRequest& req,
                                            const std::shared_ptr<ResponseWriter>& writer) {
  const std::string& method = req.http->method;
  const api::ResourceType& t = *req.type;
  std::string what = t.resource + (req.subresource.empty() ? "" : "/" + req.subresource);
  if (!req.subresource.empty()) {
    if (req.name.empty()) return statusResponse(404, "NotFound", "the server could not find the requested resource");
    if (req.subresource == "status" && t.statusSubresource) {
      if (method == "GET") return get(req);
      if (method == "PUT") return update(req, true);
      if (method == "PATCH") return patch(req, true);
      return methodNotSupported(method, what);
    }
    if (req.subresource == "scale" && t.scaleSubresource) return scale(req);
    if (req.subresource == "binding" && t.kind == "Pod") return bind(req);
    if (t.kind == "Pod" && (req.subresource == "log" || req.subresource == "exec" || req.subresource == "attach" ||
                            req.subresource == "portforward")) {
      return podProxy(req, writer);
    }
    return statusResponse(404, "NotFound", "the server could not find the requested resource");
  }
  bool isWatch = req.http->queryParam("watch") == "true" || req.http->queryParam("watch") == "1";
  if (method == "GET") {
    if (!req.name.empty()) return get(req);
    if (isWatch) {
      watch(req, writer);
      return std::nullopt;
    }
    return list(req, writer);
  }
  if (method == "POST") {
    if (!req.name.empty()) return methodNotSupported(method, what);
    if (t.namespaced && req.ns.empty()) {
      return statusResponse(404, "NotFound", "the server could not find the requested resource");
    }
    return create(req);
  }
  if (method == "PUT") {
    if (req.name.empty()) return methodNotSupported(method, what);
    return update(req, false);
  }
  if (method == "PATCH") {
    if (req.name.empty()) return methodNotSupported(method, what);
    return patch(req, false);
  }
  if (method == "DELETE") {
    if (req.name.empty()) {
      if (t.kind == "Namespace") return methodNotSupported(method, what);
      return removeCollection(req);
    }
    return remove(req);
  }
  return methodNotSupported(method, what);
}

}  // namespace sluice::server
