#include "control/api/validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "control/api/defaults.h"
#include "control/api/registry.h"
#include "tests/control/api/test_util.h"

namespace sluice::api {
namespace {

using testing::yaml;

// Runs a manifest through what the server does before writing it: decode,
// defaults, create preparation, validation. Returns "field: body" lines.
std::vector<std::string> problems(const std::string& manifest) {
  Json doc = yaml(manifest);
  const ResourceType* type = Registry::builtin().findKind(doc["apiVersion"].get<std::string>(), doc["kind"].get<std::string>());
  EXPECT_NE(type, nullptr);
  if (type == nullptr) return {"no such kind"};
  auto obj = type->newObject();
  auto r = decodeJson(doc, *obj, nullptr);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  type->strategy->applyDefaults(*obj);
  type->strategy->prepareForCreate(*obj);
  FieldErrors errs;
  type->strategy->validate(*obj, errs);
  std::vector<std::string> out;
  for (const auto& e : errs.errors()) out.push_back(e.message());
  return out;
}

struct BadManifest {
  const char* scenario;
  const char* manifest;
  std::vector<std::string> expected;
};

const std::string kPodHead = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\n";
const std::string kSvcHead = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: default}\n";
const std::string kDeployHead = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: default}\n";

class BadManifestTest : public ::testing::TestWithParam<BadManifest> {};

TEST_P(BadManifestTest, ReportsKubernetesCauses) {
  EXPECT_EQ(problems(GetParam().manifest), GetParam().expected) << GetParam().scenario;
}

