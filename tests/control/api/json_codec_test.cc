#include "control/api/json_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "control/api/proto/apps.pb.h"
#include "control/api/proto/core.pb.h"
#include "control/api/quantity.h"
#include "control/api/registry.h"
#include "tests/control/api/test_util.h"

namespace sluice::api {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::yaml;

// Every manifest under examples/ decodes as its kind without unknown fields
// and encodes back to the same JSON (their quantities are already canonical).
TEST(JsonCodecTest, ExampleManifestsRoundTrip) {
  std::string dir = std::string(SLUICE_SOURCE_ROOT) + "/examples/manifests";
  int docs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    for (Json doc : testing::loadManifests(entry.path())) {
      SCOPED_TRACE(entry.path().string() + ": " + doc.value("kind", "?"));
      const ResourceType* type = Registry::builtin().findKind(doc["apiVersion"].get<std::string>(), doc["kind"].get<std::string>());
      ASSERT_NE(type, nullptr);
      auto msg = type->newObject();
      std::vector<std::string> unknown;
      ASSERT_OK(decodeJson(doc, *msg, &unknown));
      EXPECT_THAT(unknown, ::testing::IsEmpty());
      Json back = encodeJson(*msg);
      EXPECT_EQ(back, doc) << back.dump(2);
      ++docs;
    }
  }
  EXPECT_GE(docs, 12);
}

// Unknown fields are reported with Kubernetes' path syntax, in document order,
// at any depth, including inside list elements.
TEST(JsonCodecTest, UnknownFieldsReportTheirPaths) {
  Json doc = yaml(R"(
apiVersion: v1
kind: Pod
metadata: {name: x, labelz: {a: b}}
spec:
  containers:
  - name: a
    image: nginx
  - name: b
    image: nginx
    imagePullPolicyy: Always
    ports: [{containerPort: 80, hostPortt: 8080}]
  bogus: 1
)");
  Pod pod;
  std::vector<std::string> unknown;
  ASSERT_OK(decodeJson(doc, pod, &unknown));
  EXPECT_THAT(unknown, ElementsAre("metadata.labelz", "spec.bogus", "spec.containers[1].imagePullPolicyy",
                                   "spec.containers[1].ports[0].hostPortt"));
  EXPECT_EQ(pod.spec().containers(1).ports(0).containerport(), 80);
}

// A JSON type that does not fit is an error worded as Go's encoding/json.
TEST(JsonCodecTest, TypeMismatchIsGoStyleError) {
  Deployment d;
  auto r = decodeJson(yaml("spec: {template: {metadata: {labels: {app: 1}}}}"), d, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "json: cannot unmarshal number into Go struct field ObjectMeta.spec.template.metadata.labels of type string");
  Pod p;
  r = decodeJson(yaml("spec: {containers: [{name: a, ports: [{containerPort: \"80\"}]}]}"), p, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("cannot unmarshal string into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32"));
  r = decodeJson(yaml("spec: {containers: [{name: a, ports: [{containerPort: 5000000000}]}]}"), p, nullptr);
  EXPECT_FALSE(r.ok());
}

// targetPort is a number or a port name, and keeps its JSON type.
TEST(JsonCodecTest, IntOrStringKeepsItsType) {
  Service svc;
  ASSERT_OK(decodeJson(yaml("spec: {ports: [{port: 80, targetPort: 8080}, {port: 81, targetPort: http}]}"), svc, nullptr));
  EXPECT_EQ(svc.spec().ports(0).targetport().intval(), 8080);
  EXPECT_EQ(svc.spec().ports(1).targetport().strval(), "http");
  Json back = encodeJson(svc);
  EXPECT_EQ(back["spec"]["ports"][0]["targetPort"], 8080);
  EXPECT_EQ(back["spec"]["ports"][1]["targetPort"], "http");
  EXPECT_FALSE(decodeJson(yaml("spec: {ports: [{port: 80, targetPort: true}]}"), svc, nullptr).ok());
}

