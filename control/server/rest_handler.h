// RestHandler: the Kubernetes REST verbs on the registry's resources — get,
// list, create, update, patch (JSON merge, JSON patch, strategic merge),
// delete (propagationPolicy, finalizers, deletionTimestamp),
// deletecollection, watch — and the status, scale and binding subresources.
// Each verb runs the same pipeline Kubernetes' generic registry does: decode
// (with fieldValidation), defaulting, strategy preparation, validation,
// admission (service allocation, namespace existence), then one
// compare-and-swap write to the store.
#pragma once

#include <memory>
#include <optional>
#include <variant>
#include <string>
#include <vector>

#include "control/api/registry.h"
#include "control/server/http_server.h"
#include "control/server/node_proxy.h"
#include "control/server/object_store.h"
#include "control/server/output.h"
#include "control/server/responses.h"
#include "control/server/service_allocations.h"
#include "control/server/watch_manager.h"

namespace sluice::server {

// One resource request, parsed from the URL.
struct ResourceRequest {
  const HttpRequest* http = nullptr;
  const api::ResourceType* type = nullptr;
  std::string ns;           // from the path; "" for cluster-scoped or all namespaces
  std::string name;
  std::string subresource;  // "status", "scale", "binding", ...
};

class RestHandler {
 public:
  RestHandler(ObjectStore& objects, ServiceAllocations& services, WatchManager& watches);

  // Dispatches on method and path shape; watches answer through `writer`
  // directly and return nullopt.
  std::optional<Response> handle(const ResourceRequest& req, const std::shared_ptr<ResponseWriter>& writer);

  // Where pods/log, exec, attach and portforward go (the pod's node agent);
  // without one they answer 503.
  void setNodeProxy(NodeProxy* proxy) { nodeProxy_ = proxy; }

  // Used at start-up to create built-in objects through the full pipeline.
  Response createObject(const api::ResourceType& type, const std::string& ns, const api::Json& body);

 private:
  Response get(const ResourceRequest& req);
  // Small lists are one response; large ones stream through `writer`
  // (then nullopt).
  std::optional<Response> list(const ResourceRequest& req, const std::shared_ptr<ResponseWriter>& writer);
  void watch(const ResourceRequest& req, const std::shared_ptr<ResponseWriter>& writer);
  Response create(const ResourceRequest& req);
  Response update(const ResourceRequest& req, bool statusOnly);
  Response patch(const ResourceRequest& req, bool statusOnly);
  Response remove(const ResourceRequest& req);
  Response removeCollection(const ResourceRequest& req);
  Response scale(const ResourceRequest& req);
  Response bind(const ResourceRequest& req);
  // pods/{log,exec,attach,portforward}: checks the pod, container and node,
  // then proxies to the agent; returns a Response only when it answers itself.
  std::optional<Response> podProxy(const ResourceRequest& req, const std::shared_ptr<ResponseWriter>& writer);

  // Shared steps.
  struct Decoded {
    std::unique_ptr<google::protobuf::Message> obj;
    std::vector<std::string> warnings;
  };
  // Decodes a request body (or a patched object) as the resource's kind,
  // honouring ?fieldValidation=. On failure returns the error Response.
  std::variant<Decoded, Response> decode(const ResourceRequest& req, const api::Json& body);
  // Creates a decoded object; `dryRun` skips the write.
  Response createDecoded(const ResourceRequest& req, Decoded decoded, bool dryRun);
  // Writes `next` over `current`; nullopt means the compare-and-swap lost to
  // a concurrent write and the caller should re-read and retry.
  std::optional<Response> writeUpdate(const ResourceRequest& req, std::unique_ptr<google::protobuf::Message> next,
                                      const ObjectStore::Object& current, bool statusOnly, bool dryRun,
                                      std::vector<std::string> warnings,
                                      std::unique_ptr<google::protobuf::Message>* written = nullptr);
  // Deletes one object (finalizers, propagation). nullopt = lost a race.
  std::optional<Response> deleteOne(const ResourceRequest& req, const ObjectStore::Object& current,
                                    const std::string& policy, bool dryRun, bool returnStatus);
  Response deleteNamespaceContents(const std::string& ns);
  bool hasDependents(const std::string& ns, const std::string& uid);
  Result<void> orphanDependents(const std::string& ns, const std::string& uid);
  // The namespace a namespaced object is created in must exist and not be
  // terminating.
  std::optional<Response> checkNamespace(const ResourceRequest& req, const std::string& ns);

  ObjectStore& objects_;
  ServiceAllocations& services_;
  WatchManager& watches_;
  NodeProxy* nodeProxy_ = nullptr;
};

bool isDryRun(const HttpRequest& req);

// A resourceVersion as Kubernetes parses one (strconv.ParseUint, base 10):
// decimal digits only, at most 2^64-1; nullopt otherwise.
std::optional<uint64_t> parseResourceVersion(std::string_view text);
// The 400 for a resourceVersion that is not one; `where` names it
// ("resourceVersion" for the query parameter, "metadata.resourceVersion").
Response invalidResourceVersion(std::string_view where, std::string_view text);

}  // namespace sluice::server
