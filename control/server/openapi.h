// The OpenAPI documents the API server publishes, generated once at start from
// the registry and the object model's protobuf descriptors (field names are
// the Kubernetes JSON names, so a message IS its Kubernetes schema):
//   /openapi/v2                    gnostic protobuf: `definitions` for every
//                                  served kind and the types it reaches, plus
//                                  one PATCH operation per kind;
//   /openapi/v3                    the index of group-version documents;
//   /openapi/v3/api/v1, apis/G/V   components.schemas of that group-version
//                                  and its PATCH operations.
// Clients act on them: kubectl explain prints the schemas; kubectl before
// 1.24 validates manifests against the v2 definitions (unknown fields,
// `required`, types) since it does not know the `fieldValidation` parameter,
// while newer ones find that parameter on the PATCH operations and leave
// validation to the server; and kubectl apply computes strategic merge
// patches from the `x-kubernetes-patch-merge-key` / `-patch-strategy`
// extensions, which come from the same proto options the server's patch code
// (control/api/patch.cc) merges by.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "control/api/json_codec.h"
#include "control/api/registry.h"

namespace sluice::server {

class OpenApi {
 public:
  // `minorVersion` is the Kubernetes minor the documents claim (info.version).
  OpenApi(const api::Registry& registry, int minorVersion);

  // The v2 document, serialized as gnostic's openapi.v2.Document.
  const std::string& v2Protobuf() const { return v2_; }
  // The v3 index (`paths` → serverRelativeURL with a content hash).
  const std::string& v3Index() const { return v3Index_; }
  // The v3 document of "api/v1" or "apis/<group>/<version>"; nullptr if that
  // group-version is not served.
  const std::string* v3Document(std::string_view gvPath) const;

  // Schemas in v2 form ("#/definitions/<name>" references), by definition
  // name, e.g. "io.k8s.api.core.v1.Pod". Exposed for tests and tools.
  const std::map<std::string, api::Json>& definitions() const { return definitions_; }

 private:
  std::map<std::string, api::Json> definitions_;
  std::string v2_;
  std::string v3Index_;
  std::map<std::string, std::string, std::less<>> v3_;
};

// "api/v1" for the core group, "apis/<group>/<version>" otherwise.
std::string groupVersionPath(const api::GroupVersion& gv);

}  // namespace sluice::server
