#include "control/server/openapi.h"

#include <google/protobuf/descriptor.h>

#include <algorithm>
#include <cstdio>
#include <set>
#include <vector>

#include "control/api/proto/openapi_v2.pb.h"
#include "control/api/proto/options.pb.h"
#include "control/server/openapi_docs.h"
#include "dataplane/log.h"

namespace sluice::server {
namespace {

namespace pb = google::protobuf;
using api::Json;
using FD = pb::FieldDescriptor;

constexpr std::string_view kV2Ref = "#/definitions/";
constexpr std::string_view kV3Ref = "#/components/schemas/";
constexpr std::string_view kMetaPackage = "io.k8s.apimachinery.pkg.apis.meta.v1.";
constexpr std::string_view kIntOrString = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
constexpr std::string_view kQuantity = "io.k8s.apimachinery.pkg.api.resource.Quantity";
constexpr std::string_view kTime = "io.k8s.apimachinery.pkg.apis.meta.v1.Time";
constexpr std::string_view kMicroTime = "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime";

// `required` follows Kubernetes: a Go field without omitempty is required,
// and those are the (emit_zero) fields, with these exceptions (Go fields
// marked +optional despite lacking omitempty, and struct or slice fields
// that have no omitempty but no zero value to emit either).
const std::set<std::string, std::less<>> kNotRequired = {
    "Event.reportingComponent", "Event.reportingInstance"};
const std::set<std::string, std::less<>> kAlsoRequired = {
    "PodSpec.containers",      "DeploymentSpec.selector", "DeploymentSpec.template",
    "ReplicaSetSpec.selector", "Event.metadata",          "Event.involvedObject",
    "EndpointSlice.endpoints", "Endpoint.addresses",      "HTTPGetAction.port",
    "TCPSocketAction.port",    "HorizontalPodAutoscalerSpec.scaleTargetRef"};

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Kubernetes' Go package of a group-version's types: "" → core/v1,
// "apps" → apps/v1, "discovery.k8s.io" → discovery/v1.
std::string packageOf(const std::string& group, const std::string& version) {
  if (group.empty()) return "io.k8s.api.core." + version + ".";
  if (group == "metrics.k8s.io") return "io.k8s.metrics.pkg.apis.metrics." + version + ".";
  return "io.k8s.api." + group.substr(0, group.find('.')) + "." + version + ".";
}

// Times are strings in the object model; Kubernetes types them as
// metav1.Time (or MicroTime for events and leases), by field name.
std::string_view timeType(std::string_view field) {
  if (field == "eventTime" || field == "lastObservedTime" || field == "acquireTime" ||
      field == "renewTime") {
    return kMicroTime;
  }
  if (endsWith(field, "Time") || endsWith(field, "Timestamp") || field == "timestamp" ||
      field == "startedAt" || field == "finishedAt" || field == "timeAdded") {
    return kTime;
  }
  return {};
}

Json refTo(std::string_view name) { return {{"$ref", std::string(kV2Ref) + std::string(name)}}; }

void collectRefs(const Json& j, std::set<std::string>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "$ref" && it->is_string()) {
        std::string r = it->get<std::string>();
        if (r.rfind(kV2Ref, 0) == 0) out.insert(r.substr(kV2Ref.size()));
      } else {
        collectRefs(*it, out);
      }
    }
  } else if (j.is_array()) {
    for (const auto& e : j) collectRefs(e, out);
  }
}

// Walks the descriptors of the served kinds into v2 definitions.
class Generator {
 public:
  Generator(const api::Registry& registry, std::map<std::string, Json>& defs) : defs_(defs) {
    // A message is named in the package of the first kind its .proto file
    // holds (PodTemplateSpec is core/v1 although apps/v1 kinds reach it);
    // meta.proto is meta/v1.
    for (const auto& t : registry.all()) {
      filePackages_.emplace(t->prototype->GetDescriptor()->file(), packageOf(t->group, t->version));
    }
  }