// Quantities accept numbers and strings and are stored canonically.
TEST(JsonCodecTest, QuantitiesAreCanonical) {
  Pod p;
  ASSERT_OK(decodeJson(yaml(R"(
spec:
  containers:
  - name: a
    resources:
      limits: {cpu: 1, memory: 1Gi, ephemeral-storage: 2048Ki}
      requests: {cpu: 0.25, memory: "1000"}
)"), p, nullptr));
  Json r = encodeJson(p)["spec"]["containers"][0]["resources"];
  EXPECT_EQ(r["limits"]["cpu"], "1");
  EXPECT_EQ(r["limits"]["memory"], "1Gi");
  EXPECT_EQ(r["limits"]["ephemeral-storage"], "2Mi");
  EXPECT_EQ(r["requests"]["cpu"], "250m");
  EXPECT_EQ(r["requests"]["memory"], "1k");
  auto bad = decodeJson(yaml("spec: {containers: [{name: a, resources: {limits: {cpu: 1x}}}]}"), p, nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.error().message, HasSubstr("quantities must match the regular expression"));
}

TEST(QuantityTest, ParsesAndCanonicalizes) {
  struct Case {
    const char* in;
    const char* canonical;
    int64_t millis;
  };
  for (const Case& c : {Case{"500m", "500m", 500}, Case{"0.5", "500m", 500}, Case{"1", "1", 1000},
                        Case{"1.5Gi", "1536Mi", 1610612736000}, Case{"1e3", "1e3", 1000000},
                        Case{"100Mi", "100Mi", 104857600000}, Case{"0", "0", 0}, Case{"1.5Ki", "1536", 1536000},
                        Case{"2000", "2k", 2000000}, Case{"0.1m", "100u", 1}}) {
    SCOPED_TRACE(c.in);
    ASSIGN_OR_FAIL(ParsedQuantity q, parseQuantity(c.in));
    EXPECT_EQ(q.canonical(), c.canonical);
    EXPECT_EQ(q.milliValue(), c.millis);
  }
  for (const char* bad : {"", "abc", "1.2.3", "5Q", "--1", "1e"}) EXPECT_FALSE(parseQuantity(bad).ok()) << bad;
}

// Empty fields are omitted, present messages and emit_zero fields are kept,
// int64 are numbers and null means unset.
TEST(JsonCodecTest, OmitsEmptyKeepsPresence) {
  Pod p;
  ASSERT_OK(decodeJson(yaml(R"(
metadata: {name: x, creationTimestamp: null, deletionGracePeriodSeconds: 30}
spec:
  terminationGracePeriodSeconds: 0
  volumes: [{name: v, emptyDir: {}}]
  containers: [{name: a, resources: {}, ports: [{containerPort: 80}]}]
status: {}
)"), p, nullptr));
  Json j = encodeJson(p);
  EXPECT_FALSE(j["metadata"].contains("creationTimestamp"));
  EXPECT_EQ(j["metadata"]["deletionGracePeriodSeconds"], 30);
  EXPECT_TRUE(j["metadata"]["deletionGracePeriodSeconds"].is_number());
  EXPECT_EQ(j["spec"]["terminationGracePeriodSeconds"], 0);
  EXPECT_EQ(j["spec"]["volumes"][0]["emptyDir"], Json::object());
  EXPECT_EQ(j["spec"]["containers"][0]["resources"], Json::object());
  EXPECT_EQ(j["status"], Json::object());
  EXPECT_FALSE(j["spec"]["containers"][0]["ports"][0].contains("protocol"));
  ReplicaSet rs;
  ASSERT_OK(decodeJson(yaml("status: {replicas: 0}"), rs, nullptr));
  EXPECT_EQ(encodeJson(rs)["status"]["replicas"], 0);
}

// Free-form fields (affinity) carry arbitrary JSON through unchanged.
TEST(JsonCodecTest, FreeFormFieldsRoundTrip) {
  Json doc = yaml(R"(
spec:
  containers: [{name: a, image: x}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: zone, operator: In, values: [a, b]}]
      weight: 10
)");
  Pod p;
  ASSERT_OK(decodeJson(doc, p, nullptr));
  EXPECT_EQ(encodeJson(p)["spec"]["affinity"], doc["spec"]["affinity"]);
}

}  // namespace
}  // namespace sluice::api
