// Hostile and malformed client input against a real API server over HTTPS:
// every case must be the error response Kubernetes gives (400, 415, 422),
// never an abort of the process (which in `sluice up` would take the
// controllers and the agent down with it), and the server keeps serving.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "control/server/api_server.h"
#include "control/server/credentials.h"
#include "tests/control/server/https_client.h"
#include "tests/control/server/server_fixture.h"

namespace sluice::server {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::HttpsClient;

const std::string kSvcs = "/api/v1/namespaces/default/services";
const std::string kDeploys = "/apis/apps/v1/namespaces/default/deployments";
const std::string kPods = "/api/v1/namespaces/default/pods";

class ApiServerInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::scratchDir("sluice-input-test");
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  void startServer() {
    ApiServerOptions o = testing::testServerOptions(dir_);
    o.kubernetesEndpointsInterval = std::chrono::milliseconds(100);
    auto s = ApiServer::start(o);
    ASSERT_TRUE(s.ok()) << s.error().message;
    server_ = std::move(*s);
    client_ = std::make_unique<HttpsClient>("127.0.0.1", server_->port(), server_->caCertPem(),
                                            server_->token());
  }

  void createService(const std::string& name) {
    json svc = {{"metadata", {{"name", name}}},
                {"spec", {{"ports", {{{"port", 80}}}}, {"selector", {{"app", name}}}}}};
    auto r = client_->post(kSvcs, svc);
    ASSERT_EQ(r.status, 201) << r.body;
  }

  json deployment(const json& replicas) {
    return {{"apiVersion", "apps/v1"},
            {"kind", "Deployment"},
            {"metadata", {{"name", "web"}}},
            {"spec",
             {{"replicas", replicas},
              {"selector", {{"matchLabels", {{"app", "web"}}}}},
              {"template",
               {{"metadata", {{"labels", {{"app", "web"}}}}},
                {"spec", {{"containers", {{{"name", "c"}, {"image", "nginx"}}}}}}}}}}};
  }

  std::filesystem::path dir_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<HttpsClient> client_;
};

// The issue's reproducer: JSON patch operations whose parent is a string or
// number are 422 naming the operation, and the server answers afterwards.
TEST_F(ApiServerInputTest, JsonPatchThroughScalarParentIs422) {
  startServer();
  createService("t");
  const char* patches[] = {
      R"([{"op":"add","path":"/kind/x","value":1}])",
      R"([{"op":"copy","from":"/spec","path":"/kind/x"}])",
      R"([{"op":"move","from":"/metadata/labels","path":"/spec/ports/0/port/x"}])",
      R"([{"op":"replace","path":"/apiVersion/0","value":1}])",
      R"([{"op":"add","path":"/spec/ports/7","value":{}}])",
  };
  for (const char* p : patches) {
    auto r = client_->request("PATCH", kSvcs + "/t", p, "application/json-patch+json");
    EXPECT_EQ(r.status, 422) << p << ": " << r.body;
    EXPECT_EQ(r.json()["reason"], "Invalid") << p;
    EXPECT_THAT(r.json()["message"].get<std::string>(), HasSubstr("operation 0")) << p;
  }
  auto malformed =
      client_->request("PATCH", kSvcs + "/t", R"([{"op":"add","path":"kind","value":1}])",
                       "application/json-patch+json");
  EXPECT_EQ(malformed.status, 400) << malformed.body;
  EXPECT_EQ(client_->get(kSvcs + "/t").status, 200);
}

// Removing /metadata leaves an object Kubernetes rejects: metadata is required.
TEST_F(ApiServerInputTest, JsonPatchRemovingMetadataIs422) {
  startServer();
  createService("t");
  auto r = client_->request("PATCH", kSvcs + "/t", R"([{"op":"remove","path":"/metadata"}])",
                            "application/json-patch+json");
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(r.json()["reason"], "Invalid");
  EXPECT_EQ(r.json()["details"]["causes"][0]["field"], "metadata");
  auto merge = client_->request("PATCH", kSvcs + "/t", R"({"metadata":null})",
                                "application/merge-patch+json");
  EXPECT_EQ(merge.status, 422) << merge.body;
}

