#include "control/api/registry.h"

#include "control/api/cluster_kinds.h"
#include "control/api/defaults.h"
#include "control/api/object_meta.h"
#include "control/api/proto/apps.pb.h"
#include "control/api/proto/core.pb.h"
#include "control/api/proto/discovery.pb.h"
#include "control/api/validation.h"

namespace sluice::api {
namespace {

namespace pb = google::protobuf;

const std::vector<std::string> kAllVerbs = {"create", "delete", "deletecollection", "get",
                                            "list",   "patch",  "update",           "watch"};

void copyStatus(pb::Message& to, const pb::Message& from) {
  const pb::FieldDescriptor* f = to.GetDescriptor()->FindFieldByName("status");
  if (f == nullptr) return;
  const pb::Reflection* r = to.GetReflection();
  if (from.GetReflection()->HasField(from, f)) {
    r->MutableMessage(&to, f)->CopyFrom(from.GetReflection()->GetMessage(from, f));
  } else {
    r->ClearField(&to, f);
  }
}

// Adapts typed hooks to ResourceStrategy; T is the kind's message.
template <typename T>
class Strategy : public ResourceStrategy {
 public:
  struct Hooks {
    void (*defaults)(T&) = nullptr;
    void (*validate)(const T&, FieldErrors&) = nullptr;
    void (*validateUpdate)(const T&, const T&, FieldErrors&) = nullptr;
    void (*create)(T&) = nullptr;
    void (*update)(T&, const T&) = nullptr;
    std::vector<std::string> fields;
    std::optional<std::string> (*field)(const T&, std::string_view) = nullptr;
    bool status = true;
    // Nodes are created by their agent with status already filled in.
    bool createKeepsStatus = false;
  };
  explicit Strategy(Hooks h) : h_(std::move(h)) {}

  void applyDefaults(pb::Message& obj) const override {
    if (h_.defaults) h_.defaults(static_cast<T&>(obj));
  }
  void prepareForCreate(pb::Message& obj) const override {
    if (!h_.createKeepsStatus) ResourceStrategy::prepareForCreate(obj);
    if (h_.create) h_.create(static_cast<T&>(obj));
  }
  void prepareForUpdate(pb::Message& obj, const pb::Message& old) const override {
    ResourceStrategy::prepareForUpdate(obj, old);
    if (h_.update) h_.update(static_cast<T&>(obj), static_cast<const T&>(old));
  }
  void validate(const pb::Message& obj, FieldErrors& errs) const override {
    h_.validate(static_cast<const T&>(obj), errs);
  }
  void validateUpdate(const pb::Message& obj, const pb::Message& old, FieldErrors& errs) const override {
    if (h_.validateUpdate) {
      h_.validateUpdate(static_cast<const T&>(obj), static_cast<const T&>(old), errs);
    } else {
      validateObjectMetaUpdate(meta(obj), meta(old), errs);
      h_.validate(static_cast<const T&>(obj), errs);
    }
  }
  std::vector<std::string> selectableFields() const override { return h_.fields; }
  std::optional<std::string> fieldValue(const pb::Message& obj, std::string_view f) const override {
    if (h_.field == nullptr) return std::nullopt;
    return h_.field(static_cast<const T&>(obj), f);
  }

 protected:
  bool hasStatus() const override { return h_.status; }

