#include "control/server/discovery.h"

#include <set>

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

}  // namespace

Discovery::Discovery(const api::Registry& registry, std::string serverAddress)
    : registry_(registry), serverAddress_(std::move(serverAddress)), openApi_(registry, kKubernetesMinor) {}

std::optional<Response> Discovery::handle(const HttpRequest& req) const {
  std::string path = req.path;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path == "/version") return version();
  if (path == "/api") return legacyApi(req);
  if (path == "/apis") return apiGroups(req);
  if (path.rfind("/openapi/", 0) == 0) return openApi(req, path);
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

std::optional<Response> Discovery::openApi(const HttpRequest& req, const std::string& path) const {
  Response r;
  if (path == "/openapi/v2") {
    if (req.header("accept").find("protobuf") == std::string::npos) {
      return statusResponse(406, "NotAcceptable", "only the protobuf form of /openapi/v2 is served");
    }
    r.contentType = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
    r.body = openApi_.v2Protobuf();
    return r;
  }
  if (path == "/openapi/v3") {
    r.body = openApi_.v3Index();
    return r;
  }
  if (path.rfind("/openapi/v3/", 0) != 0) return std::nullopt;
  const std::string* doc = openApi_.v3Document(std::string_view(path).substr(12));
  if (doc == nullptr) return statusResponse(404, "NotFound", "the server could not find the requested resource");
  r.body = *doc;
  return r;
}

}  // namespace sluice::server
