#include "control/api/k8s_protobuf.h"

#include <gtest/gtest.h>

#include <limits>

#include "control/api/proto/k8s_wire.pb.h"
#include "tests/control/api/test_util.h"

namespace sluice::api {
namespace {

std::string envelope(const std::string& apiVersion, const std::string& kind, const google::protobuf::Message& obj) {
  k8swire::Unknown u;
  u.mutable_typemeta()->set_apiversion(apiVersion);
  u.mutable_typemeta()->set_kind(kind);
  u.set_raw(obj.SerializeAsString());
  return std::string("k8s\0", 4) + u.SerializeAsString();
}

// What `kubectl create deployment web --image=nginx --replicas=3 --port=80`
// sends from kubectl 1.33 (a typed client, protobuf body).
TEST(K8sProtobufTest, DeploymentFromKubectlCreate) {
  k8swire::Deployment d;
  d.mutable_metadata()->set_name("web");
  (*d.mutable_metadata()->mutable_labels())["app"] = "web";
  d.mutable_metadata()->mutable_creationtimestamp();  // the zero Time
  auto* spec = d.mutable_spec();
  spec->set_replicas(3);
  (*spec->mutable_selector()->mutable_matchlabels())["app"] = "web";
  (*spec->mutable_template_()->mutable_metadata()->mutable_labels())["app"] = "web";
  auto* c = spec->mutable_template_()->mutable_spec()->add_containers();
  c->set_name("nginx");
  c->set_image("nginx");
  c->add_ports()->set_containerport(80);
  c->mutable_resources();
  spec->mutable_strategy();
  ASSIGN_OR_FAIL(Json j, k8sProtobufToJson(envelope("apps/v1", "Deployment", d)));
  EXPECT_EQ(j, testing::yaml(R"(
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: nginx, image: nginx, ports: [{containerPort: 80}], resources: {}}]}
  strategy: {}
)")) << j.dump(2);
}

// `kubectl create service nodeport`: targetPort as IntOrString, node port.
TEST(K8sProtobufTest, ServiceWithIntOrString) {
  k8swire::Service s;
  s.mutable_metadata()->set_name("svc");
  s.mutable_spec()->set_type("NodePort");
  auto* p = s.mutable_spec()->add_ports();
  p->set_name("80-8080");
  p->set_protocol("TCP");
  p->set_port(80);
  p->mutable_targetport()->set_type(0);
  p->mutable_targetport()->set_intval(8080);
  p->set_nodeport(30080);
  auto* named = s.mutable_spec()->add_ports();
  named->set_port(81);
  named->mutable_targetport()->set_type(1);
  named->mutable_targetport()->set_strval("http");
  ASSIGN_OR_FAIL(Json j, k8sProtobufToJson(envelope("v1", "Service", s)));
  EXPECT_EQ(j["spec"]["ports"][0]["targetPort"], 8080);
  EXPECT_EQ(j["spec"]["ports"][0]["nodePort"], 30080);
  EXPECT_EQ(j["spec"]["ports"][1]["targetPort"], "http");
  EXPECT_EQ(j["kind"], "Service");
}

TEST(K8sProtobufTest, RejectsOtherBodies) {
  EXPECT_FALSE(k8sProtobufToJson("{\"kind\":\"Pod\"}").ok());
  k8swire::Namespace ns;
  EXPECT_FALSE(k8sProtobufToJson(envelope("batch/v1", "Job", ns)).ok());
}

// Found by the k8s_protobuf fuzzer (issue 18): a Time's seconds past what
// a nanosecond time_point holds (years 1678-2262) overflowed converting
// (signed overflow, UB; year 2474 was the fuzzer's). Such bodies are
// refused; the range's ends still transcode.
TEST(K8sProtobufTest, TimesOutsideTheRepresentableYearsRefuseTheBody) {
  auto withTime = [](int64_t seconds) {
    k8swire::Namespace n;
    n.mutable_metadata()->set_name("ns");
    n.mutable_metadata()->mutable_creationtimestamp()->set_seconds(seconds);
    return k8sProtobufToJson(envelope("v1", "Namespace", n));
  };
  for (int64_t seconds : {int64_t{15927079168}, int64_t{253402300799}, int64_t{-62135596800},
                          std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()}) {
    auto j = withTime(seconds);
    ASSERT_FALSE(j.ok()) << seconds;
    EXPECT_NE(j.error().message.find("outside the years sluice represents"), std::string::npos)
        << j.error().message;
  }
  ASSIGN_OR_FAIL(Json late, withTime(9223372035));  // 2262-04-11T23:47:15Z
  EXPECT_EQ(late["metadata"]["creationTimestamp"], "2262-04-11T23:47:15Z");
  ASSIGN_OR_FAIL(Json early, withTime(-9223372035));
  EXPECT_EQ(early["metadata"]["creationTimestamp"], "1677-09-21T00:12:45Z");
}

}  // namespace
}  // namespace sluice::api