 private:
  Hooks h_;
};

std::string boolString(bool b) { return b ? "true" : "false"; }

std::optional<std::string> podField(const Pod& p, std::string_view f) {
  if (f == "spec.nodeName") return p.spec().nodename();
  if (f == "spec.restartPolicy") return p.spec().restartpolicy();
  if (f == "spec.schedulerName") return p.spec().schedulername();
  if (f == "spec.serviceAccountName") return p.spec().serviceaccountname();
  if (f == "spec.hostNetwork") return boolString(p.spec().hostnetwork());
  if (f == "status.phase") return p.status().phase();
  if (f == "status.podIP") return p.status().podip();
  if (f == "status.nominatedNodeName") return p.status().nominatednodename();
  return std::nullopt;
}

std::optional<std::string> eventField(const Event& e, std::string_view f) {
  const auto& io = e.involvedobject();
  if (f == "involvedObject.kind") return io.kind();
  if (f == "involvedObject.namespace") return io.namespace_();
  if (f == "involvedObject.name") return io.name();
  if (f == "involvedObject.uid") return io.uid();
  if (f == "involvedObject.apiVersion") return io.apiversion();
  if (f == "involvedObject.resourceVersion") return io.resourceversion();
  if (f == "involvedObject.fieldPath") return io.fieldpath();
  if (f == "reason") return e.reason();
  if (f == "reportingComponent") return e.reportingcomponent();
  if (f == "source") return e.source().component();
  if (f == "type") return e.type();
  return std::nullopt;
}

void createPod(Pod& p) {
  p.clear_status();
  p.mutable_status()->set_phase("Pending");
  p.mutable_status()->set_qosclass(podQosClass(p.spec()));
}

void createNamespace(Namespace& ns) {
  ns.mutable_status()->set_phase("Active");
  if (ns.spec().finalizers().empty()) ns.mutable_spec()->add_finalizers("kubernetes");
}

template <typename T>
std::unique_ptr<ResourceType> make(std::string group, std::string version, std::string kind,
                                   std::string resource, std::string singular,
                                   std::vector<std::string> shortNames, bool namespaced,
                                   typename Strategy<T>::Hooks hooks) {
  auto t = std::make_unique<ResourceType>();
  t->group = std::move(group);
  t->version = std::move(version);
  t->kind = std::move(kind);
  t->resource = std::move(resource);
  t->singular = std::move(singular);
  t->shortNames = std::move(shortNames);
  t->namespaced = namespaced;
  t->verbs = kAllVerbs;
  t->statusSubresource = hooks.status;
  t->prototype = &T::default_instance();
  t->strategy = std::make_unique<Strategy<T>>(std::move(hooks));
  return t;
}

}  // namespace

void ResourceStrategy::prepareForCreate(pb::Message& obj) const {
  if (!hasStatus()) return;
  const pb::FieldDescriptor* f = obj.GetDescriptor()->FindFieldByName("status");
  if (f != nullptr) obj.GetReflection()->ClearField(&obj, f);
}

void ResourceStrategy::prepareForUpdate(pb::Message& obj, const pb::Message& old) const {
  if (hasStatus()) copyStatus(obj, old);
}

void ResourceStrategy::prepareForStatusUpdate(pb::Message& obj, const pb::Message& old) const {
  std::unique_ptr<pb::Message> merged(old.New());
  merged->CopyFrom(old);
  copyStatus(*merged, obj);
  obj.CopyFrom(*merged);
}

std::optional<std::string> ResourceType::fieldValue(const pb::Message& obj, std::string_view field) const {
  if (field == "metadata.name") return meta(obj).name();
  if (field == "metadata.namespace") return meta(obj).namespace_();
  return strategy->fieldValue(obj, field);
}

Json ResourceType::encode(const pb::Message& obj) const {
  if (toVersion == nullptr) return encodeJson(obj);
  std::unique_ptr<pb::Message> copy(obj.New());
  copy->CopyFrom(obj);
  toVersion(*copy);
  return encodeJson(*copy);
}

std::vector<std::string> ResourceType::selectableFields() const {
  std::vector<std::string> f = {"metadata.name", "metadata.namespace"};
  auto extra = strategy->selectableFields();
  f.insert(f.end(), extra.begin(), extra.end());
  return f;
}

Registry::Registry() {
  {
    Strategy<Namespace>::Hooks h;
    h.defaults = defaultNamespace;
    h.validate = validateNamespace;
    h.create = createNamespace;
    h.fields = {"status.phase"};
    h.field = [](const Namespace& ns, std::string_view f) -> std::optional<std::string> {
      if (f == "status.phase") return ns.status().phase();
      return std::nullopt;
    };
    auto t = make<Namespace>("", "v1", "Namespace", "namespaces", "namespace", {"ns"}, false, std::move(h));
    t->verbs = {"create", "delete", "get", "list", "patch", "update", "watch"};
    types_.push_back(std::move(t));
  }
  {
    Strategy<Node>::Hooks h;
    h.validate = validateNode;
    h.fields = {"spec.unschedulable"};
    h.field = [](const Node& n, std::string_view f) -> std::optional<std::string> {
      if (f == "spec.unschedulable") return boolString(n.spec().unschedulable());
      return std::nullopt;
    };
    h.createKeepsStatus = true;
    auto t = make<Node>("", "v1", "Node", "nodes", "node", {"no"}, false, std::move(h));
    types_.push_back(std::move(t));
  }
  {
    Strategy<Pod>::Hooks h;
    h.defaults = defaultPod;
    h.validate = validatePod;
    h.validateUpdate = validatePodUpdate;
    h.create = createPod;
    h.fields = {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"};
    h.field = podField;
    auto t = make<Pod>("", "v1", "Pod", "pods", "pod", {"po"}, true, std::move(h));
    t->categories = {"all"};
    types_.push_back(std::move(t));
  }
  {
    Strategy<Service>::Hooks h;
    h.defaults = defaultService;
    h.validate = validateService;
    h.validateUpdate = validateServiceUpdate;
    h.update = prepareServiceUpdate;
    h.fields = {"spec.clusterIP", "spec.type"};
    h.field = [](const Service& s, std::string_view f) -> std::optional<std::string> {
      if (f == "spec.clusterIP") return s.spec().clusterip();
      if (f == "spec.type") return s.spec().type();
      return std::nullopt;
    };
    auto t = make<Service>("", "v1", "Service", "services", "service", {"svc"}, true, std::move(h));
    t->categories = {"all"};
    types_.push_back(std::move(t));
  }
  {
    Strategy<Endpoints>::Hooks h;
    h.defaults = defaultEndpoints;
    h.validate = validateEndpoints;
    h.status = false;
    types_.push_back(make<Endpoints>("", "v1", "Endpoints", "endpoints", "endpoints", {"ep"}, true, std::move(h)));
  }
  {
    Strategy<Event>::Hooks h;
    h.validate = validateEvent;
    h.status = false;
    h.fields = {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"};
    h.field = eventField;
    types_.push_back(make<Event>("", "v1", "Event", "events", "event", {"ev"}, true, std::move(h)));
  }
  {
    Strategy<Deployment>::Hooks h;
    h.defaults = defaultDeployment;
    h.validate = validateDeployment;
    h.validateUpdate = validateDeploymentUpdate;
    auto t = make<Deployment>("apps", "v1", "Deployment", "deployments", "deployment", {"deploy"}, true, std::move(h));
    t->categories = {"all"};
    t->scaleSubresource = true;
    types_.push_back(std::move(t));
  }
  {
    Strategy<ReplicaSet>::Hooks h;
    h.defaults = defaultReplicaSet;
    h.validate = validateReplicaSet;
    h.validateUpdate = validateReplicaSetUpdate;
    h.fields = {"status.replicas"};
    h.field = [](const ReplicaSet& rs, std::string_view f) -> std::optional<std::string> {
      if (f == "status.replicas") return std::to_string(rs.status().replicas());
      return std::nullopt;
    };
    auto t = make<ReplicaSet>("apps", "v1", "ReplicaSet", "replicasets", "replicaset", {"rs"}, true, std::move(h));
    t->categories = {"all"};
    t->scaleSubresource = true;
    types_.push_back(std::move(t));
  }
  {
    Strategy<EndpointSlice>::Hooks h;
    h.defaults = defaultEndpointSlice;
    h.validate = validateEndpointSlice;
    h.status = false;
    types_.push_back(make<EndpointSlice>("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices",
                                         "endpointslice", {}, true, std::move(h)));
  }
  addClusterKinds();
  groupVersions_ = {{"", "v1"},
                    {"apps", "v1"},
                    {"autoscaling", "v2"},
                    {"autoscaling", "v1"},
                    {"coordination.k8s.io", "v1"},
                    {"discovery.k8s.io", "v1"},
                    {"metrics.k8s.io", "v1beta1"}};
}

// Lease, HorizontalPodAutoscaler (v2, and v1 converted), PodMetrics and
// NodeMetrics (control/api/cluster_kinds.h).
void Registry::addClusterKinds() {
  {
    Strategy<Lease>::Hooks h;
    h.validate = validateLease;
    h.status = false;
    types_.push_back(make<Lease>("coordination.k8s.io", "v1", "Lease", "leases", "lease", {}, true, std::move(h)));
  }
  for (const char* version : {"v2", "v1"}) {
    bool v1 = std::string_view(version) == "v1";
    Strategy<HorizontalPodAutoscaler>::Hooks h;
    h.defaults = v1 ? defaultHorizontalPodAutoscalerV1 : defaultHorizontalPodAutoscaler;
    h.validate = validateHorizontalPodAutoscaler;
    if (v1) h.update = prepareHorizontalPodAutoscalerV1Update;
    auto t = make<HorizontalPodAutoscaler>("autoscaling", version, "HorizontalPodAutoscaler", "horizontalpodautoscalers",
                                           "horizontalpodautoscaler", {"hpa"}, true, std::move(h));
    t->categories = {"all"};
    if (v1) t->toVersion = toHorizontalPodAutoscalerV1;
    types_.push_back(std::move(t));
  }
  {
    Strategy<PodMetrics>::Hooks h;
    h.validate = validatePodMetrics;
    h.status = false;
    auto t = make<PodMetrics>("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", "", {}, true, std::move(h));
    t->storageResource = "pods.metrics.k8s.io";
    types_.push_back(std::move(t));
  }
  {
    Strategy<NodeMetrics>::Hooks h;
    h.validate = validateNodeMetrics;
    h.status = false;
    auto t = make<NodeMetrics>("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes", "", {}, false, std::move(h));
    t->storageResource = "nodes.metrics.k8s.io";
    types_.push_back(std::move(t));
  }
}

const Registry& Registry::builtin() {
  static const Registry kRegistry;
  return kRegistry;
}

const ResourceType* Registry::find(std::string_view group, std::string_view version,
                                   std::string_view resource) const {
  for (const auto& t : types_) {
    if (t->group == group && t->version == version && t->resource == resource) return t.get();
  }
  return nullptr;
}

const ResourceType* Registry::findKind(std::string_view apiVersion, std::string_view kind) const {
  for (const auto& t : types_) {
    if (t->apiVersion() == apiVersion && t->kind == kind) return t.get();
  }
  return nullptr;
}

std::vector<const ResourceType*> Registry::inGroupVersion(std::string_view group,
                                                          std::string_view version) const {
  std::vector<const ResourceType*> out;
  for (const auto& t : types_) {
    if (t->group == group && t->version == version) out.push_back(t.get());
  }
  return out;
}

}  // namespace sluice::api
