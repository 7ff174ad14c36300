#include "control/server/openapi_docs.h"

#include <unordered_map>

namespace sluice::server::openapi {
namespace {

using api::Json;

// Keyed "Message" or "Message.field"; "*.field" applies to any message.
// Written for sluice's users in Kubernetes' terms; a field missing here is
// still listed by kubectl explain, with "<no description>".
const std::unordered_map<std::string_view, std::string_view> kDescriptions = {
    // Fields of every object.
    {"*.apiVersion",
     "APIVersion defines the versioned schema of this representation of an object. Servers convert "
     "recognized schemas to the latest internal value and may reject unrecognized values."},
    {"*.kind",
     "Kind is a string value representing the REST resource this object represents. In CamelCase; "
     "cannot be updated."},
    {"*.metadata", "Standard object's metadata."},
    {"*.spec", "Specification of the desired behavior of the object."},
    {"*.status",
     "Most recently observed status of the object. Populated by the system; read-only."},

    // Kinds.
    {"Namespace", "Namespace provides a scope for names. Use of multiple namespaces is optional."},
    {"Node",
     "Node is a worker in the cluster. sluice registers one per running `sluice agent`, which "
     "runs its pods and its service proxy."},
    {"Pod",
     "Pod is a collection of containers that run together on a host. sluice runs a pod as processes "
     "in fresh Linux namespaces, wired to the network by sluice-cni."},
    {"Service",
     "Service is a named abstraction of a software service (for example, mysql) consisting of a "
     "local port (for example 3306) that the proxy listens on, and the selector that determines "
     "which pods will answer requests sent through the proxy."},
    {"Endpoints",
     "Endpoints is a collection of endpoints that implement the actual service, kept up to date by "
     "the endpoints controller from the pods a Service selects."},
    {"Event", "Event is a report of an event somewhere in the cluster."},
    {"Deployment", "Deployment enables declarative updates for Pods and ReplicaSets."},
    {"ReplicaSet", "ReplicaSet ensures that a specified number of pod replicas are running at any given time."},
    {"HorizontalPodAutoscaler",
     "HorizontalPodAutoscaler is the configuration for a horizontal pod autoscaler, which "
     "automatically manages the replica count of any resource implementing the scale subresource "
     "based on the metrics specified."},
    {"Lease", "Lease defines a lease concept: a holder identity, a duration and renewals."},
    {"NodeMetrics", "NodeMetrics sets resource usage metrics of a node."},
    {"PodMetrics", "PodMetrics sets resource usage metrics of a pod."},
    {"EndpointSlice",
     "EndpointSlice represents a subset of the endpoints that implement a service. For a given "
     "service there may be multiple EndpointSlice objects which must be joined to produce the full "
     "set of endpoints."},

    // Metadata.
    {"ObjectMeta",
     "ObjectMeta is metadata that all persisted resources must have, which includes all objects "
     "users must create."},
    {"ObjectMeta.name",
     "Name must be unique within a namespace. It is required when creating resources, although "
     "some resources may allow a client to request the generation of an appropriate name "
     "automatically. Cannot be updated."},
    {"ObjectMeta.generateName",
     "GenerateName is an optional prefix, used by the server to generate a unique name only if "
     "the Name field has not been provided."},
    {"ObjectMeta.namespace",
     "Namespace defines the space within which each name must be unique. An empty namespace is "
     "equivalent to the \"default\" namespace. Cannot be updated."},
    {"ObjectMeta.uid", "UID is the unique in time and space value for this object. Populated by the system."},
    {"ObjectMeta.resourceVersion",
     "An opaque value that represents the internal version of this object, used for optimistic "
     "concurrency and change detection. Populated by the system."},
    {"ObjectMeta.generation",
     "A sequence number representing a specific generation of the desired state. Populated by the "
     "system."},
    {"ObjectMeta.creationTimestamp",
     "CreationTimestamp is a timestamp representing the server time when this object was created. "
     "Populated by the system."},
    {"ObjectMeta.deletionTimestamp",
     "DeletionTimestamp is the time after which this resource will be deleted. Set by the server "
     "when a graceful deletion is requested."},
    {"ObjectMeta.labels",
     "Map of string keys and values that can be used to organize and categorize (scope and select) "
     "objects. May match selectors of replication controllers and services."},
    {"ObjectMeta.annotations",
     "Annotations is an unstructured key value map stored with a resource that may be set by "
     "external tools to store and retrieve arbitrary metadata. They are not queryable."},
    {"ObjectMeta.ownerReferences",
     "List of objects depended by this object. If ALL objects in the list have been deleted, this "
     "object will be garbage collected."},
    {"ObjectMeta.finalizers",
     "Must be empty before the object is deleted from the registry. Each entry is an identifier "
     "for the responsible component that will remove the entry from the list."},
    {"ObjectMeta.managedFields",
     "Accepted so manifests saved from a cluster parse; sluice does not implement server-side "
     "apply and drops them on write."},
    {"OwnerReference.apiVersion", "API version of the referent."},
    {"OwnerReference.kind", "Kind of the referent."},
    {"OwnerReference.name", "Name of the referent."},
    {"OwnerReference.uid", "UID of the referent."},
    {"ObjectReference.apiVersion", "API version of the referent."},
    {"ObjectReference.kind", "Kind of the referent."},
    {"LabelSelector",
     "A label selector is a label query over a set of resources. The result of matchLabels and "
     "matchExpressions are ANDed. An empty label selector matches all objects."},
    {"LabelSelector.matchLabels",
     "matchLabels is a map of {key,value} pairs. A single {key,value} in the matchLabels map is "
     "equivalent to an element of matchExpressions whose operator is \"In\"."},
    {"LabelSelector.matchExpressions",
     "matchExpressions is a list of label selector requirements. The requirements are ANDed."},
    {"LabelSelectorRequirement.operator",
     "operator represents a key's relationship to a set of values. Valid operators are In, NotIn, "
     "Exists and DoesNotExist."},

    // Pods.
    {"PodSpec", "PodSpec is a description of a pod."},
    {"PodSpec.containers",
     "List of containers belonging to the pod. Containers cannot currently be added or removed. "
     "There must be at least one container in a Pod. Cannot be updated."},
    {"PodSpec.initContainers",
     "List of initialization containers belonging to the pod. Init containers are executed in "
     "order prior to containers being started."},
    {"PodSpec.volumes", "List of volumes that can be mounted by containers belonging to the pod."},
    {"PodSpec.restartPolicy",
     "Restart policy for all containers within the pod. One of Always, OnFailure, Never. Default "
     "to Always."},
    {"PodSpec.terminationGracePeriodSeconds",
     "Optional duration in seconds the pod needs to terminate gracefully. Defaults to 30 seconds."},
    {"PodSpec.nodeSelector",
     "NodeSelector is a selector which must be true for the pod to fit on a node."},
    {"PodSpec.nodeName",
     "NodeName is the name of the node this pod is scheduled to. Set by the scheduler."},
    {"PodSpec.hostNetwork",
     "Host networking requested for this pod. Use the host's network namespace. Default to false."},
    {"PodSpec.affinity", "If specified, the pod's scheduling constraints."},
    {"PodSpec.tolerations", "If specified, the pod's tolerations."},
    {"PodSpec.hostname",
     "Specifies the hostname of the Pod. If not specified, the pod's hostname will be set to a "
     "system-defined value."},
    {"Container", "A single application container that you want to run within a pod."},
    {"Container.name",
     "Name of the container specified as a DNS_LABEL. Each container in a pod must have a unique "
     "name (DNS_LABEL). Cannot be updated."},
    {"Container.image",
     "Container image name. sluice runs the command from the host filesystem, or from a local "
     "rootfs directory when the image names one."},
    {"Container.command",
     "Entrypoint array. Not executed within a shell. The image's ENTRYPOINT is used if this is not "
     "provided."},
    {"Container.args", "Arguments to the entrypoint."},
    {"Container.workingDir", "Container's working directory."},
    {"Container.ports",
     "List of ports to expose from the container. Not specifying a port here DOES NOT prevent that "
     "port from being exposed. Cannot be updated."},
    {"Container.env", "List of environment variables to set in the container. Cannot be updated."},
    {"Container.envFrom", "List of sources to populate environment variables in the container."},
    {"Container.resources", "Compute Resources required by this container."},
    {"Container.volumeMounts", "Pod volumes to mount into the container's filesystem. Cannot be updated."},
    {"Container.livenessProbe",
     "Periodic probe of container liveness. Container will be restarted if the probe fails."},
    {"Container.readinessProbe",
     "Periodic probe of container service readiness. Container will be removed from service "
     "endpoints if the probe fails."},
    {"Container.startupProbe",
     "StartupProbe indicates that the Pod has successfully initialized. If specified, no other "
     "probes are executed until this completes successfully."},
    {"Container.imagePullPolicy", "Image pull policy. One of Always, Never, IfNotPresent."},
    {"Container.restartPolicy",
     "RestartPolicy of an init container: \"Always\" makes it a sidecar that keeps running beside "
     "the regular containers."},
    {"ContainerPort", "ContainerPort represents a network port in a single container."},
    {"ContainerPort.containerPort",
     "Number of port to expose on the pod's IP address. This must be a valid port number, "
     "0 < x < 65536."},
    {"ContainerPort.name",
     "If specified, this must be an IANA_SVC_NAME and unique within the pod. Each named port in a "
     "pod must have a unique name. Name for the port that can be referred to by services."},
    {"ContainerPort.protocol", "Protocol for port. Must be UDP, TCP, or SCTP. Defaults to \"TCP\"."},
    {"ContainerPort.hostPort",
     "Number of port to expose on the host. If specified, this must be a valid port number, "
     "0 < x < 65536."},
    {"ContainerPort.hostIP", "What host IP to bind the external port to."},
    {"EnvVar", "EnvVar represents an environment variable present in a Container."},
    {"EnvVar.name", "Name of the environment variable. Must be a C_IDENTIFIER."},
    {"EnvVar.value", "Variable references $(VAR_NAME) are expanded using the previously defined "
                     "environment variables in the container."},
    {"EnvVar.valueFrom", "Source for the environment variable's value. Cannot be used if value is not empty."},
    {"VolumeMount", "VolumeMount describes a mounting of a Volume within a container."},
    {"VolumeMount.name", "This must match the Name of a Volume."},
    {"VolumeMount.mountPath",
     "Path within the container at which the volume should be mounted. Must not contain ':'."},
    {"Volume",
     "Volume represents a named volume in a pod that may be accessed by any container in the pod."},
    {"Volume.name", "name of the volume. Must be a DNS_LABEL and unique within the pod."},
    {"Volume.emptyDir", "emptyDir represents a temporary directory that shares a pod's lifetime."},
    {"ResourceRequirements", "ResourceRequirements describes the compute resource requirements."},
    {"ResourceRequirements.limits", "Limits describes the maximum amount of compute resources allowed."},
    {"ResourceRequirements.requests",
     "Requests describes the minimum amount of compute resources required."},
    {"Probe",
     "Probe describes a health check to be performed against a container to determine whether it "
     "is alive or ready to receive traffic."},
    {"Probe.httpGet", "HTTPGet specifies the http request to perform."},
    {"Probe.tcpSocket", "TCPSocket specifies a connection to a TCP port."},
    {"Probe.exec", "Exec specifies the action to take."},
    {"Probe.periodSeconds", "How often (in seconds) to perform the probe. Default to 10 seconds."},
    {"Probe.initialDelaySeconds",
     "Number of seconds after the container has started before probes are initiated."},
    {"HTTPGetAction.port",
     "Name or number of the port to access on the container. Number must be in the range 1 to "
     "65535. Name must be an IANA_SVC_NAME."},
    {"HTTPGetAction.path", "Path to access on the HTTP server."},
    {"PodStatus", "PodStatus represents information about the status of a pod."},
    {"PodStatus.phase",
     "The phase of a Pod is a simple, high-level summary of where the Pod is in its lifecycle: "
     "Pending, Running, Succeeded, Failed or Unknown."},
    {"PodStatus.podIP", "podIP address allocated to the pod. Routable at least within the cluster."},
    {"PodStatus.hostIP", "hostIP holds the IP address of the host to which the pod is assigned."},
    {"PodTemplateSpec", "PodTemplateSpec describes the data a pod should have when created from a template."},

    // Services.
    {"ServiceSpec", "ServiceSpec describes the attributes that a user creates on a service."},
    {"ServiceSpec.ports", "The list of ports that are exposed by this service."},
    {"ServiceSpec.selector",
     "Route service traffic to pods with label keys and values matching this selector."},
    {"ServiceSpec.clusterIP",
     "clusterIP is the IP address of the service, usually assigned randomly from the service "
     "CIDR. \"None\" makes a headless service."},
    {"ServiceSpec.clusterIPs", "ClusterIPs is a list of IP addresses assigned to this service."},
    {"ServiceSpec.type",
     "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are "
     "ExternalName, ClusterIP, NodePort, and LoadBalancer."},
    {"ServiceSpec.externalIPs",
     "externalIPs is a list of IP addresses for which nodes in the cluster will also accept "
     "traffic for this service."},
    {"ServiceSpec.sessionAffinity",
     "Supports \"ClientIP\" and \"None\". Used to maintain session affinity. Defaults to None."},
    {"ServiceSpec.sessionAffinityConfig", "sessionAffinityConfig contains the configurations of session affinity."},
    {"ServiceSpec.externalTrafficPolicy",
     "externalTrafficPolicy describes how nodes distribute service traffic they receive on one of "
     "the Service's \"externally-facing\" addresses (NodePorts, ExternalIPs, and LoadBalancer IPs). "
     "\"Local\" keeps it on the node; \"Cluster\" spreads it and SNATs."},
    {"ServiceSpec.internalTrafficPolicy",
     "InternalTrafficPolicy describes how nodes distribute service traffic they receive on the "
     "ClusterIP. \"Local\" only uses node-local endpoints."},
    {"ServiceSpec.externalName",
     "externalName is the external reference that discovery mechanisms will return as an alias for "
     "this service. Requires type to be \"ExternalName\"."},
    {"ServiceSpec.loadBalancerIP", "Only applies to Service Type: LoadBalancer. Deprecated."},
    {"ServiceSpec.ipFamilies", "IPFamilies is a list of IP families (e.g. IPv4, IPv6) assigned to this service."},
    {"ServiceSpec.ipFamilyPolicy",
     "IPFamilyPolicy represents the dual-stack-ness requested or required by this Service."},
    {"ServicePort", "ServicePort contains information on service's port."},
    {"ServicePort.port", "The port that will be exposed by this service."},
    {"ServicePort.targetPort",
     "Number or name of the port to access on the pods targeted by the service. Defaults to the "
     "value of the 'port' field."},
    {"ServicePort.nodePort",
     "The port on each node on which this service is exposed when type is NodePort or "
     "LoadBalancer. Usually assigned by the system from 30000-32767."},
    {"ServicePort.protocol", "The IP protocol for this port. Supports \"TCP\", \"UDP\", and \"SCTP\". Default is TCP."},
    {"ServicePort.name",
     "The name of this port within the service. All ports within a ServiceSpec must have unique "
     "names."},
    {"ServiceStatus", "ServiceStatus represents the current status of a service."},
    {"ServiceStatus.loadBalancer",
     "LoadBalancer contains the current status of the load-balancer; sluice fills in ingress IPs "
     "from its configured pool."},

    // Workloads.
    {"DeploymentSpec", "DeploymentSpec is the specification of the desired behavior of the Deployment."},
    {"DeploymentSpec.replicas", "Number of desired pods. Defaults to 1."},
    {"DeploymentSpec.selector",
     "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the "
     "ones affected by this deployment. It must match the pod template's labels."},
    {"DeploymentSpec.template", "Template describes the pods that will be created."},
    {"DeploymentSpec.strategy", "The deployment strategy to use to replace existing pods with new ones."},
    {"DeploymentSpec.minReadySeconds",
     "Minimum number of seconds for which a newly created pod should be ready without any of its "
     "container crashing, for it to be considered available. Defaults to 0."},
    {"DeploymentSpec.revisionHistoryLimit",
     "The number of old ReplicaSets to retain to allow rollback. Defaults to 10."},
    {"DeploymentSpec.paused", "Indicates that the deployment is paused."},
    {"DeploymentSpec.progressDeadlineSeconds",
     "The maximum time in seconds for a deployment to make progress before it is considered to be "
     "failed. Defaults to 600s."},
    {"DeploymentStrategy", "DeploymentStrategy describes how to replace existing pods with new ones."},
    {"DeploymentStrategy.type",
     "Type of deployment. Can be \"Recreate\" or \"RollingUpdate\". Default is RollingUpdate."},
    {"DeploymentStrategy.rollingUpdate",
     "Rolling update config params. Present only if DeploymentStrategyType = RollingUpdate."},
    {"RollingUpdateDeployment", "Spec to control the desired behavior of rolling update."},
    {"RollingUpdateDeployment.maxUnavailable",
     "The maximum number of pods that can be unavailable during the update. Value can be an "
     "absolute number (ex: 5) or a percentage of desired pods (ex: 10%). Defaults to 25%."},
    {"RollingUpdateDeployment.maxSurge",
     "The maximum number of pods that can be scheduled above the desired number of pods. Value can "
     "be an absolute number (ex: 5) or a percentage of desired pods (ex: 10%). Defaults to 25%."},
    {"DeploymentStatus", "DeploymentStatus is the most recently observed status of the Deployment."},
    {"ReplicaSetSpec", "ReplicaSetSpec is the specification of a ReplicaSet."},
    {"ReplicaSetSpec.replicas", "Replicas is the number of desired replicas. Defaults to 1."},
    {"ReplicaSetSpec.selector",
     "Selector is a label query over pods that should match the replica count. It must match the "
     "pod template's labels."},
    {"ReplicaSetSpec.template",
     "Template is the object that describes the pod that will be created if insufficient replicas "
     "are detected."},
    {"ReplicaSetStatus", "ReplicaSetStatus represents the current status of a ReplicaSet."},

    // Endpoints.
    {"EndpointSubset",
     "EndpointSubset is a group of addresses with a common set of ports. The expanded set of "
     "endpoints is the Cartesian product of Addresses x Ports."},
    {"EndpointSlice.addressType",
     "addressType specifies the type of address carried by this EndpointSlice: IPv4, IPv6 or FQDN."},
    {"EndpointSlice.endpoints", "endpoints is a list of unique endpoints in this slice."},
    {"EndpointSlice.ports", "ports specifies the list of network ports exposed by each endpoint in this slice."},
    {"Endpoint", "Endpoint represents a single logical \"backend\" implementing a service."},
};

const std::unordered_map<std::string_view, std::string_view> kStructFields = {
    {"PodSpec.affinity", "io.k8s.api.core.v1.Affinity"},
    {"PodSpec.dnsConfig", "io.k8s.api.core.v1.PodDNSConfig"},
    {"PodSpec.topologySpreadConstraints", "io.k8s.api.core.v1.TopologySpreadConstraint"},
    {"SecurityContext.seLinuxOptions", "io.k8s.api.core.v1.SELinuxOptions"},
    {"PodSecurityContext.seLinuxOptions", "io.k8s.api.core.v1.SELinuxOptions"},
    {"Volume.projected", "io.k8s.api.core.v1.ProjectedVolumeSource"},
    {"Volume.downwardAPI", "io.k8s.api.core.v1.DownwardAPIVolumeSource"},
    {"ObjectMeta.managedFields", "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry"},
};

// Kubernetes' definitions of the Struct fields' types, and of the wrapper
// types whose JSON is a string. References are written without their
// "#/definitions/" prefix, which is added when the text is parsed.
constexpr std::string_view kExtraDefinitions = R"json({
 "io.k8s.apimachinery.pkg.apis.meta.v1.Time": {"type": "string", "format": "date-time",
  "description": "Time is an RFC 3339 date and time (e.g. 2024-01-02T15:04:05Z), serialized as a string."},
 "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": {"type": "string", "format": "date-time",
  "description": "MicroTime is an RFC 3339 date and time with microsecond precision."},
 "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string",
  "description": "IntOrString is a type that can hold an int32 or a string."},
 "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string",
  "description": "Quantity is a fixed-point representation of a number: a plain number or one with an SI (m, k, M, G) or binary (Ki, Mi, Gi) suffix, e.g. 500m, 1, 512Mi."},
 "io.k8s.apimachinery.pkg.apis.meta.v1.ManagedFieldsEntry": {"type": "object",
  "description": "ManagedFieldsEntry is a workflow-id, a FieldSet and the group version of the resource that the fieldset applies to.",
  "properties": {"apiVersion": {"type": "string"}, "fieldsType": {"type": "string"},
   "fieldsV1": {"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1"}, "manager": {"type": "string"},
   "operation": {"type": "string"}, "subresource": {"type": "string"},
   "time": {"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.Time"}}},
 "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1": {"type": "object",
  "description": "FieldsV1 stores a set of fields in a data structure like a Trie, in JSON format."},
 "io.k8s.api.core.v1.Affinity": {"type": "object", "description": "Affinity is a group of affinity scheduling rules.",
  "properties": {
   "nodeAffinity": {"$ref": "io.k8s.api.core.v1.NodeAffinity", "description": "Describes node affinity scheduling rules for the pod."},
   "podAffinity": {"$ref": "io.k8s.api.core.v1.PodAffinity", "description": "Describes pod affinity scheduling rules (e.g. co-locate this pod in the same node, zone, etc. as some other pod(s))."},
   "podAntiAffinity": {"$ref": "io.k8s.api.core.v1.PodAntiAffinity", "description": "Describes pod anti-affinity scheduling rules (e.g. avoid putting this pod in the same node, zone, etc. as some other pod(s))."}}},
 "io.k8s.api.core.v1.NodeAffinity": {"type": "object", "description": "Node affinity is a group of node affinity scheduling rules.",
  "properties": {
   "preferredDuringSchedulingIgnoredDuringExecution": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.PreferredSchedulingTerm"}, "x-kubernetes-list-type": "atomic"},
   "requiredDuringSchedulingIgnoredDuringExecution": {"$ref": "io.k8s.api.core.v1.NodeSelector"}}},
 "io.k8s.api.core.v1.NodeSelector": {"type": "object", "required": ["nodeSelectorTerms"],
  "description": "A node selector represents the union of the results of one or more label queries over a set of nodes.",
  "properties": {"nodeSelectorTerms": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.NodeSelectorTerm"}, "x-kubernetes-list-type": "atomic"}}},
 "io.k8s.api.core.v1.NodeSelectorTerm": {"type": "object", "x-kubernetes-map-type": "atomic",
  "description": "A null or empty node selector term matches no objects. The requirements of them are ANDed.",
  "properties": {
   "matchExpressions": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.NodeSelectorRequirement"}, "x-kubernetes-list-type": "atomic"},
   "matchFields": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.NodeSelectorRequirement"}, "x-kubernetes-list-type": "atomic"}}},
 "io.k8s.api.core.v1.NodeSelectorRequirement": {"type": "object", "required": ["key", "operator"],
  "description": "A node selector requirement is a selector that contains values, a key, and an operator that relates the key and values.",
  "properties": {"key": {"type": "string"}, "operator": {"type": "string"},
   "values": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"}}},
 "io.k8s.api.core.v1.PreferredSchedulingTerm": {"type": "object", "required": ["weight", "preference"],
  "properties": {"preference": {"$ref": "io.k8s.api.core.v1.NodeSelectorTerm"}, "weight": {"type": "integer", "format": "int32"}}},
 "io.k8s.api.core.v1.PodAffinity": {"type": "object", "description": "Pod affinity is a group of inter pod affinity scheduling rules.",
  "properties": {
   "preferredDuringSchedulingIgnoredDuringExecution": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.WeightedPodAffinityTerm"}, "x-kubernetes-list-type": "atomic"},
   "requiredDuringSchedulingIgnoredDuringExecution": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.PodAffinityTerm"}, "x-kubernetes-list-type": "atomic"}}},
 "io.k8s.api.core.v1.PodAntiAffinity": {"type": "object", "description": "Pod anti affinity is a group of inter pod anti affinity scheduling rules.",
  "properties": {
   "preferredDuringSchedulingIgnoredDuringExecution": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.WeightedPodAffinityTerm"}, "x-kubernetes-list-type": "atomic"},
   "requiredDuringSchedulingIgnoredDuringExecution": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.PodAffinityTerm"}, "x-kubernetes-list-type": "atomic"}}},
 "io.k8s.api.core.v1.PodAffinityTerm": {"type": "object", "required": ["topologyKey"],
  "properties": {"labelSelector": {"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"},
   "matchLabelKeys": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"},
   "mismatchLabelKeys": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"},
   "namespaceSelector": {"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"},
   "namespaces": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"},
   "topologyKey": {"type": "string"}}},
 "io.k8s.api.core.v1.WeightedPodAffinityTerm": {"type": "object", "required": ["weight", "podAffinityTerm"],
  "properties": {"podAffinityTerm": {"$ref": "io.k8s.api.core.v1.PodAffinityTerm"}, "weight": {"type": "integer", "format": "int32"}}},
 "io.k8s.api.core.v1.TopologySpreadConstraint": {"type": "object", "required": ["maxSkew", "topologyKey", "whenUnsatisfiable"],
  "description": "TopologySpreadConstraint specifies how to spread matching pods among the given topology.",
  "properties": {"labelSelector": {"$ref": "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"},
   "matchLabelKeys": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"},
   "maxSkew": {"type": "integer", "format": "int32"}, "minDomains": {"type": "integer", "format": "int32"},
   "nodeAffinityPolicy": {"type": "string"}, "nodeTaintsPolicy": {"type": "string"},
   "topologyKey": {"type": "string"}, "whenUnsatisfiable": {"type": "string"}}},
 "io.k8s.api.core.v1.PodDNSConfig": {"type": "object",
  "description": "PodDNSConfig defines the DNS parameters of a pod in addition to those generated from DNSPolicy.",
  "properties": {"nameservers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"},
   "options": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.PodDNSConfigOption"}, "x-kubernetes-list-type": "atomic"},
   "searches": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"}}},
 "io.k8s.api.core.v1.PodDNSConfigOption": {"type": "object",
  "properties": {"name": {"type": "string"}, "value": {"type": "string"}}},
 "io.k8s.api.core.v1.SELinuxOptions": {"type": "object", "description": "SELinuxOptions are the labels to be applied to the container",
  "properties": {"level": {"type": "string"}, "role": {"type": "string"}, "type": {"type": "string"}, "user": {"type": "string"}}},
 "io.k8s.api.core.v1.ProjectedVolumeSource": {"type": "object", "description": "Represents a projected volume source",
  "properties": {"defaultMode": {"type": "integer", "format": "int32"},
   "sources": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.VolumeProjection"}, "x-kubernetes-list-type": "atomic"}}},
 "io.k8s.api.core.v1.VolumeProjection": {"type": "object",
  "properties": {"clusterTrustBundle": {"type": "object"},
   "configMap": {"$ref": "io.k8s.api.core.v1.ConfigMapProjection"},
   "downwardAPI": {"$ref": "io.k8s.api.core.v1.DownwardAPIProjection"},
   "secret": {"$ref": "io.k8s.api.core.v1.SecretProjection"},
   "serviceAccountToken": {"$ref": "io.k8s.api.core.v1.ServiceAccountTokenProjection"}}},
 "io.k8s.api.core.v1.ConfigMapProjection": {"type": "object",
  "properties": {"items": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.KeyToPath"}, "x-kubernetes-list-type": "atomic"},
   "name": {"type": "string"}, "optional": {"type": "boolean"}}},
 "io.k8s.api.core.v1.SecretProjection": {"type": "object",
  "properties": {"items": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.KeyToPath"}, "x-kubernetes-list-type": "atomic"},
   "name": {"type": "string"}, "optional": {"type": "boolean"}}},
 "io.k8s.api.core.v1.DownwardAPIProjection": {"type": "object",
  "properties": {"items": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.DownwardAPIVolumeFile"}, "x-kubernetes-list-type": "atomic"}}},
 "io.k8s.api.core.v1.DownwardAPIVolumeSource": {"type": "object",
  "properties": {"defaultMode": {"type": "integer", "format": "int32"},
   "items": {"type": "array", "items": {"$ref": "io.k8s.api.core.v1.DownwardAPIVolumeFile"}, "x-kubernetes-list-type": "atomic"}}},
 "io.k8s.api.core.v1.DownwardAPIVolumeFile": {"type": "object", "required": ["path"],
  "properties": {"fieldRef": {"$ref": "io.k8s.api.core.v1.ObjectFieldSelector"}, "mode": {"type": "integer", "format": "int32"},
   "path": {"type": "string"}, "resourceFieldRef": {"$ref": "io.k8s.api.core.v1.ResourceFieldSelector"}}},
 "io.k8s.api.core.v1.ServiceAccountTokenProjection": {"type": "object", "required": ["path"],
  "properties": {"audience": {"type": "string"}, "expirationSeconds": {"type": "integer", "format": "int64"},
   "path": {"type": "string"}}}
})json";

void prefixReferences(Json& j) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "$ref" && it->is_string()) {
        *it = "#/definitions/" + it->get<std::string>();
      } else {
        prefixReferences(*it);
      }
    }
  } else if (j.is_array()) {
    for (auto& e : j) prefixReferences(e);
  }
}

}  // namespace

std::string_view description(std::string_view message, std::string_view field) {
  std::string key(message);
  if (!field.empty()) key += "." + std::string(field);
  if (auto it = kDescriptions.find(key); it != kDescriptions.end()) return it->second;
  if (field.empty()) return {};
  if (auto it = kDescriptions.find("*." + std::string(field)); it != kDescriptions.end()) return it->second;
  return {};
}

std::string_view structFieldDefinition(std::string_view message, std::string_view field) {
  auto it = kStructFields.find(std::string(message) + "." + std::string(field));
  return it == kStructFields.end() ? std::string_view() : it->second;
}

const std::map<std::string, Json>& extraDefinitions() {
  static const std::map<std::string, Json> kDefs = [] {
    Json all = Json::parse(kExtraDefinitions);
    prefixReferences(all);
    std::map<std::string, Json> m;
    for (auto it = all.begin(); it != all.end(); ++it) m[it.key()] = it.value();
    return m;
  }();
  return kDefs;
}

}  // namespace sluice::server::openapi