// Strategic-merge directives and binding targets of the wrong JSON type.
TEST_F(ApiServerInputTest, WrongJsonTypesInPatchesAndBindingsAreErrors) {
  startServer();
  createService("t");
  auto smp =
      client_->request("PATCH", kSvcs + "/t", R"({"spec":{"ports":[{"port":80,"$patch":1}]}})",
                       "application/strategic-merge-patch+json");
  EXPECT_GE(smp.status, 400) << smp.body;
  EXPECT_LT(smp.status, 500) << smp.body;
  auto pin = client_->request("PATCH", kSvcs + "/t", R"([{"op":"test","path":7,"value":1}])",
                              "application/json-patch+json");
  EXPECT_EQ(pin.status, 400) << pin.body;
  json p = {{"metadata", {{"name", "p"}}},
            {"spec", {{"containers", {{{"name", "c"}, {"image", "x"}}}}}}};
  ASSERT_EQ(client_->post(kPods, p).status, 201);
  for (const char* b :
       {R"({"target":{"name":5}})", R"({"target":"node-1"})", R"({"target":null})"}) {
    auto r = client_->request("POST", kPods + "/p/binding", b);
    EXPECT_GE(r.status, 400) << b << ": " << r.body;
    EXPECT_LT(r.status, 500) << b << ": " << r.body;
  }
  EXPECT_EQ(client_->get(kPods + "/p").status, 200);
}

// Query parameters Kubernetes would not parse are 400 naming the parameter,
// answered before a watch stream starts.
TEST_F(ApiServerInputTest, InvalidListAndWatchParametersAre400) {
  startServer();
  struct Case {
    std::string query;
    std::string param;
  };
  const Case cases[] = {
      {"?limit=abc", "limit"},
      {"?limit=1x", "limit"},
      {"?resourceVersion=-5", "resourceVersion"},
      {"?resourceVersion=abc", "resourceVersion"},
      {"?resourceVersion=18446744073709551616", "resourceVersion"},
      {"?resourceVersion=1&resourceVersionMatch=Exact&limit=abc", "limit"},
      {"?watch=1&resourceVersion=-1", "resourceVersion"},
      {"?watch=1&resourceVersion=18446744073709551616", "resourceVersion"},
      {"?watch=true&resourceVersion=1e3", "resourceVersion"},
      {"?watch=1&timeoutSeconds=soon", "timeoutSeconds"},
  };
  for (const auto& c : cases) {
    auto r = client_->get(kPods + c.query);
    EXPECT_EQ(r.status, 400) << c.query << ": " << r.body;
    EXPECT_EQ(r.json()["reason"], "BadRequest") << c.query;
    EXPECT_THAT(r.json()["message"].get<std::string>(), HasSubstr(c.param)) << c.query;
  }
  // An unknown resourceVersionMatch is a ListOptions validation error.
  auto match = client_->get(kPods + "?resourceVersionMatch=Sometimes");
  EXPECT_EQ(match.status, 422) << match.body;
  EXPECT_THAT(match.json()["message"].get<std::string>(), HasSubstr("resourceVersionMatch"));
  // A continue token whose fields have the wrong JSON types.
  std::string token = base64Encode(R"({"v":"meta.k8s.io/v1","rv":"x","start":5})");
  auto r = client_->get(kPods + "?limit=1&continue=" + token);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(client_->get(kPods + "?limit=1").status, 200);
}