  void addKind(const api::ResourceType& t) {
    const pb::Descriptor* d = t.prototype->GetDescriptor();
    std::string package = packageOf(t.group, t.version);
    std::string name = package + t.kind;
    auto it = defs_.find(name);
    if (it == defs_.end()) {
      names_.emplace(d, name);
      defs_[name] = Json::object();  // a cycle back to the kind ends here
      Json s = messageSchema(d, package);
      if (auto desc = openapi::description(t.kind); !desc.empty()) s["description"] = desc;
      it = defs_.insert_or_assign(name, std::move(s)).first;
    }
    Json gvk = {{"group", t.group}, {"kind", t.kind}, {"version", t.version}};
    Json& list = it->second["x-kubernetes-group-version-kind"];
    if (!list.is_array()) list = Json::array();
    if (std::find(list.begin(), list.end(), gvk) == list.end()) list.push_back(gvk);
  }

  // Adds what the definitions reference but the walk did not generate: the
  // hand-written ones, and messages only those reach (found by short name).
  // Anything else becomes a free-form object, so no reference dangles.
  void complete() {
    const auto& extras = openapi::extraDefinitions();
    for (bool changed = true; changed;) {
      changed = false;
      std::set<std::string> refs;
      for (const auto& [name, s] : defs_) collectRefs(s, refs);
      for (const auto& name : refs) {
        if (defs_.count(name) != 0) continue;
        changed = true;
        if (auto e = extras.find(name); e != extras.end()) {
          defs_[name] = e->second;
          continue;
        }
        size_t dot = name.rfind('.');
        const pb::Descriptor* d = pb::DescriptorPool::generated_pool()->FindMessageTypeByName(
            "sluice.api." + name.substr(dot + 1));
        if (d != nullptr) {
          names_.emplace(d, name);
          defs_[name] = Json::object();
          Json s = messageSchema(d, name.substr(0, dot + 1));
          defs_[name] = std::move(s);
        } else {
          log::warning("openapi", "no schema; serving it as a free-form object", {{"definition", name}});
          defs_[name] = {{"type", "object"}};
        }
      }
    }
  }

 private:
  std::string definitionOf(const pb::Descriptor* d, const std::string& package) {
    std::string_view full = d->full_name();
    if (full == "sluice.api.IntOrString") return std::string(kIntOrString);
    if (full == "sluice.api.Quantity") return std::string(kQuantity);
    if (auto it = names_.find(d); it != names_.end()) return it->second;
    std::string pkg = package;
    if (endsWith(d->file()->name(), "/meta.proto")) {
      pkg = kMetaPackage;
    } else if (auto f = filePackages_.find(d->file()); f != filePackages_.end()) {
      pkg = f->second;
    }
    std::string name = pkg + std::string(d->name());
    if (defs_.count(name) != 0 || openapi::extraDefinitions().count(name) != 0) {
      std::string unique(full);
      std::replace(unique.begin(), unique.end(), '.', '_');
      name = pkg + unique;
    }
    names_.emplace(d, name);
    defs_[name] = Json::object();
    Json s = messageSchema(d, pkg);
    defs_[name] = std::move(s);
    return name;
  }

  Json messageSchema(const pb::Descriptor* d, const std::string& package) {
    std::string message(d->name());
    Json props = Json::object();
    Json required = Json::array();
    for (int i = 0; i < d->field_count(); ++i) {
      const FD* f = d->field(i);
      std::string field(f->name());
      Json s = fieldSchema(d, f, package);
      if (auto desc = openapi::description(message, field); !desc.empty()) s["description"] = desc;
      props[field] = std::move(s);
      if (isRequired(message, f)) required.push_back(field);
    }
    Json schema = {{"type", "object"}, {"properties", std::move(props)}};
    if (!required.empty()) schema["required"] = std::move(required);
    if (auto desc = openapi::description(message); !desc.empty()) schema["description"] = desc;
    return schema;
  }

