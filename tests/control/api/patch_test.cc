#include "control/api/patch.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "control/api/proto/apps.pb.h"
#include "control/api/proto/core.pb.h"
#include "tests/control/api/test_util.h"

namespace sluice::api {
namespace {

using ::testing::HasSubstr;
using testing::yaml;

const google::protobuf::Descriptor* kDeployment = Deployment::descriptor();
const google::protobuf::Descriptor* kPod = Pod::descriptor();

Json deployment() {
  return yaml(R"(
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: fe}
  finalizers: [a/one, b/two]
spec:
  replicas: 3
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}
  template:
    spec:
      containers:
      - name: nginx
        image: nginx:1.16
        ports: [{containerPort: 80, protocol: TCP}, {containerPort: 8080, protocol: TCP}]
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
      - name: sidecar
        image: busybox
)");
}

// kubectl apply with a changed image: containers are matched by name, the
// server-side fields of the container (ports) survive.
TEST(StrategicMergePatchTest, ApplyChangedImageKeepsOtherFields) {
  Json patch = yaml(R"(
spec:
  template:
    spec:
      $setElementOrder/containers: [{name: nginx}, {name: sidecar}]
      containers: [{name: nginx, image: "nginx:1.17"}]
)");
  ASSIGN_OR_FAIL(Json out, applyStrategicMergePatch(deployment(), patch, kDeployment));
  const Json& c = out["spec"]["template"]["spec"]["containers"];
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0]["image"], "nginx:1.17");
  EXPECT_EQ(c[0]["ports"].size(), 2u);
  EXPECT_EQ(c[1]["name"], "sidecar");
}

// kubectl apply after a port was removed from the manifest sends a
// `$patch: delete` element keyed by containerPort.
TEST(StrategicMergePatchTest, ApplyRemovedListElement) {
  Json patch = yaml(R"(
spec:
  template:
    spec:
      $setElementOrder/containers: [{name: nginx}, {name: sidecar}]
      containers:
      - name: nginx
        $setElementOrder/ports: [{containerPort: 80}]
        ports: [{$patch: delete, containerPort: 8080}]
)");
  ASSIGN_OR_FAIL(Json out, applyStrategicMergePatch(deployment(), patch, kDeployment));
  const Json& ports = out["spec"]["template"]["spec"]["containers"][0]["ports"];
  ASSERT_EQ(ports.size(), 1u);
  EXPECT_EQ(ports[0]["containerPort"], 80);
}

// A removed map key is sent as null; a removed container as `$patch: delete`.
TEST(StrategicMergePatchTest, NullDeletesAndDeleteDirective) {
  Json patch = yaml(R"(
metadata: {labels: {tier: null}}
spec:
  template:
    spec:
      $setElementOrder/containers: [{name: nginx}]
      containers: [{name: sidecar, $patch: delete}]
)");
  ASSIGN_OR_FAIL(Json out, applyStrategicMergePatch(deployment(), patch, kDeployment));
  EXPECT_EQ(out["metadata"]["labels"], yaml("{app: web}"));
  EXPECT_EQ(out["spec"]["template"]["spec"]["containers"].size(), 1u);
}

// $setElementOrder puts a newly added container where the manifest has it;
// env merges by name.
TEST(StrategicMergePatchTest, SetElementOrderPlacesNewElements) {
  Json patch = yaml(R"(
spec:
  template:
    spec:
      $setElementOrder/containers: [{name: init}, {name: nginx}, {name: sidecar}]
      containers:
      - {name: init, image: alpine}
      - name: nginx
        $setElementOrder/env: [{name: A}, {name: C}, {name: B}]
        env: [{name: C, value: "3"}, {name: A, value: "10"}]
)");
  ASSIGN_OR_FAIL(Json out, applyStrategicMergePatch(deployment(), patch, kDeployment));
  const Json& c = out["spec"]["template"]["spec"]["containers"];
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0]["name"], "init");
  EXPECT_EQ(c[1]["name"], "nginx");
  EXPECT_EQ(c[2]["name"], "sidecar");
  EXPECT_EQ(c[1]["env"], yaml(R"([{name: A, value: "10"}, {name: C, value: "3"}, {name: B, value: "2"}])"));
}

// Changing the strategy type to Recreate: $retainKeys drops rollingUpdate.
TEST(StrategicMergePatchTest, RetainKeysDropsUnlistedFields) {
  Json patch = yaml(R"(spec: {strategy: {$retainKeys: [type], type: Recreate, rollingUpdate: null}})");
  ASSIGN_OR_FAIL(Json out, applyStrategicMergePatch(deployment(), patch, kDeployment));
  EXPECT_EQ(out["spec"]["strategy"], yaml("{type: Recreate}"));
}