// A resourceVersion in a body that is not a number is a 400, not a conflict.
TEST_F(ApiServerInputTest, NonNumericResourceVersionInBodyIs400) {
  startServer();
  createService("t");
  json svc = client_->get(kSvcs + "/t").json();
  svc["metadata"]["resourceVersion"] = "abc";
  auto put = client_->put(kSvcs + "/t", svc);
  EXPECT_EQ(put.status, 400) << put.body;
  EXPECT_THAT(put.json()["message"].get<std::string>(), HasSubstr("resourceVersion"));
  auto patch = client_->request("PATCH", kSvcs + "/t", R"({"metadata":{"resourceVersion":"-3"}})",
                                "application/merge-patch+json");
  EXPECT_EQ(patch.status, 400) << patch.body;
}

// kube-apiserver decodes application/yaml request bodies for create and
// update; other media types are 415.
TEST_F(ApiServerInputTest, YamlBodiesAreDecodedOtherMediaTypesAre415) {
  startServer();
  // Scalars resolve as in go-yaml v2: a label value `y` would be a bool.
  const std::string manifest =
      "apiVersion: v1\nkind: Service\nmetadata:\n  name: ys\n  labels: {app: ys}\n"
      "spec:\n  ports:\n  - port: 80\n    targetPort: http\n  selector:\n    app: ys\n";
  auto created = client_->request("POST", kSvcs, manifest, "application/yaml");
  ASSERT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(created.json()["spec"]["ports"][0]["targetPort"], "http");
  std::string rv = created.json()["metadata"]["resourceVersion"];
  std::string updated = manifest;
  updated.replace(updated.find("{app: ys}"), 9, "{app: ys, rv: \"" + rv + "\"}");
  auto put = client_->request("PUT", kSvcs + "/ys", updated, "application/yaml; charset=utf-8");
  EXPECT_EQ(put.status, 200) << put.body;
  auto bad = client_->request("POST", kSvcs, "metadata: [unclosed\n", "application/yaml");
  EXPECT_EQ(bad.status, 400) << bad.body;
  // Exponential aliases ("billion laughs") must not expand.
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'm'; ++c) {
    std::string prev(1, static_cast<char>(c - 1));
    bomb += std::string(1, c) + ": &" + c + " [*" + prev + ", *" + prev + ", *" + prev + ", *" +
            prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev +
            ", *" + prev + "]\n";
  }
  auto bombed = client_->request("POST", kSvcs, bomb, "application/yaml");
  EXPECT_EQ(bombed.status, 400) << bombed.body.substr(0, 300);
  auto text = client_->request("POST", kSvcs, manifest, "text/plain");
  EXPECT_EQ(text.status, 415) << text.body;
  EXPECT_EQ(text.json()["reason"], "UnsupportedMediaType");
}

// replicas is an int32 that must be >= 0: fractions and values past
// 2^31-1 are decode errors naming spec.replicas, negatives field errors,
// and 1000000000 is accepted, as by Kubernetes.
TEST_F(ApiServerInputTest, ReplicasOutsideInt32AreRejected) {
  startServer();
  for (const char* bad : {"1e9", "2.5", "2147483648", "-2147483649", "\"3\""}) {
    std::string body = deployment(1).dump();
    body.replace(body.find("\"replicas\":1"), 12, std::string("\"replicas\":") + bad);
    auto r = client_->request("POST", kDeploys, body);
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
    EXPECT_THAT(r.json()["message"].get<std::string>(), HasSubstr("spec.replicas")) << bad;
  }
  auto negative = client_->post(kDeploys, deployment(-1));
  EXPECT_EQ(negative.status, 422) << negative.body;
  EXPECT_EQ(negative.json()["details"]["causes"][0]["field"], "spec.replicas");
  ASSERT_EQ(client_->post(kDeploys, deployment(1000000000)).status, 201);
  auto scale =
      client_->request("PATCH", kDeploys + "/web/scale", R"({"spec":{"replicas":4294967296}})",
                       "application/merge-patch+json");
  EXPECT_EQ(scale.status, 400) << scale.body;
  EXPECT_THAT(scale.json()["message"].get<std::string>(), HasSubstr("spec.replicas"));
  auto patch = client_->request("PATCH", kDeploys + "/web", R"({"spec":{"replicas":1.5}})",
                                "application/merge-patch+json");
  EXPECT_EQ(patch.status, 400) << patch.body;
}

