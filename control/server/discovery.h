// What clients read before they touch objects: /version, legacy discovery
// (/api, /api/v1, /apis, /apis/<group>/<version>), aggregated discovery
// (apidiscovery.k8s.io v2 and v2beta1, which kubectl 1.26+ asks for first),
// and the OpenAPI v2 and v3 documents (openapi.h). All are generated from the
// registry.
#pragma once

#include <optional>
#include <string>

#include "control/api/registry.h"
#include "control/server/http_server.h"
#include "control/server/openapi.h"
#include "control/server/responses.h"

namespace sluice::server {

// The Kubernetes version sluice's API matches.
inline constexpr int kKubernetesMinor = 30;

class Discovery {
 public:
  Discovery(const api::Registry& registry, std::string serverAddress);

  // A response for a discovery, version or OpenAPI path, or nullopt if the
  // path is not one.
  std::optional<Response> handle(const HttpRequest& req) const;

 private:
  Response version() const;
  Response legacyApi(const HttpRequest& req) const;
  Response apiGroups(const HttpRequest& req) const;
  std::optional<Response> group(const std::string& name) const;
  std::optional<Response> resourceList(const std::string& group, const std::string& version) const;
  Response aggregated(bool core, const std::string& accept) const;
  std::optional<Response> openApi(const HttpRequest& req, const std::string& path) const;

  const api::Registry& registry_;
  std::string serverAddress_;
  OpenApi openApi_;  // built once, at construction
};

}  // namespace sluice::server