  static bool isRequired(const std::string& message, const FD* f) {
    std::string key = message + "." + std::string(f->name());
    if (kNotRequired.count(key) != 0) return false;
    if (kAlsoRequired.count(key) != 0) return true;
    return f->options().GetExtension(api::emit_zero);
  }

  Json fieldSchema(const pb::Descriptor* owner, const FD* f, const std::string& package) {
    if (f->is_map()) {
      return {{"type", "object"},
              {"additionalProperties", valueSchema(owner, f, f->message_type()->map_value(), package)}};
    }
    Json s = f->is_repeated() ? Json{{"type", "array"}, {"items", valueSchema(owner, f, f, package)}}
                              : valueSchema(owner, f, f, package);
    // The strategic merge patch metadata kubectl computes patches from: the
    // same options control/api/patch.cc merges by.
    const std::string& strategy = f->options().GetExtension(api::patch_strategy);
    const std::string& mergeKey = f->options().GetExtension(api::merge_key);
    if (!strategy.empty()) s["x-kubernetes-patch-strategy"] = strategy;
    if (!mergeKey.empty()) {
      s["x-kubernetes-patch-merge-key"] = mergeKey;
      s["x-kubernetes-list-type"] = "map";
      s["x-kubernetes-list-map-keys"] = Json::array({mergeKey});
    } else if (f->is_repeated() && strategy.find("merge") != std::string::npos) {
      s["x-kubernetes-list-type"] = "set";
    }
    return s;
  }

  // The schema of a field's value (of one element for lists and maps);
  // `named` is the field as declared, `f` the one whose type is described.
  Json valueSchema(const pb::Descriptor* owner, const FD* named, const FD* f, const std::string& package) {
    switch (f->cpp_type()) {
      case FD::CPPTYPE_STRING:
        if (f->type() == FD::TYPE_BYTES) return {{"type", "string"}, {"format", "byte"}};
        if (auto t = timeType(named->name()); !t.empty()) return refTo(t);
        return {{"type", "string"}};
      case FD::CPPTYPE_INT32:
      case FD::CPPTYPE_UINT32:
        return {{"type", "integer"}, {"format", "int32"}};
      case FD::CPPTYPE_INT64:
      case FD::CPPTYPE_UINT64:
        return {{"type", "integer"}, {"format", "int64"}};
      case FD::CPPTYPE_BOOL:
        return {{"type", "boolean"}};
      case FD::CPPTYPE_DOUBLE:
        return {{"type", "number"}, {"format", "double"}};
      case FD::CPPTYPE_FLOAT:
        return {{"type", "number"}, {"format", "float"}};
      case FD::CPPTYPE_ENUM:
        return {{"type", "string"}};
      case FD::CPPTYPE_MESSAGE:
        break;
    }
    std::string_view full = f->message_type()->full_name();
    if (full == "google.protobuf.Struct") {
      auto def = openapi::structFieldDefinition(owner->name(), named->name());
      if (!def.empty()) return refTo(def);
      return {{"type", "object"}};
    }
    if (full == "google.protobuf.Value") return Json::object();  // any JSON value
    return refTo(definitionOf(f->message_type(), package));
  }

  std::map<std::string, Json>& defs_;
  std::map<const pb::Descriptor*, std::string> names_;
  std::map<const pb::FileDescriptor*, std::string> filePackages_;
};

