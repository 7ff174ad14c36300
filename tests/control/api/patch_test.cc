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

// Every operation kind of RFC 6902 against objects, arrays and the root.
TEST(JsonPatchTest, AllOperationKinds) {
  Json doc = yaml("{a: {b: [1, 2, 3]}, s: text}");
  ASSIGN_OR_FAIL(Json out, applyJsonPatch(doc, yaml(R"([
    {op: add, path: /a/b/1, value: 9},
    {op: add, path: /a/b/-, value: 4},
    {op: copy, from: /a/b/0, path: /a/c},
    {op: move, from: /s, path: /a/t},
    {op: replace, path: /a/b/0, value: 0},
    {op: remove, path: /a/b/4},
    {op: test, path: /a/t, value: text},
    {op: add, path: /a~1x, value: slash},
    {op: add, path: /a~0y, value: tilde}])")));
  EXPECT_EQ(out, yaml("{a: {b: [0, 9, 2, 3], c: 1, t: text}, a/x: slash, a~y: tilde}"));
  ASSIGN_OR_FAIL(Json root, applyJsonPatch(doc, yaml("[{op: replace, path: '', value: {z: 1}}]")));
  EXPECT_EQ(root, yaml("{z: 1}"));
  ASSIGN_OR_FAIL(Json nulled, applyJsonPatch(doc, yaml("[{op: add, path: /n, value: null}]")));
  EXPECT_TRUE(nulled.contains("n") && nulled["n"].is_null());
}

// The kubectl patches that aborted `sluice up`: a parent that is a string,
// number, bool, null or missing is a 422-class error naming the operation's
// index and path, for every operation that writes or reads through it.
TEST(JsonPatchTest, NonContainerParentsAreErrorsNotAborts) {
  Json doc = yaml("{kind: Service, spec: {replicas: 3, paused: false, n: null, ports: [{port: 80}]}}");
  const char* cases[] = {
      "[{op: add, path: /kind/x, value: 1}]",
      "[{op: add, path: /spec/replicas/x, value: 1}]",
      "[{op: add, path: /spec/paused/0, value: 1}]",
      "[{op: add, path: /spec/n/x, value: 1}]",
      "[{op: add, path: /missing/x, value: 1}]",
      "[{op: copy, from: /spec, path: /kind/x}]",
      "[{op: move, from: /spec/replicas, path: /kind/x}]",
      "[{op: copy, from: /kind, path: /spec/replicas/x}]",
      "[{op: replace, path: /kind/x, value: 1}]",
      "[{op: remove, path: /kind/x}]",
      "[{op: test, path: /kind/x, value: 1}]",
      "[{op: copy, from: /kind/x, path: /y}]",
      "[{op: add, path: /spec/ports/x, value: 1}]",
      "[{op: add, path: /spec/ports/5, value: 1}]",
      "[{op: replace, path: /spec/ports/1, value: 1}]",
      "[{op: remove, path: /spec/ports/-}]",
      "[{op: add, path: /spec/ports/01, value: 1}]",
      "[{op: add, path: /spec/ports/-1, value: 1}]",
      "[{op: add, path: /spec/ports/99999999999999999999999, value: 1}]",
      "[{op: move, from: /spec, path: /spec/inner}]",
  };
  for (const char* c : cases) {
    auto r = applyJsonPatch(doc, yaml(c));
    ASSERT_FALSE(r.ok()) << c;
    EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition) << c << ": " << r.error().message;
    EXPECT_THAT(r.error().message, HasSubstr("operation 0")) << c;
  }
  auto second = applyJsonPatch(doc, yaml("[{op: test, path: /kind, value: Service}, {op: add, path: /kind/x, value: 1}]"));
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.error().message, HasSubstr("operation 1 (add /kind/x)"));
}

// A patch that is not a list of well-formed operations is a 400-class error.
TEST(JsonPatchTest, MalformedPatchesAreInvalidArgument) {
  Json doc = yaml("{a: 1}");
  const char* cases[] = {
      "{op: add, path: /a, value: 1}",  // not a list
      "[1]",
      "[{path: /a, value: 1}]",
      "[{op: 7, path: /a, value: 1}]",
      "[{op: frobnicate, path: /a}]",
      "[{op: add, value: 1}]",
      "[{op: add, path: 5, value: 1}]",
      "[{op: add, path: a, value: 1}]",      // no leading slash
      "[{op: add, path: /a~2, value: 1}]",   // bad escape
      "[{op: add, path: /b}]",               // no value
      "[{op: replace, path: /a}]",
      "[{op: test, path: /a}]",
      "[{op: move, path: /b}]",              // no from
      "[{op: copy, from: 1, path: /b}]",
  };
  for (const char* c : cases) {
    auto r = applyJsonPatch(doc, yaml(c));
    ASSERT_FALSE(r.ok()) << c;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument) << c << ": " << r.error().message;
  }
}

// Strategic merge directives of the wrong JSON type are errors, not
// exceptions escaping the library.
TEST(StrategicMergePatchTest, DirectivesOfWrongTypeAreErrors) {
  EXPECT_FALSE(applyStrategicMergePatch(deployment(), yaml("{spec: {$patch: 1}}"), kDeployment).ok());
  Json listDirective = yaml(R"(
spec:
  template:
    spec:
      containers: [{name: nginx, $patch: 7}]
)");
  EXPECT_FALSE(applyStrategicMergePatch(deployment(), listDirective, kDeployment).ok());
  Json replaceList = yaml(R"(
spec:
  template:
    spec:
      volumes: [{name: v, $patch: [1]}]
)");
  (void)applyStrategicMergePatch(deployment(), replaceList, kDeployment);  // must not throw
  EXPECT_FALSE(applyStrategicMergePatch(deployment(), yaml("{metadata: {$retainKeys: 3}}"), kDeployment).ok());
}

}  // namespace
}  // namespace sluice::api