// $patch: replace on a map replaces it; as a list element, the whole list.
TEST(StrategicMergePatchTest, ReplaceDirective) {
  Json patch = yaml(R"(
metadata: {labels: {$patch: replace, only: me}}
spec:
  template:
    spec:
      containers: [{$patch: replace}, {name: solo, image: x}]
)");
  ASSIGN_OR_FAIL(Json out, applyStrategicMergePatch(deployment(), patch, kDeployment));
  EXPECT_EQ(out["metadata"]["labels"], yaml("{only: me}"));
  EXPECT_EQ(out["spec"]["template"]["spec"]["containers"], yaml("[{name: solo, image: x}]"));
}

// Primitive lists with a merge strategy (finalizers) union, and
// $deleteFromPrimitiveList removes values.
TEST(StrategicMergePatchTest, PrimitiveListMergeAndDelete) {
  Json patch = yaml(R"(metadata: {finalizers: [c/three], $deleteFromPrimitiveList/finalizers: [a/one]})");
  ASSIGN_OR_FAIL(Json out, applyStrategicMergePatch(deployment(), patch, kDeployment));
  EXPECT_EQ(out["metadata"]["finalizers"], yaml("[b/two, c/three]"));
}

// Lists without a merge strategy (command, args) are replaced whole.
TEST(StrategicMergePatchTest, AtomicListsAreReplaced) {
  Json pod = yaml("spec: {containers: [{name: a, command: [sh, -c, 'sleep 1'], args: [x, y]}]}");
  Json patch = yaml("spec: {containers: [{name: a, args: [z]}]}");
  ASSIGN_OR_FAIL(Json out, applyStrategicMergePatch(pod, patch, kPod));
  EXPECT_EQ(out["spec"]["containers"][0]["args"], yaml("[z]"));
  EXPECT_EQ(out["spec"]["containers"][0]["command"].size(), 3u);
}

// A list element without its merge key cannot be placed.
TEST(StrategicMergePatchTest, MissingMergeKeyIsAnError) {
  auto r = applyStrategicMergePatch(deployment(), yaml("spec: {template: {spec: {containers: [{image: x}]}}}"), kDeployment);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().message, HasSubstr("does not contain declared merge key: name"));
}

// Service ports merge by port number; kubectl scale's patch touches one field.
TEST(StrategicMergePatchTest, ServicePortsMergeByPort) {
  Json svc = yaml("spec: {ports: [{port: 80, nodePort: 30080, name: http}, {port: 443, name: https}]}");
  Json patch = yaml("spec: {ports: [{port: 443, targetPort: 8443}]}");
  ASSIGN_OR_FAIL(Json out, applyStrategicMergePatch(svc, patch, Service::descriptor()));
  EXPECT_EQ(out["spec"]["ports"][0]["nodePort"], 30080);
  EXPECT_EQ(out["spec"]["ports"][1]["targetPort"], 8443);
}

TEST(MergePatchTest, NullDeletesAndListsReplace) {
  ASSIGN_OR_FAIL(Json out, applyMergePatch(deployment(), yaml("{metadata: {labels: {tier: null, new: x}}, spec: {replicas: 5}}")));
  EXPECT_EQ(out["metadata"]["labels"], yaml("{app: web, new: x}"));
  EXPECT_EQ(out["spec"]["replicas"], 5);
  ASSIGN_OR_FAIL(Json out2, applyMergePatch(deployment(), yaml("{spec: {template: {spec: {containers: [{name: only}]}}}}")));
  EXPECT_EQ(out2["spec"]["template"]["spec"]["containers"].size(), 1u);
}

TEST(JsonPatchTest, OperationsAndFailedTest) {
  ASSIGN_OR_FAIL(Json out, applyJsonPatch(deployment(), yaml(R"([
    {op: replace, path: /spec/replicas, value: 7},
    {op: add, path: /metadata/labels/x, value: y},
    {op: remove, path: /metadata/finalizers/0},
    {op: test, path: /spec/replicas, value: 7}])")));
  EXPECT_EQ(out["spec"]["replicas"], 7);
  EXPECT_EQ(out["metadata"]["labels"]["x"], "y");
  EXPECT_EQ(out["metadata"]["finalizers"], yaml("[b/two]"));
  EXPECT_FALSE(applyJsonPatch(deployment(), yaml("[{op: test, path: /spec/replicas, value: 1}]")).ok());
  EXPECT_FALSE(applyJsonPatch(deployment(), yaml("[{op: remove, path: /nope}]")).ok());
}

}  // namespace
}  // namespace sluice::api
