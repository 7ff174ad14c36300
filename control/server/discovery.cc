#include "control/server/discovery.h"

#include <set>

#include "control/api/proto/openapi_v2.pb.h"

namespace sluice::server {
namespace {

using api::Json;

const std::vector<std::string> kSubresourceVerbs = {"get", "patch", "update"};

std::vector<std::string> groupsInOrder(const api::Registry& r) {
  std::vector<std::string> groups;
  for (const auto& gv : r.groupVersions()) {
    if (gv.group.empty()) continue;
    if (std::find(groups.begin(), groups.end(), gv.group) == groups.end()) groups.push_back(gv.group);
  }
  return groups;
}

std::vector<api::GroupVersion> versionsOf(const api::Registry& r, const std::string& group) {
  std::vector<api::GroupVersion> out;
  for (const auto& gv : r.groupVersions()) {
    if (gv.group == group) out.push_back(gv);
  }
  return out;
}

Json groupJson(const api::Registry& r, const std::string& group) {
  Json versions = Json::array();
  for (const auto& gv : versionsOf(r, group)) {
    versions.push_back({{"groupVersion", gv.apiVersion()}, {"version", gv.version}});
  }
  return {{"name", group}, {"versions", versions}, {"preferredVersion", versions.empty() ? Json::object() : versions[0]}};
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 14695981039346656037ULL;
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string gvPath(const api::GroupVersion& gv) {
  return gv.group.empty() ? "api/" + gv.version : "apis/" + gv.group + "/" + gv.version;
}

}  // namespace

Discovery::Discovery(const api::Registry& registry, std::string serverAddress)
    : registry_(registry), serverAddress_(std::move(serverAddress)) {}

std::optional<Response> Discovery::handle(const HttpRequest& req) const {
  std::string path = req.path;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path == "/version") return version();
  if (path == "/api") return legacyApi(req);
  if (path == "/apis") return apiGroups(req);
  if (path == "/openapi/v3") return openApiRoot();
  if (path.rfind("/openapi/v3/", 0) == 0) return openApiGroupVersion(path.substr(12));
  if (path == "/openapi/v2") {
    if (req.header("accept").find("protobuf") == std::string::npos) {
      return statusResponse(406, "NotAcceptable", "only the protobuf form of /openapi/v2 is served");
    }
    return openApiV2();
  }
  if (path == "/api/v1") return resourceList("", "v1");
  if (path.rfind("/apis/", 0) == 0) {
    std::string rest = path.substr(6);
    size_t slash = rest.find('/');
    if (slash == std::string::npos) return group(rest);
    std::string g = rest.substr(0, slash);
    std::string v = rest.substr(slash + 1);
    if (v.find('/') == std::string::npos) return resourceList(g, v);
  }
  return std::nullopt;
}

Response Discovery::version() const {
  std::string minor = std::to_string(kKubernetesMinor);
  return Response::json(200, {{"major", "1"},
                              {"minor", minor},
                              {"gitVersion", "v1." + minor + ".0-sluice"},
                              {"gitCommit", "sluice"},
                              {"gitTreeState", "clean"},
                              {"buildDate", "2025-01-01T00:00:00Z"},
                              {"goVersion", "go1.22.0"},
                              {"compiler", "gc"},
                              {"platform", "linux/amd64"}});
}

Response Discovery::legacyApi(const HttpRequest& req) const {
  std::string accept = req.header("accept");
  if (accept.find("as=APIGroupDiscoveryList") != std::string::npos) return aggregated(true, accept);
  return Response::json(200, {{"kind", "APIVersions"},
                              {"versions", {"v1"}},
                              {"serverAddressByClientCIDRs",
                               Json::array({{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", serverAddress_}}})}});
}

Response Discovery::apiGroups(const HttpRequest& req) const {
  std::string accept = req.header("accept");
  if (accept.find("as=APIGroupDiscoveryList") != std::string::npos) return aggregated(false, accept);
  Json groups = Json::array();
  for (const auto& g : groupsInOrder(registry_)) groups.push_back(groupJson(registry_, g));
  return Response::json(200, {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}});
}

std::optional<Response> Discovery::group(const std::string& name) const {
  if (versionsOf(registry_, name).empty()) return std::nullopt;
  Json g = groupJson(registry_, name);
  g["kind"] = "APIGroup";
  g["apiVersion"] = "v1";
  return Response::json(200, g);
}

std::optional<Response> Discovery::resourceList(const std::string& group, const std::string& version) const {
  bool served = false;
  for (const auto& gv : registry_.groupVersions()) served |= gv.group == group && gv.version == version;
  if (!served) return std::nullopt;
  Json resources = Json::array();
  for (const auto* t : registry_.inGroupVersion(group, version)) {
    Json r = {{"name", t->resource},
              {"singularName", t->singular},
              {"namespaced", t->namespaced},
              {"kind", t->kind},
              {"verbs", t->verbs}};
    if (!t->shortNames.empty()) r["shortNames"] = t->shortNames;
    if (!t->categories.empty()) r["categories"] = t->categories;
    resources.push_back(r);
    if (t->statusSubresource) {
      resources.push_back({{"name", t->resource + "/status"}, {"singularName", ""}, {"namespaced", t->namespaced},
                           {"kind", t->kind}, {"verbs", kSubresourceVerbs}});
    }
    if (t->scaleSubresource) {
      resources.push_back({{"name", t->resource + "/scale"}, {"singularName", ""}, {"namespaced", t->namespaced},
                           {"group", "autoscaling"}, {"version", "v1"}, {"kind", "Scale"},
                           {"verbs", kSubresourceVerbs}});
    }
    if (t->kind == "Pod") {
      resources.push_back({{"name", "pods/binding"}, {"singularName", ""}, {"namespaced", true},
                           {"kind", "Binding"}, {"verbs", {"create"}}});
    }
  }
  std::string gv = group.empty() ? version : group + "/" + version;
  return Response::json(200, {{"kind", "APIResourceList"}, {"apiVersion", "v1"}, {"groupVersion", gv},
                              {"resources", resources}});
}

Response Discovery::aggregated(bool core, const std::string& accept) const {
  // kubectl 1.27 asks for v2beta1, newer ones for v2 first; the documents
  // are the same apart from the version.
  std::string dv = accept.find("v=v2;") != std::string::npos || accept.find("v=v2,") != std::string::npos ||
                           (accept.size() >= 4 && accept.compare(accept.size() - 4, 4, "v=v2") == 0)
                       ? "v2"
                       : "v2beta1";
  Json items = Json::array();
  std::vector<std::string> groups = core ? std::vector<std::string>{""} : groupsInOrder(registry_);
  for (const auto& g : groups) {
    Json versions = Json::array();
    for (const auto& gv : versionsOf(registry_, g)) {
      Json resources = Json::array();
      for (const auto* t : registry_.inGroupVersion(gv.group, gv.version)) {
        Json r = {{"resource", t->resource},
                  {"responseKind", {{"group", t->group}, {"version", t->version}, {"kind", t->kind}}},
                  {"scope", t->namespaced ? "Namespaced" : "Cluster"},
                  {"singularResource", t->singular},
                  {"verbs", t->verbs}};
        if (!t->shortNames.empty()) r["shortNames"] = t->shortNames;
        if (!t->categories.empty()) r["categories"] = t->categories;
        Json subs = Json::array();
        if (t->statusSubresource) {
          subs.push_back({{"subresource", "status"},
                          {"responseKind", {{"group", t->group}, {"version", t->version}, {"kind", t->kind}}},
                          {"verbs", kSubresourceVerbs}});
        }
        if (t->scaleSubresource) {
          subs.push_back({{"subresource", "scale"},
                          {"responseKind", {{"group", "autoscaling"}, {"version", "v1"}, {"kind", "Scale"}}},
                          {"verbs", kSubresourceVerbs}});
        }
        if (t->kind == "Pod") {
          subs.push_back({{"subresource", "binding"},
                          {"responseKind", {{"group", ""}, {"version", "v1"}, {"kind", "Binding"}}},
                          {"verbs", {"create"}}});
        }
        if (!subs.empty()) r["subresources"] = subs;
        resources.push_back(r);
      }
      versions.push_back({{"version", gv.version}, {"resources", resources}, {"freshness", "Current"}});
    }
    items.push_back({{"metadata", {{"name", g}, {"creationTimestamp", nullptr}}}, {"versions", versions}});
  }
  Json doc = {{"kind", "APIGroupDiscoveryList"},
              {"apiVersion", "apidiscovery.k8s.io/" + dv},
              {"metadata", Json::object()},
              {"items", items}};
  Response r = Response::json(200, doc);
  r.contentType = "application/json;g=apidiscovery.k8s.io;v=" + dv + ";as=APIGroupDiscoveryList";
  return r;
}

Response Discovery::openApiRoot() const {
  Json paths = Json::object();
  for (const auto& gv : registry_.groupVersions()) {
    auto doc = openApiGroupVersion(gvPath(gv));
    std::string hash = doc ? hex(fnv1a(doc->body)) : "0";
    paths[gvPath(gv)] = {{"serverRelativeURL", "/openapi/v3/" + gvPath(gv) + "?hash=" + hash}};
  }
  return Response::json(200, {{"paths", paths}});
}

Response Discovery::openApiV2() const {
  // As the v3 documents: one PATCH per kind with its GVK and fieldValidation.
  namespace v2 = sluice::openapi::v2;
  v2::Document doc;
  doc.set_swagger("2.0");
  doc.mutable_info()->set_title("Kubernetes");
  doc.mutable_info()->set_version("v1." + std::to_string(kKubernetesMinor) + ".0");
  for (const auto& t : registry_.all()) {
    api::GroupVersion gv{t->group, t->version};
    auto* item = doc.mutable_paths()->add_path();
    item->set_name("/" + gvPath(gv) + (t->namespaced ? "/namespaces/{namespace}/" : "/") + t->resource + "/{name}");
    auto* op = item->mutable_value()->mutable_patch();
    op->set_operation_id("patch" + t->kind);
    for (const char* c : {"application/json-patch+json", "application/merge-patch+json",
                          "application/strategic-merge-patch+json"}) {
      op->add_consumes(c);
    }
    for (const char* name : {"dryRun", "fieldManager", "fieldValidation"}) {
      auto* q = op->add_parameters()->mutable_parameter()->mutable_non_body_parameter()->mutable_query_parameter_sub_schema();
      q->set_in("query");
      q->set_name(name);
      q->set_type("string");
      q->set_unique_items(true);
    }
    auto* ok = op->mutable_responses()->add_response_code();
    ok->set_name("200");
    ok->mutable_value()->mutable_response()->set_description("OK");
    auto* ext = op->add_vendor_extension();
    ext->set_name("x-kubernetes-group-version-kind");
    ext->mutable_value()->set_yaml("group: \"" + t->group + "\"\nkind: " + t->kind + "\nversion: " + t->version + "\n");
  }
  Response r;
  r.contentType = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
  r.body = doc.SerializeAsString();
  return r;
}

std::optional<Response> Discovery::openApiGroupVersion(const std::string& path) const {
  const api::GroupVersion* match = nullptr;
  for (const auto& gv : registry_.groupVersions()) {
    if (gvPath(gv) == path) match = &gv;
  }
  if (match == nullptr) return statusResponse(404, "NotFound", "the server could not find the requested resource");
  // Only what clients act on: one PATCH operation per kind, tagged with its
  // group/version/kind and listing fieldValidation, from which kubectl
  // decides to let the server validate fields. There is deliberately no
  // requestBody: kubectl then computes strategic merge patches from its
  // built-in types, whose merge keys are the ones this server applies.
  Json params = Json::array({
      {{"name", "dryRun"}, {"in", "query"}, {"schema", {{"type", "string"}, {"uniqueItems", true}}}},
      {{"name", "fieldManager"}, {"in", "query"}, {"schema", {{"type", "string"}, {"uniqueItems", true}}}},
      {{"name", "fieldValidation"}, {"in", "query"},
       {"description", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict."},
       {"schema", {{"type", "string"}, {"uniqueItems", true}}}},
  });
  Json paths = Json::object();
  for (const auto* t : registry_.inGroupVersion(match->group, match->version)) {
    std::string base = "/" + path + (t->namespaced ? "/namespaces/{namespace}/" : "/") + t->resource + "/{name}";
    Json op = {{"operationId", "patch" + t->kind},
               {"x-kubernetes-action", "patch"},
               {"x-kubernetes-group-version-kind", {{"group", t->group}, {"version", t->version}, {"kind", t->kind}}},
               {"parameters", params},
               {"responses", {{"200", {{"description", "OK"}}}}}};
    paths[base] = {{"patch", op}};
  }
  Json doc = {{"openapi", "3.0.0"},
              {"info", {{"title", "Kubernetes"}, {"version", "v1." + std::to_string(kKubernetesMinor) + ".0"}}},
              {"paths", paths},
              {"components", {{"schemas", Json::object()}}}};
  return Response::json(200, doc);
}

}  // namespace sluice::server