// v3 references components.schemas; a reference with siblings (a
// description, patch extensions) is wrapped in allOf, as Kubernetes does,
// since OpenAPI 3.0 ignores siblings of $ref.
Json toV3(const Json& s) {
  if (s.is_array()) {
    Json out = Json::array();
    for (const auto& e : s) out.push_back(toV3(e));
    return out;
  }
  if (!s.is_object()) return s;
  Json out = Json::object();
  for (auto it = s.begin(); it != s.end(); ++it) {
    const std::string& k = it.key();
    if (k == "$ref" && it->is_string()) {
      out[k] = std::string(kV3Ref) + it->get<std::string>().substr(kV2Ref.size());
    } else if (k == "properties") {
      Json props = Json::object();
      for (auto p = it->begin(); p != it->end(); ++p) props[p.key()] = toV3(p.value());
      out[k] = std::move(props);
    } else if (k == "items" || k == "additionalProperties" || k == "allOf") {
      out[k] = toV3(*it);
    } else {
      out[k] = *it;
    }
  }
  if (out.contains("$ref") && out.size() > 1) {
    Json r = {{"$ref", out["$ref"]}};
    out.erase("$ref");
    out["allOf"] = Json::array({std::move(r)});
  }
  return out;
}

// Protobuf wire encoding of gnostic's openapi.v2 Schema (field numbers of
// OpenAPIv2.proto), written directly: control/api/proto/openapi_v2.proto
// models only the paths part of the document.
class Wire {
 public:
  Wire& string(int field, std::string_view s) {
    varint(static_cast<uint64_t>(field) << 3 | 2);
    varint(s.size());
    out_.append(s);
    return *this;
  }
  Wire& message(int field, const Wire& w) { return string(field, w.out_); }
  const std::string& bytes() const { return out_; }

 private:
  void varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  std::string out_;
};

