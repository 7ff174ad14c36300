#include "control/server/kubernetes_endpoints.h"

#include "control/api/json_codec.h"

namespace sluice::server {
namespace {

using api::Json;

constexpr const char* kNamespace = "default";
constexpr const char* kName = "kubernetes";

// Writes `desired` unless the stored object already has its labels and
// `fields` (everything else of the stored object is kept).
Result<void> ensure(ObjectStore& objects, RestHandler& rest, const api::ResourceType& type, const Json& desired,
                    std::initializer_list<const char*> fields) {
  const std::string what = desired.value("kind", "") + " " + kNamespace + "/" + kName;
  auto current = objects.get(type, kNamespace, kName);
  if (!current) return current.error().wrap(what);
  if (!current->has_value()) {
    Response r = rest.createObject(type, kNamespace, desired);
    // 409: created meanwhile by another writer; the next pass compares it.
    if (r.status != 201 && r.status != 409) return Error::internal("creating " + what + ": " + r.body);
    return okResult();
  }
  auto& obj = **current;
  Json cur = api::encodeJson(*obj.msg);
  Json next = cur;
  for (const auto& [k, v] : desired["metadata"]["labels"].items()) next["metadata"]["labels"][k] = v;
  for (const char* f : fields) next[f] = desired[f];
  if (next == cur) return okResult();
  if (auto r = api::decodeJson(next, *obj.msg, nullptr); !r) return r.error().wrap(what);
  if (auto r = objects.update(type, *obj.msg, obj.modRevision); !r) return r.error().wrap("updating " + what);
  return okResult();
}

}  // namespace

Result<void> reconcileKubernetesEndpoints(ObjectStore& objects, RestHandler& rest, const std::string& address,
                                          uint16_t port) {
  const api::Registry& reg = api::Registry::builtin();
  const api::ResourceType* epType = reg.findKind("v1", "Endpoints");
  const api::ResourceType* sliceType = reg.findKind("discovery.k8s.io/v1", "EndpointSlice");
  if (epType == nullptr || sliceType == nullptr) return Error::internal("Endpoints/EndpointSlice not registered");
  Json endpoints = {
      {"apiVersion", "v1"},
      {"kind", "Endpoints"},
      {"metadata",
       {{"name", kName}, {"namespace", kNamespace}, {"labels", {{"endpointslice.kubernetes.io/skip-mirror", "true"}}}}},
      {"subsets",
       Json::array({{{"addresses", Json::array({{{"ip", address}}})},
                     {"ports", Json::array({{{"name", "https"}, {"port", port}, {"protocol", "TCP"}}})}}})}};
  if (auto r = ensure(objects, rest, *epType, endpoints, {"subsets"}); !r) return r;
  Json slice = {
      {"apiVersion", "discovery.k8s.io/v1"},
      {"kind", "EndpointSlice"},
      {"metadata", {{"name", kName}, {"namespace", kNamespace}, {"labels", {{"kubernetes.io/service-name", kName}}}}},
      {"addressType", address.find(':') != std::string::npos ? "IPv6" : "IPv4"},
      {"endpoints", Json::array({{{"addresses", Json::array({address})}, {"conditions", {{"ready", true}}}}})},
      {"ports", Json::array({{{"name", "https"}, {"port", port}, {"protocol", "TCP"}}})}};
  return ensure(objects, rest, *sliceType, slice, {"addressType", "endpoints", "ports"});
}

}  // namespace sluice::server