// Deeply nested JSON is refused at parse time (Go's decoder has such a
// limit too) instead of recursing the stack away in the patch and codec code.
TEST_F(ApiServerInputTest, DeeplyNestedBodiesAre400) {
  startServer();
  createService("t");
  auto nestedObjects = [](size_t depth) {
    std::string s;
    for (size_t i = 0; i < depth; ++i) s += "{\"a\":";
    s += "1";
    s += std::string(depth, '}');
    return s;
  };
  std::string deep = "{\"metadata\":{\"name\":\"d\"},\"spec\":{\"x\":" + std::string(200000, '[') +
                     std::string(200000, ']') + "}}";
  auto r = client_->request("POST", kSvcs, deep);
  EXPECT_EQ(r.status, 400) << r.body.substr(0, 300);
  auto p = client_->request("PATCH", kSvcs + "/t",
                            "{\"metadata\":{\"labels\":" + nestedObjects(300000) + "}}",
                            "application/merge-patch+json");
  EXPECT_EQ(p.status, 400) << p.body.substr(0, 300);
  EXPECT_EQ(client_->get(kSvcs).status, 200);
}

// Free-form fields (pod affinity is a protobuf Struct here) nested within
// the depth limit are stored and stay readable: every later list of pods
// depends on it.
TEST_F(ApiServerInputTest, NestedFreeFormFieldsStayReadable) {
  startServer();
  std::string affinity;
  for (int i = 0; i < 60; ++i) affinity += "{\"nodeAffinity\":";
  affinity += "{}" + std::string(60, '}');
  std::string body =
      R"({"metadata":{"name":"deep"},"spec":{"containers":[{"name":"c","image":"x"}],"affinity":)" +
      affinity + "}}";
  auto created = client_->request("POST", kPods, body);
  ASSERT_EQ(created.status, 201) << created.body.substr(0, 300);
  EXPECT_EQ(client_->get(kPods + "/deep").status, 200);
  auto list = client_->get(kPods);
  EXPECT_EQ(list.status, 200) << list.body.substr(0, 300);
}

// An existing data directory is tightened to 0700 and every file the
// server writes there is 0600: it holds the CA key, the admin token and
// every Secret.
TEST_F(ApiServerInputTest, DataDirectoryAndFilesAreOwnerOnly) {
  std::filesystem::create_directories(dir_);
  ::chmod(dir_.c_str(), 0755);
  { std::ofstream(dir_ / "state.db").flush(); }
  ::chmod((dir_ / "state.db").c_str(), 0644);
  startServer();
  auto mode = [](const std::filesystem::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode(dir_), 0700u);
  for (const char* f :
       {"state.db", "kubeconfig", "token", "ca.key", "ca.crt", "server.key", "server.crt"}) {
    EXPECT_EQ(mode(dir_ / f), 0600u) << f;
  }
}

// The `kubernetes` Service comes back after a delete, with its address, as
// kube-apiserver's controller recreates it.
TEST_F(ApiServerInputTest, KubernetesServiceIsRecreatedAfterDelete) {
  startServer();
  ASSERT_EQ(client_->del(kSvcs + "/kubernetes").status, 200);
  int status = 0;
  json svc;
  for (int i = 0; i < 200 && status != 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto r = client_->get(kSvcs + "/kubernetes");
    status = r.status;
    svc = r.json();
  }
  ASSERT_EQ(status, 200);
  EXPECT_EQ(svc["spec"]["clusterIP"], "10.96.0.1");
  EXPECT_EQ(svc["spec"]["ports"][0]["port"], 443);
  EXPECT_EQ(svc["spec"]["ports"][0]["targetPort"], server_->port());
  EXPECT_EQ(svc["metadata"]["labels"]["component"], "apiserver");
}

}  // namespace
}  // namespace sluice::server