Wire encodeSchema(const Json& s) {
  enum : int {  // openapi.v2.Schema
    kRef = 1, kFormat = 2, kDescription = 4, kRequired = 19, kAdditionalProperties = 21,
    kType = 22, kItems = 23, kProperties = 25, kVendorExtension = 31,
  };
  Wire w;
  for (auto it = s.begin(); it != s.end(); ++it) {
    const std::string& k = it.key();
    const Json& v = it.value();
    if (k == "$ref") {
      w.string(kRef, v.get<std::string>());
    } else if (k == "format") {
      w.string(kFormat, v.get<std::string>());
    } else if (k == "description") {
      w.string(kDescription, v.get<std::string>());
    } else if (k == "required") {
      for (const auto& r : v) w.string(kRequired, r.get<std::string>());
    } else if (k == "additionalProperties") {
      w.message(kAdditionalProperties, Wire().message(1, encodeSchema(v)));
    } else if (k == "type") {
      w.message(kType, Wire().string(1, v.get<std::string>()));
    } else if (k == "items") {
      w.message(kItems, Wire().message(1, encodeSchema(v)));
    } else if (k == "properties") {
      Wire props;
      for (auto p = v.begin(); p != v.end(); ++p) {
        props.message(1, Wire().string(1, p.key()).message(2, encodeSchema(p.value())));
      }
      w.message(kProperties, props);
    } else if (k.rfind("x-", 0) == 0) {
      // Vendor extensions are YAML text; JSON is YAML's flow style.
      w.message(kVendorExtension, Wire().string(1, k).message(2, Wire().string(2, v.dump())));
    }
  }
  return w;
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

std::string resourcePath(const api::ResourceType& t) {
  return "/" + groupVersionPath({t.group, t.version}) + (t.namespaced ? "/namespaces/{namespace}/" : "/") +
         t.resource + "/{name}";
}

// v2: the definitions, and per kind one PATCH operation with its GVK and the
// query parameters (kubectl before 1.28 looks for fieldValidation here).
std::string buildV2(const api::Registry& registry, int minor, const std::map<std::string, Json>& defs) {
  namespace v2 = sluice::openapi::v2;
  v2::Document doc;
  doc.set_swagger("2.0");
  doc.mutable_info()->set_title("Kubernetes");
  doc.mutable_info()->set_version("v1." + std::to_string(minor) + ".0");
  for (const auto& t : registry.all()) {
    auto* item = doc.mutable_paths()->add_path();
    item->set_name(resourcePath(*t));
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
  // Document.definitions (field 9) is appended to the encoded message:
  // protobuf parsers accept fields in any order.
  Wire definitions;
  for (const auto& [name, schema] : defs) {
    definitions.message(1, Wire().string(1, name).message(2, encodeSchema(schema)));
  }
  return doc.SerializeAsString() + Wire().message(9, definitions).bytes();
}

// v3, one group-version: its PATCH operations and every schema its kinds
// reach. The operations have no requestBody on purpose: kubectl 1.31+ only
// computes apply's strategic merge patch from v3 schemas when the PATCH
// operation declares an application/strategic-merge-patch+json body, and its
// v3 lookup returns a nil schema below a free-form object's properties, where
// the v2 code reports an error and kubectl falls back to its built-in types.
// So every kubectl computes patches from the v2 definitions.
std::string buildV3(const api::Registry& registry, const api::GroupVersion& gv, int minor,
                    const std::map<std::string, Json>& defs) {
  Json params = Json::array({
      {{"name", "dryRun"}, {"in", "query"}, {"schema", {{"type", "string"}, {"uniqueItems", true}}}},
      {{"name", "fieldManager"}, {"in", "query"}, {"schema", {{"type", "string"}, {"uniqueItems", true}}}},
      {{"name", "fieldValidation"}, {"in", "query"},
       {"description", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: Ignore, Warn (default), Strict."},
       {"schema", {{"type", "string"}, {"uniqueItems", true}}}},
  });
  Json paths = Json::object();
  std::set<std::string> reached;
  std::vector<std::string> queue;
  for (const auto* t : registry.inGroupVersion(gv.group, gv.version)) {
    std::string def = packageOf(t->group, t->version) + t->kind;
    Json op = {{"operationId", "patch" + t->kind},
               {"x-kubernetes-action", "patch"},
               {"x-kubernetes-group-version-kind", {{"group", t->group}, {"version", t->version}, {"kind", t->kind}}},
               {"parameters", params},
               {"responses", {{"200", {{"description", "OK"}}}}}};
    if (defs.count(def) != 0) {
      op["responses"]["200"]["content"] = {
          {"application/json", {{"schema", {{"$ref", std::string(kV3Ref) + def}}}}}};
      if (reached.insert(def).second) queue.push_back(def);
    }
    paths[resourcePath(*t)] = {{"patch", op}};
  }
  while (!queue.empty()) {
    std::string name = queue.back();
    queue.pop_back();
    std::set<std::string> refs;
    collectRefs(defs.at(name), refs);
    for (const auto& r : refs) {
      if (defs.count(r) != 0 && reached.insert(r).second) queue.push_back(r);
    }
  }
  Json schemas = Json::object();
  for (const auto& name : reached) schemas[name] = toV3(defs.at(name));
  Json doc = {{"openapi", "3.0.0"},
              {"info", {{"title", "Kubernetes"}, {"version", "v1." + std::to_string(minor) + ".0"}}},
              {"paths", paths},
              {"components", {{"schemas", schemas}}}};
  return doc.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

std::string groupVersionPath(const api::GroupVersion& gv) {
  return gv.group.empty() ? "api/" + gv.version : "apis/" + gv.group + "/" + gv.version;
}

OpenApi::OpenApi(const api::Registry& registry, int minorVersion) {
  Generator g(registry, definitions_);
  for (const auto& t : registry.all()) g.addKind(*t);
  g.complete();
  v2_ = buildV2(registry, minorVersion, definitions_);
  Json index = Json::object();
  for (const auto& gv : registry.groupVersions()) {
    std::string path = groupVersionPath(gv);
    std::string doc = buildV3(registry, gv, minorVersion, definitions_);
    index[path] = {{"serverRelativeURL", "/openapi/v3/" + path + "?hash=" + hex(fnv1a(doc))}};
    v3_.insert_or_assign(path, std::move(doc));
  }
  v3Index_ = Json{{"paths", index}}.dump();
}

const std::string* OpenApi::v3Document(std::string_view gvPath) const {
  auto it = v3_.find(gvPath);
  return it == v3_.end() ? nullptr : &it->second;
}

}  // namespace sluice::server
