#include "control/api/tables.h"
#include "control/util/rfc3339.h"

#include <algorithm>
#include <map>

#include "control/api/cluster_kinds.h"
#include "control/api/object_meta.h"
#include "control/api/proto/apps.pb.h"
#include "control/api/proto/core.pb.h"
#include "control/api/proto/discovery.pb.h"
#include "control/api/selector.h"

namespace sluice::api {
namespace {

constexpr std::string_view kNone = "<none>";
// kubectl shows at most this many endpoints per row (formatEndpoints).
constexpr int kMaxEndpointsShown = 3;
// Longer load balancer address lists are cut unless -o wide (loadBalancerStatusStringer).
constexpr size_t kLoadBalancerWidth = 16;

const TableColumn kNameColumn{"Name", "string", "name",
                              "Name must be unique within a namespace. Cannot be updated.", 0};
const TableColumn kAgeColumn{"Age", "string", "",
                             "CreationTimestamp is a timestamp representing the server time when this object was created.", 0};

std::string join(const std::vector<std::string>& v, std::string_view sep = ",") {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += sep;
    s += v[i];
  }
  return s;
}

std::string formatLabels(const google::protobuf::Map<std::string, std::string>& labels) {
  if (labels.empty()) return std::string(kNone);
  std::map<std::string, std::string> sorted(labels.begin(), labels.end());
  std::vector<std::string> parts;
  for (const auto& [k, v] : sorted) parts.push_back(k + "=" + v);
  return join(parts);
}

std::string formatLabelSelector(const LabelSelector& sel) {
  auto parsed = Selector::fromProto(sel);
  if (!parsed || parsed->empty()) return std::string(kNone);
  return parsed->toString();
}

template <typename Spec>
void containersAndImages(const Spec& podSpec, std::string& names, std::string& images) {
  std::vector<std::string> n;
  std::vector<std::string> i;
  for (const auto& c : podSpec.containers()) {
    n.push_back(c.name());
    i.push_back(c.image());
  }
  names = join(n);
  images = join(i);
}

// ------------------------------------------------------------------ pods

std::string podRestarts(int restarts, std::optional<Clock::time_point> last, Clock::time_point now) {
  std::string s = std::to_string(restarts);
  if (restarts > 0 && last) {
    s += " (" + humanDuration(std::chrono::duration_cast<std::chrono::seconds>(now - *last)) + " ago)";
  }
  return s;
}

std::vector<Json> podRow(const google::protobuf::Message& m, Clock::time_point now) {
  const auto& pod = static_cast<const Pod&>(m);
  const auto& st = pod.status();
  int restarts = 0;
  int ready = 0;
  int total = pod.spec().containers_size();
  std::optional<Clock::time_point> lastRestart;
  auto noteRestart = [&](const ContainerStatus& c) {
    if (c.laststate().has_terminated()) {
      auto t = util::parseRfc3339(c.laststate().terminated().finishedat());
      if (t && (!lastRestart || *t > *lastRestart)) lastRestart = t;
    }
  };
  std::string reason = st.reason().empty() ? st.phase() : st.reason();
  if (reason.empty()) reason = "Pending";

  bool initializing = false;
  for (int i = 0; i < st.initcontainerstatuses_size(); ++i) {
    const auto& c = st.initcontainerstatuses(i);
    restarts += c.restartcount();
    noteRestart(c);
    const auto& s = c.state();
    if (s.has_terminated() && s.terminated().exitcode() == 0) continue;
    bool sidecar = i < pod.spec().initcontainers_size() && pod.spec().initcontainers(i).restartpolicy() == "Always";
    if (sidecar && c.started()) continue;
    if (s.has_terminated()) {
      if (s.terminated().reason().empty()) {
        reason = s.terminated().signal() != 0 ? "Init:Signal:" + std::to_string(s.terminated().signal())
                                              : "Init:ExitCode:" + std::to_string(s.terminated().exitcode());
      } else {
        reason = "Init:" + s.terminated().reason();
      }
    } else if (s.has_waiting() && !s.waiting().reason().empty() && s.waiting().reason() != "PodInitializing") {
      reason = "Init:" + s.waiting().reason();
    } else {
      reason = "Init:" + std::to_string(i) + "/" + std::to_string(pod.spec().initcontainers_size());
    }
    initializing = true;
    break;
  }
  bool initialized = std::any_of(st.conditions().begin(), st.conditions().end(), [](const PodCondition& c) {
    return c.type() == "Initialized" && c.status() == "True";
  });
  if (!initializing || initialized) {
    restarts = 0;
    bool hasRunning = false;
    for (int i = st.containerstatuses_size() - 1; i >= 0; --i) {
      const auto& c = st.containerstatuses(i);
      restarts += c.restartcount();
      noteRestart(c);
      const auto& s = c.state();
      if (s.has_waiting() && !s.waiting().reason().empty()) {
        reason = s.waiting().reason();
      } else if (s.has_terminated() && !s.terminated().reason().empty()) {
        reason = s.terminated().reason();
      } else if (s.has_terminated()) {
        reason = s.terminated().signal() != 0 ? "Signal:" + std::to_string(s.terminated().signal())
                                              : "ExitCode:" + std::to_string(s.terminated().exitcode());
      } else if (c.ready() && s.has_running()) {
        hasRunning = true;
        ++ready;
      }
    }
    if (reason == "Completed" && hasRunning) {
      bool podReady = std::any_of(st.conditions().begin(), st.conditions().end(), [](const PodCondition& c) {
        return c.type() == "Ready" && c.status() == "True";
      });
      reason = podReady ? "Running" : "NotReady";
    }
  }
  if (!pod.metadata().deletiontimestamp().empty()) {
    reason = st.reason() == "NodeLost" ? "Unknown" : "Terminating";
  }

  std::string gates = std::string(kNone);
  if (pod.spec().readinessgates_size() > 0) {
    int trueGates = 0;
    for (const auto& g : pod.spec().readinessgates()) {
      for (const auto& c : st.conditions()) {
        if (c.type() == g.conditiontype() && c.status() == "True") ++trueGates;
      }
    }
    gates = std::to_string(trueGates) + "/" + std::to_string(pod.spec().readinessgates_size());
  }
  return {pod.metadata().name(),
          std::to_string(ready) + "/" + std::to_string(total),
          reason,
          podRestarts(restarts, lastRestart, now),
          age(pod.metadata().creationtimestamp(), now),
          st.podip().empty() ? std::string(kNone) : st.podip(),
          pod.spec().nodename().empty() ? std::string(kNone) : pod.spec().nodename(),
          st.nominatednodename().empty() ? std::string(kNone) : st.nominatednodename(),
          gates};
}

// -------------------------------------------------------------- services

std::string loadBalancerIps(const LoadBalancerStatus& lb, bool wide) {
  std::vector<std::string> v;
  for (const auto& i : lb.ingress()) {
    if (!i.ip().empty()) v.push_back(i.ip());
    else if (!i.hostname().empty()) v.push_back(i.hostname());
  }
  std::string s = join(v);
  if (!wide && s.size() > kLoadBalancerWidth) s = s.substr(0, kLoadBalancerWidth - 3) + "...";
  return s;
}

std::string serviceExternalIp(const Service& svc) {
  const auto& spec = svc.spec();
  std::vector<std::string> external(spec.externalips().begin(), spec.externalips().end());
  const std::string& type = spec.type();
  if (type == "ClusterIP" || type == "NodePort") {
    return external.empty() ? std::string(kNone) : join(external);
  }
  if (type == "LoadBalancer") {
    std::string lb = loadBalancerIps(svc.status().loadbalancer(), false);
    if (!external.empty()) {
      std::vector<std::string> all;
      if (!lb.empty()) all.push_back(lb);
      all.insert(all.end(), external.begin(), external.end());
      return join(all);
    }
    return lb.empty() ? "<pending>" : lb;
  }
  if (type == "ExternalName") return spec.externalname();
  return "<unknown>";
}

std::vector<Json> serviceRow(const google::protobuf::Message& m, Clock::time_point now) {
  const auto& svc = static_cast<const Service&>(m);
  std::vector<std::string> ports;
  for (const auto& p : svc.spec().ports()) {
    std::string s = std::to_string(p.port());
    if (p.nodeport() != 0) s += ":" + std::to_string(p.nodeport());
    ports.push_back(s + "/" + p.protocol());
  }
  return {svc.metadata().name(),
          svc.spec().type(),
          svc.spec().clusterip().empty() ? std::string(kNone) : svc.spec().clusterip(),
          serviceExternalIp(svc),
          ports.empty() ? std::string(kNone) : join(ports),
          age(svc.metadata().creationtimestamp(), now),
          formatLabels(svc.spec().selector())};
}

// ---------------------------------------------------------- workloads

std::vector<Json> deploymentRow(const google::protobuf::Message& m, Clock::time_point now) {
  const auto& d = static_cast<const Deployment&>(m);
  std::string containers;
  std::string images;
  containersAndImages(d.spec().template_().spec(), containers, images);
  return {d.metadata().name(),
          std::to_string(d.status().readyreplicas()) + "/" + std::to_string(d.spec().replicas()),
          d.status().updatedreplicas(),
          d.status().availablereplicas(),
          age(d.metadata().creationtimestamp(), now),
          containers,
          images,
          formatLabelSelector(d.spec().selector())};
}

std::vector<Json> replicaSetRow(const google::protobuf::Message& m, Clock::time_point now) {
  const auto& rs = static_cast<const ReplicaSet&>(m);
  std::string containers;
  std::string images;
  containersAndImages(rs.spec().template_().spec(), containers, images);
  return {rs.metadata().name(),
          rs.spec().replicas(),
          rs.status().replicas(),
          rs.status().readyreplicas(),
          age(rs.metadata().creationtimestamp(), now),
          containers,
          images,
          formatLabelSelector(rs.spec().selector())};
}

// ------------------------------------------------------------ endpoints

std::vector<Json> endpointsRow(const google::protobuf::Message& m, Clock::time_point now) {
  const auto& ep = static_cast<const Endpoints&>(m);
  std::vector<std::string> shown;
  int count = 0;
  for (const auto& s : ep.subsets()) {
    for (const auto& a : s.addresses()) {
      if (s.ports().empty()) {
        if (count++ < kMaxEndpointsShown) shown.push_back(a.ip());
        continue;
      }
      for (const auto& p : s.ports()) {
        if (count++ < kMaxEndpointsShown) {
          bool v6 = a.ip().find(':') != std::string::npos;
          shown.push_back((v6 ? "[" + a.ip() + "]" : a.ip()) + ":" + std::to_string(p.port()));
        }
      }
    }
  }
  std::string cell = shown.empty() ? std::string(kNone) : join(shown);
  if (count > kMaxEndpointsShown) cell += " + " + std::to_string(count - kMaxEndpointsShown) + " more...";
  return {ep.metadata().name(), cell, age(ep.metadata().creationtimestamp(), now)};
}

std::vector<Json> endpointSliceRow(const google::protobuf::Message& m, Clock::time_point now) {
  const auto& s = static_cast<const EndpointSlice&>(m);
  std::vector<std::string> ports;
  for (const auto& p : s.ports()) ports.push_back(p.has_port() ? std::to_string(p.port()) : "<unset>");
  std::vector<std::string> addrs;
  int count = 0;
  for (const auto& e : s.endpoints()) {
    for (const auto& a : e.addresses()) {
      if (count++ < kMaxEndpointsShown) addrs.push_back(a);
    }
  }
  std::string cell = addrs.empty() ? "<unset>" : join(addrs);
  if (count > kMaxEndpointsShown) cell += " + " + std::to_string(count - kMaxEndpointsShown) + " more...";
  return {s.metadata().name(), s.addresstype(), ports.empty() ? "<unset>" : join(ports), cell,
          age(s.metadata().creationtimestamp(), now)};
}

// ---------------------------------------------------- namespaces, nodes

std::vector<Json> namespaceRow(const google::protobuf::Message& m, Clock::time_point now) {
  const auto& ns = static_cast<const Namespace&>(m);
  return {ns.metadata().name(), ns.status().phase(), age(ns.metadata().creationtimestamp(), now)};
}

std::vector<Json> nodeRow(const google::protobuf::Message& m, Clock::time_point now) {
  const auto& n = static_cast<const Node&>(m);
  std::string status = "Unknown";
  for (const auto& c : n.status().conditions()) {
    if (c.type() == "Ready") status = c.status() == "True" ? "Ready" : c.status() == "False" ? "NotReady" : "Unknown";
  }
  if (n.spec().unschedulable()) status += ",SchedulingDisabled";
  std::vector<std::string> roles;
  constexpr std::string_view kRolePrefix = "node-role.kubernetes.io/";
  for (const auto& [k, v] : n.metadata().labels()) {
    if (k.rfind(kRolePrefix, 0) == 0 && k.size() > kRolePrefix.size()) roles.push_back(k.substr(kRolePrefix.size()));
    if (k == "kubernetes.io/role" && !v.empty()) roles.push_back(v);
  }
  std::sort(roles.begin(), roles.end());
  std::string internal = std::string(kNone);
  std::string external = std::string(kNone);
  for (const auto& a : n.status().addresses()) {
    if (a.type() == "InternalIP" && internal == kNone) internal = a.address();
    if (a.type() == "ExternalIP" && external == kNone) external = a.address();
  }
  const auto& info = n.status().nodeinfo();
  return {n.metadata().name(),
          status,
          roles.empty() ? std::string(kNone) : join(roles),
          age(n.metadata().creationtimestamp(), now),
          info.kubeletversion(),
          internal,
          external,
          info.osimage().empty() ? "<unknown>" : info.osimage(),
          info.kernelversion().empty() ? "<unknown>" : info.kernelversion(),
          info.containerruntimeversion().empty() ? "<unknown>" : info.containerruntimeversion()};
}

// ---------------------------------------------------------------- events

std::vector<Json> eventRow(const google::protobuf::Message& m, Clock::time_point now) {
  const auto& e = static_cast<const Event&>(m);
  std::string kind = e.involvedobject().kind();
  std::transform(kind.begin(), kind.end(), kind.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string last = !e.lasttimestamp().empty() ? e.lasttimestamp() : !e.eventtime().empty() ? e.eventtime() : e.metadata().creationtimestamp();
  std::string first = !e.firsttimestamp().empty() ? e.firsttimestamp() : !e.eventtime().empty() ? e.eventtime() : e.metadata().creationtimestamp();
  std::string source = e.source().component();
  if (source.empty()) source = e.reportingcomponent();
  if (!e.source().host().empty()) source += ", " + e.source().host();
  int32_t count = e.count() > 0 ? e.count() : e.has_series() ? e.series().count() : 1;
  return {age(last, now),
          e.type(),
          e.reason(),
          kind + "/" + e.involvedobject().name(),
          e.involvedobject().fieldpath(),
          source,
          e.message(),
          age(first, now),
          count,
          e.metadata().name()};
}

std::vector<Json> defaultRow(const google::protobuf::Message& m, Clock::time_point now) {
  const ObjectMeta& md = meta(m);
  return {md.name(), age(md.creationtimestamp(), now)};
}

TableColumn col(std::string name, std::string type, std::string description, int priority = 0) {
  return {std::move(name), std::move(type), "", std::move(description), priority};
}

const std::map<std::string, TablePrinter, std::less<>>& printers() {
  static const std::map<std::string, TablePrinter, std::less<>> kPrinters = {
      {"Pod",
       {{kNameColumn,
         col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
         col("Status", "string", "The aggregate status of the containers in this pod."),
         col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
         kAgeColumn,
         col("IP", "string", "IP address allocated to the pod.", 1),
         col("Node", "string", "NodeName is the name of the node the pod is scheduled on.", 1),
         col("Nominated Node", "string", "nominatedNodeName is set when this pod preempts other pods on the node.", 1),
         col("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness.", 1)},
        podRow}},
      {"Service",
       {{kNameColumn,
         col("Type", "string", "type determines how the Service is exposed."),
         col("Cluster-IP", "string", "clusterIP is the IP address of the service."),
         col("External-IP", "string", "externalIPs and load balancer ingress addresses."),
         col("Port(s)", "string", "The list of ports that are exposed by this service."),
         kAgeColumn,
         col("Selector", "string", "Route service traffic to pods with label keys and values matching this selector.", 1)},
        serviceRow}},
      {"Deployment",
       {{kNameColumn,
         col("Ready", "string", "Number of the pod with ready state"),
         col("Up-to-date", "integer", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
         col("Available", "integer", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
         kAgeColumn,
         col("Containers", "string", "Names of each container in the template.", 1),
         col("Images", "string", "Images referenced by each container in the template.", 1),
         col("Selector", "string", "Label selector for pods.", 1)},
        deploymentRow}},
      {"ReplicaSet",
       {{kNameColumn,
         col("Desired", "integer", "Replicas is the number of desired replicas."),
         col("Current", "integer", "Replicas is the most recently observed number of replicas."),
         col("Ready", "integer", "readyReplicas is the number of pods targeted by this ReplicaSet with a Ready Condition."),
         kAgeColumn,
         col("Containers", "string", "Names of each container in the template.", 1),
         col("Images", "string", "Images referenced by each container in the template.", 1),
         col("Selector", "string", "Label selector for pods.", 1)},
        replicaSetRow}},
      {"Endpoints",
       {{kNameColumn, col("Endpoints", "string", "Endpoints of the service."), kAgeColumn}, endpointsRow}},
      {"EndpointSlice",
       {{kNameColumn,
         col("AddressType", "string", "Type of address carried by this EndpointSlice."),
         col("Ports", "string", "Ports of the EndpointSlice."),
         col("Endpoints", "string", "Endpoints of the EndpointSlice."),
         kAgeColumn},
        endpointSliceRow}},
      {"Namespace",
       {{kNameColumn, col("Status", "string", "The status of the namespace"), kAgeColumn}, namespaceRow}},
      {"Node",
       {{kNameColumn,
         col("Status", "string", "The status of the node"),
         col("Roles", "string", "The roles of the node"),
         kAgeColumn,
         col("Version", "string", "Kubelet Version reported by the node."),
         col("Internal-IP", "string", "List of internal IPs of the node.", 1),
         col("External-IP", "string", "List of external IPs of the node.", 1),
         col("OS-Image", "string", "OS Image reported by the node from /etc/os-release.", 1),
         col("Kernel-Version", "string", "Kernel Version reported by the node.", 1),
         col("Container-Runtime", "string", "Container Runtime Version reported by the node.", 1)},
        nodeRow}},
      {"HorizontalPodAutoscaler",
       {{kNameColumn,
         col("Reference", "string", "reference to the target"),
         col("Targets", "string", "the current and target metric values"),
         col("MinPods", "string", "the lower limit for the number of pods"),
         col("MaxPods", "integer", "the upper limit for the number of pods"),
         col("Replicas", "integer", "current number of replicas of pods managed by this autoscaler"),
         kAgeColumn},
        horizontalPodAutoscalerRow}},
      {"Lease", {{kNameColumn, col("Holder", "string", "holderIdentity of the lease"), kAgeColumn}, leaseRow}},
      {"Event",
       {{col("Last Seen", "string", "The last time the event was observed."),
         col("Type", "string", "Type of this event (Normal, Warning)."),
         col("Reason", "string", "This should be a short, machine understandable string that gives the reason for this event being generated."),
         col("Object", "string", "The object that this event is about."),
         col("Subobject", "string", "The subobject that this event is about.", 1),
         col("Source", "string", "The component reporting this event.", 1),
         col("Message", "string", "A human-readable description of the status of this operation."),
         col("First Seen", "string", "The time at which the event was first recorded.", 1),
         col("Count", "integer", "The number of times this event has occurred.", 1),
         TableColumn{"Name", "string", "name", "Name of the event.", 1}},
        eventRow}},
  };
  return kPrinters;
}

}  // namespace

const TablePrinter& tablePrinterFor(std::string_view kind) {
  static const TablePrinter kDefault{{kNameColumn, kAgeColumn}, defaultRow};
  auto it = printers().find(kind);
  return it == printers().end() ? kDefault : it->second;
}

Json columnDefinitionsJson(const TablePrinter& printer) {
  Json cols = Json::array();
  for (const auto& c : printer.columns) {
    cols.push_back({{"name", c.name},
                    {"type", c.type},
                    {"format", c.format},
                    {"description", c.description},
                    {"priority", c.priority}});
  }
  return cols;
}

}  // namespace sluice::api