const std::vector<BadManifest> kBadManifests = {
    {"container port out of range",
     "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\n"
     "spec: {containers: [{name: c, image: nginx, ports: [{containerPort: 70000}]}]}",
     {"spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"}},
    {"unknown protocol and missing image",
     "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\n"
     "spec: {containers: [{name: c, ports: [{containerPort: 80, protocol: HTTP}]}]}",
     {"spec.containers[0].image: Required value",
      "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""}},
    {"duplicate container names, bad restart policy",
     "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\n"
     "spec: {restartPolicy: Sometimes, containers: [{name: c, image: x}, {name: c, image: y}]}",
     {"spec.containers[1].name: Duplicate value: \"c\"",
      "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""}},
    {"bad object name and label",
     "apiVersion: v1\nkind: Pod\nmetadata: {name: Web_1, namespace: default, labels: {app: \"a b\"}}\n"
     "spec: {containers: [{name: c, image: x}]}",
     {"metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain must consist of lower case "
      "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
      "'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
      "metadata.labels: Invalid value: \"a b\": a valid label must be an empty string or consist of alphanumeric "
      "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
      "'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"}},
    {"no name or generateName",
     "apiVersion: v1\nkind: Pod\nmetadata: {namespace: default}\nspec: {containers: [{name: c, image: x}]}",
     {"metadata.name: Required value: name or generateName is required"}},
    {"volume mount of an undeclared volume, probe without handler",
     "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\n"
     "spec: {containers: [{name: c, image: x, volumeMounts: [{name: data, mountPath: /d}], readinessProbe: {periodSeconds: 5}}]}",
     {"spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
      "spec.containers[0].readinessProbe: Required value: must specify a handler type"}},
    {"requests above limits",
     "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\n"
     "spec: {containers: [{name: c, image: x, resources: {requests: {cpu: 2}, limits: {cpu: 1}}}]}",
     {"spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1"}},
    {"service: port out of range, bad type, bad affinity timeout",
     "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: default}\n"
     "spec: {type: Cluster, sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 90000}}, "
     "ports: [{port: 0}]}",
     {"spec.type: Unsupported value: \"Cluster\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
      "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
      "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
      "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 90000: must be greater than 0 and less than 86400"}},
    {"service: unnamed ports, nodePort on ClusterIP, bad target port name",
     "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: default}\n"
     "spec: {ports: [{port: 80, nodePort: 30001}, {port: 81, targetPort: web_port}]}",
     {"spec.ports[0].name: Required value",
      "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
      "spec.ports[1].name: Required value",
      "spec.ports[1].targetPort: Invalid value: \"web_port\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"}},
    {"service: headless NodePort, bad external IP, bad traffic policy",
     "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: default}\n"
     "spec: {type: NodePort, clusterIP: None, externalIPs: [1.2.3.999], externalTrafficPolicy: Nearest, ports: [{port: 80}]}",
     {"spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services",
      "spec.externalIPs[0]: Invalid value: \"1.2.3.999\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
      "spec.externalTrafficPolicy: Unsupported value: \"Nearest\": supported values: \"Cluster\", \"Local\""}},
    {"service name must be a DNS-1035 label",
     "apiVersion: v1\nkind: Service\nmetadata: {name: 1svc, namespace: default}\nspec: {ports: [{port: 80}]}",
     {"metadata.name: Invalid value: \"1svc\": a DNS-1035 label must consist of lower case alphanumeric characters "
      "or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
      "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"}},
    {"deployment: selector does not match template",
     "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: default}\n"
     "spec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: api}}, spec: {containers: [{name: c, image: x}]}}}",
     {"spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"api\"}: `selector` does not match template `labels`"}},
    {"deployment: missing selector, negative replicas, Never restart",
     "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: default}\n"
     "spec: {replicas: -1, template: {metadata: {labels: {app: api}}, spec: {restartPolicy: Never, containers: [{name: c, image: x}]}}}",
     {"spec.replicas: Invalid value: -1: must be greater than or equal to 0", "spec.selector: Required value",
      "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""}},
    {"deployment: template container port out of range",
     "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: default}\n"
     "spec: {selector: {matchLabels: {app: a}}, template: {metadata: {labels: {app: a}}, spec: {containers: [{name: c, image: x, ports: [{containerPort: 0}]}]}}}",
     {"spec.template.spec.containers[0].ports[0].containerPort: Required value"}},
    {"deployment: rolling update with nothing to move",
     "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: default}\n"
     "spec: {strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}, selector: {matchLabels: {app: a}}, "
     "template: {metadata: {labels: {app: a}}, spec: {containers: [{name: c, image: x}]}}}",
     {"spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"}},
    {"deployment: percentages past int64 (strconv.Atoi saturates; never an exception)",
     "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: default}\n"
     "spec: {strategy: {rollingUpdate: {maxSurge: \"99999999999999999999%\", maxUnavailable: \"99999999999999999999%\"}}, "
     "selector: {matchLabels: {app: a}}, template: {metadata: {labels: {app: a}}, spec: {containers: [{name: c, image: x}]}}}",
     {"spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"99999999999999999999%\": must not be greater than 100%"}},
    {"replicaset: empty selector",
     "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: r, namespace: default}\n"
     "spec: {selector: {}, template: {metadata: {labels: {app: a}}, spec: {containers: [{name: c, image: x}]}}}",
     {"spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
      "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"}},
    {"namespace name must be a DNS label",
     "apiVersion: v1\nkind: Namespace\nmetadata: {name: my.ns}",
     {"metadata.name: Invalid value: \"my.ns\": a lowercase RFC 1123 label must consist of lower case alphanumeric "
      "characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
      "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"}},
};

INSTANTIATE_TEST_SUITE_P(Table, BadManifestTest, ::testing::ValuesIn(kBadManifests));

// The example manifests (and kubectl's generated objects) are valid.
TEST(ValidationTest, GoodManifestsPass) {
  std::string dir = std::string(SLUICE_SOURCE_ROOT) + "/examples/manifests";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    for (Json doc : testing::loadManifests(entry.path())) {
      if (!doc["metadata"].contains("namespace") && doc["kind"] != "Namespace") doc["metadata"]["namespace"] = "default";
      EXPECT_THAT(problems(doc.dump()), ::testing::IsEmpty()) << entry.path();
    }
  }
}

// The summary is what follows `Pod "x" is invalid: ` in the Status message.
TEST(ValidationTest, SummaryJoinsLikeKubernetes) {
  FieldErrors one;
  one.invalid("spec.replicas", int64_t{-1}, "must be greater than or equal to 0");
  EXPECT_EQ(one.summary(), "spec.replicas: Invalid value: -1: must be greater than or equal to 0");
  FieldErrors two = one;
  two.required("spec.selector");
  EXPECT_EQ(two.summary(),
            "[spec.replicas: Invalid value: -1: must be greater than or equal to 0, spec.selector: Required value]");
  EXPECT_EQ(two.errors()[1].reason(), "FieldValueRequired");
}

// Defaults as kubectl get -o yaml shows them after create.
TEST(DefaultsTest, ServiceAndPodDefaults) {
  Service svc;
  ASSERT_OK(decodeJson(yaml("spec: {type: NodePort, sessionAffinity: ClientIP, ports: [{port: 80}]}"), svc, nullptr));
  defaultService(svc);
  EXPECT_EQ(svc.spec().ports(0).protocol(), "TCP");
  EXPECT_EQ(svc.spec().ports(0).targetport().intval(), 80);
  EXPECT_EQ(svc.spec().sessionaffinityconfig().clientip().timeoutseconds(), 10800);
  EXPECT_EQ(svc.spec().externaltrafficpolicy(), "Cluster");
  EXPECT_EQ(svc.spec().internaltrafficpolicy(), "Cluster");
  Pod pod;
  ASSERT_OK(decodeJson(yaml("spec: {containers: [{name: a, image: 'nginx:1.25', ports: [{containerPort: 80}], "
                            "readinessProbe: {httpGet: {port: 80}}}]}"), pod, nullptr));
  defaultPod(pod);
  EXPECT_EQ(pod.spec().restartpolicy(), "Always");
  EXPECT_EQ(pod.spec().containers(0).imagepullpolicy(), "IfNotPresent");
  EXPECT_EQ(pod.spec().containers(0).ports(0).protocol(), "TCP");
  EXPECT_EQ(pod.spec().containers(0).readinessprobe().httpget().path(), "/");
  EXPECT_EQ(pod.spec().containers(0).readinessprobe().periodseconds(), 10);
  Deployment d;
  defaultDeployment(d);
  EXPECT_EQ(d.spec().replicas(), 1);
  EXPECT_EQ(d.spec().strategy().rollingupdate().maxsurge().strval(), "25%");
}

// Changing a NodePort Service to ClusterIP drops the node ports the client
// left in place; to ExternalName, the cluster IP.
TEST(DefaultsTest, ServiceTypeChangeDropsTypeFields) {
  Service old;
  ASSERT_OK(decodeJson(yaml("spec: {type: NodePort, clusterIP: 10.96.0.9, externalTrafficPolicy: Cluster, "
                            "ports: [{port: 80, nodePort: 30080, protocol: TCP}]}"), old, nullptr));
  Service next = old;
  next.mutable_spec()->set_type("ClusterIP");
  prepareServiceUpdate(next, old);
  EXPECT_EQ(next.spec().ports(0).nodeport(), 0);
  EXPECT_TRUE(next.spec().externaltrafficpolicy().empty());
  next = old;
  next.mutable_spec()->set_type("ExternalName");
  next.mutable_spec()->set_externalname("example.com");
  prepareServiceUpdate(next, old);
  EXPECT_TRUE(next.spec().clusterip().empty());
  // A PUT that leaves the allocated node port out keeps it.
  next = old;
  next.mutable_spec()->mutable_ports(0)->set_nodeport(0);
  next.mutable_spec()->clear_clusterip();
  prepareServiceUpdate(next, old);
  EXPECT_EQ(next.spec().ports(0).nodeport(), 30080);
  EXPECT_EQ(next.spec().clusterip(), "10.96.0.9");
}

}  // namespace
}  // namespace sluice::api

namespace sluice::api {
namespace {

// Create clears client-set status (a Pod starts Pending), except for Nodes,
// which their agent registers with status filled in.
TEST(StrategyTest, CreateResetsStatusExceptForNodes) {
  const ResourceType* pods = Registry::builtin().findKind("v1", "Pod");
  auto pod = pods->newObject();
  ASSERT_OK(decodeJson(testing::yaml("status: {phase: Running, podIP: 10.0.0.1}\nspec: {containers: [{name: c}]}"), *pod, nullptr));
  pods->strategy->prepareForCreate(*pod);
  EXPECT_EQ(static_cast<Pod&>(*pod).status().phase(), "Pending");
  EXPECT_TRUE(static_cast<Pod&>(*pod).status().podip().empty());
  const ResourceType* nodes = Registry::builtin().findKind("v1", "Node");
  auto node = nodes->newObject();
  ASSERT_OK(decodeJson(testing::yaml("status: {addresses: [{type: InternalIP, address: 10.0.0.11}]}"), *node, nullptr));
  nodes->strategy->prepareForCreate(*node);
  EXPECT_EQ(static_cast<Node&>(*node).status().addresses_size(), 1);
}

}  // namespace
}  // namespace sluice::api
