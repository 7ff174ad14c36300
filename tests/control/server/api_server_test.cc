// The API server end to end over HTTPS, on a real SQLite file: what kubectl
// and client-go rely on, checked at the HTTP level.
#include "control/server/api_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "control/store/sqlite_store.h"
#include "tests/control/server/https_client.h"
#include "tests/control/server/server_fixture.h"

namespace sluice::server {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::HttpsClient;

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::scratchDir("sluice-api-test");
    startServer();
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  void startServer() {
    ApiServerOptions o = testing::testServerOptions(dir_);
    o.watch.bookmarkInterval = std::chrono::milliseconds(200);
    o.network.loadBalancerPool = "192.0.2.0/29";
    auto s = ApiServer::start(o);
    ASSERT_TRUE(s.ok()) << s.error().message;
    server_ = std::move(*s);
    client_ = std::make_unique<HttpsClient>("127.0.0.1", server_->port(), server_->caCertPem(), server_->token());
  }

  json pod(const std::string& name, json labels = json::object()) {
    return {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata", {{"name", name}, {"labels", labels}}},
            {"spec", {{"containers", {{{"name", "c"}, {"image", "nginx"}}}}}}};
  }

  std::filesystem::path dir_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<HttpsClient> client_;
};

const std::string kPods = "/api/v1/namespaces/default/pods";

TEST_F(ApiServerTest, RejectsMissingOrWrongToken) {
  HttpsClient anonymous("127.0.0.1", server_->port(), server_->caCertPem(), "");
  auto r = anonymous.get(kPods);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.json()["reason"], "Unauthorized");
  HttpsClient wrong("127.0.0.1", server_->port(), server_->caCertPem(), std::string(64, 'a'));
  EXPECT_EQ(wrong.get("/api").status, 401);
  EXPECT_EQ(anonymous.get("/version").status, 200);  // public, as in Kubernetes
  EXPECT_EQ(client_->get(kPods).status, 200);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "kubeconfig"));
}

// A fresh server has the built-in namespaces and the kubernetes Service.
TEST_F(ApiServerTest, BootstrapsClusterObjects) {
  auto ns = client_->get("/api/v1/namespaces").json();
  std::vector<std::string> names;
  for (const auto& i : ns["items"]) names.push_back(i["metadata"]["name"]);
  EXPECT_THAT(names, ::testing::ElementsAre("default", "kube-node-lease", "kube-public", "kube-system"));
  auto svc = client_->get("/api/v1/namespaces/default/services/kubernetes").json();
  EXPECT_EQ(svc["spec"]["clusterIP"], "10.96.0.1");
  auto ep = client_->get("/api/v1/namespaces/default/endpoints/kubernetes").json();
  EXPECT_EQ(ep["subsets"][0]["ports"][0]["port"], server_->port());
}

// create, get, update with the current and a stale resourceVersion, delete.
TEST_F(ApiServerTest, CrudWithOptimisticConcurrency) {
  auto created = client_->post(kPods, pod("web"));
  ASSERT_EQ(created.status, 201) << created.body;
  json obj = created.json();
  EXPECT_FALSE(obj["metadata"]["uid"].get<std::string>().empty());
  EXPECT_EQ(obj["status"]["phase"], "Pending");
  std::string rv = obj["metadata"]["resourceVersion"];
  EXPECT_EQ(client_->post(kPods, pod("web")).json()["reason"], "AlreadyExists");

  obj["metadata"]["labels"]["x"] = "1";
  auto updated = client_->put(kPods + "/web", obj);
  ASSERT_EQ(updated.status, 200) << updated.body;
  EXPECT_NE(updated.json()["metadata"]["resourceVersion"], rv);
  obj["metadata"]["labels"]["x"] = "2";  // still carries the old resourceVersion
  auto stale = client_->put(kPods + "/web", obj);
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(stale.json()["reason"], "Conflict");
  EXPECT_THAT(stale.json()["message"].get<std::string>(),
              HasSubstr("Operation cannot be fulfilled on pods \"web\": the object has been modified"));

  EXPECT_EQ(client_->get(kPods + "/web").json()["metadata"]["labels"]["x"], "1");
  EXPECT_EQ(client_->del(kPods + "/web").status, 200);
  auto gone = client_->get(kPods + "/web");
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(gone.json()["message"], "pods \"web\" not found");
}

TEST_F(ApiServerTest, CreateInMissingNamespaceIs404) {
  auto r = client_->post("/api/v1/namespaces/nope/pods", pod("web"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.json()["message"], "namespaces \"nope\" not found");
}

TEST_F(ApiServerTest, InvalidObjectIs422WithCauses) {
  json p = pod("bad");
  p["spec"]["containers"][0]["ports"] = {{{"containerPort", 70000}}};
  auto r = client_->post(kPods, p);
  ASSERT_EQ(r.status, 422);
  json s = r.json();
  EXPECT_EQ(s["reason"], "Invalid");
  EXPECT_EQ(s["message"], "Pod \"bad\" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: 70000: "
                          "must be between 1 and 65535, inclusive");
  EXPECT_EQ(s["details"]["causes"][0]["field"], "spec.containers[0].ports[0].containerPort");
  // Unknown fields: rejected with Strict, a Warning header with Warn.
  p = pod("typo");
  p["spec"]["containers"][0]["imagePullPolicyy"] = "Always";
  auto strict = client_->post(kPods + "?fieldValidation=Strict", p);
  EXPECT_EQ(strict.status, 400);
  EXPECT_THAT(strict.json()["message"].get<std::string>(),
              HasSubstr("strict decoding error: unknown field \"spec.containers[0].imagePullPolicyy\""));
  auto warn = client_->post(kPods + "?fieldValidation=Warn", p);
  EXPECT_EQ(warn.status, 201);
  EXPECT_EQ(warn.header("Warning"), "299 - \"unknown field \\\"spec.containers[0].imagePullPolicyy\\\"\"");
}

// Set-based label selectors, field selectors, and limit/continue paging at
// one consistent revision.
TEST_F(ApiServerTest, ListWithSelectorsAndPaging) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(client_->post(kPods, pod("p" + std::to_string(i), {{"tier", i % 2 ? "be" : "fe"}, {"n", std::to_string(i)}})).status, 201);
  }
  auto names = [](const json& list) {
    std::vector<std::string> out;
    for (const auto& i : list["items"]) out.push_back(i["metadata"]["name"]);
    return out;
  };
  EXPECT_THAT(names(client_->get(kPods + "?labelSelector=tier%20in%20(be)").json()), ::testing::ElementsAre("p1", "p3"));
  EXPECT_THAT(names(client_->get(kPods + "?labelSelector=tier%3Dfe,n%20notin%20(0,4)").json()), ::testing::ElementsAre("p2"));
  EXPECT_THAT(names(client_->get(kPods + "?fieldSelector=metadata.name%3Dp3").json()), ::testing::ElementsAre("p3"));
  EXPECT_THAT(names(client_->get("/api/v1/pods?fieldSelector=status.phase%3DPending,metadata.namespace%3Ddefault&labelSelector=!tier").json()),
              ::testing::IsEmpty());
  EXPECT_EQ(client_->get(kPods + "?fieldSelector=spec.bogus%3Dx").status, 400);

  auto page1 = client_->get(kPods + "?limit=2").json();
  EXPECT_THAT(names(page1), ::testing::ElementsAre("p0", "p1"));
  std::string token = page1["metadata"]["continue"];
  ASSERT_FALSE(token.empty());
  ASSERT_EQ(client_->del(kPods + "/p2").status, 200);  // pages stay at the first page's revision
  auto page2 = client_->get(kPods + "?limit=2&continue=" + token).json();
  EXPECT_THAT(names(page2), ::testing::ElementsAre("p2", "p3"));
  auto page3 = client_->get(kPods + "?limit=2&continue=" + std::string(page2["metadata"]["continue"])).json();
  EXPECT_THAT(names(page3), ::testing::ElementsAre("p4"));
  EXPECT_FALSE(page3["metadata"].contains("continue"));
}

// A watch resumed from any resourceVersion sees every later change once, in
// order, including a selector's ADDED/DELETED transitions.
TEST_F(ApiServerTest, WatchResumesWithoutGaps) {
  auto first = client_->post(kPods, pod("w0")).json();
  std::string start = first["metadata"]["resourceVersion"];
  std::vector<std::string> expected;
  std::vector<std::string> rvs;
  for (int i = 1; i <= 6; ++i) {
    auto r = client_->post(kPods, pod("w" + std::to_string(i))).json();
    rvs.push_back(r["metadata"]["resourceVersion"]);
    expected.push_back("ADDED w" + std::to_string(i));
  }
  client_->del(kPods + "/w3");
  expected.push_back("DELETED w3");
  auto collect = [&](const std::string& from, size_t n) {
    std::vector<std::string> seen;
    client_->watch(kPods + "?watch=1&resourceVersion=" + from,
                   [&](const json& e) {
                     seen.push_back(e["type"].get<std::string>() + " " + e["object"]["metadata"]["name"].get<std::string>());
                     return seen.size() < n;
                   },
                   std::chrono::seconds(5));
    return seen;
  };
  EXPECT_EQ(collect(start, expected.size()), expected);
  // Resume after the third create: exactly the rest.
  EXPECT_EQ(collect(rvs[2], 4), std::vector<std::string>(expected.begin() + 3, expected.end()));

  // Live events while watching, filtered by a label selector.
  std::vector<std::string> seen;
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    client_->post(kPods, pod("live", {{"app", "x"}}));
    client_->patch(kPods + "/live", {{"metadata", {{"labels", {{"app", "y"}}}}}}, "application/merge-patch+json");
    client_->patch(kPods + "/live", {{"metadata", {{"labels", {{"app", "x"}}}}}}, "application/merge-patch+json");
  });
  std::string now = client_->get(kPods).json()["metadata"]["resourceVersion"];
  client_->watch(kPods + "?watch=true&labelSelector=app%3Dx&resourceVersion=" + now,
                 [&](const json& e) {
                   seen.push_back(e["type"].get<std::string>() + " " + e["object"]["metadata"]["name"].get<std::string>());
                   return seen.size() < 3;
                 },
                 std::chrono::seconds(5));
  writer.join();
  EXPECT_THAT(seen, ::testing::ElementsAre("ADDED live", "DELETED live", "ADDED live"));
}

// Without a resourceVersion a watch starts with the current objects; with
// allowWatchBookmarks it gets BOOKMARKs carrying the latest revision.
TEST_F(ApiServerTest, WatchInitialStateAndBookmarks) {
  client_->post(kPods, pod("a"));
  std::string rv = client_->post(kPods, pod("b")).json()["metadata"]["resourceVersion"];
  std::vector<std::string> seen;
  std::string bookmarkRv;
  client_->watch(kPods + "?watch=1&allowWatchBookmarks=true",
                 [&](const json& e) {
                   seen.push_back(e["type"]);
                   if (e["type"] == "BOOKMARK") {
                     bookmarkRv = e["object"]["metadata"]["resourceVersion"];
                     return false;
                   }
                   return true;
                 },
                 std::chrono::seconds(5));
  EXPECT_THAT(seen, ::testing::ElementsAre("ADDED", "ADDED", "BOOKMARK"));
  EXPECT_GE(std::stoll(bookmarkRv), std::stoll(rv));
}

// History older than the compacted revision is gone: a watch from there gets
// an ERROR event with a 410 Status, a list or continue token a 410.
TEST_F(ApiServerTest, CompactedHistoryIsGone) {
  std::string old = client_->post(kPods, pod("c0")).json()["metadata"]["resourceVersion"];
  for (int i = 1; i < 4; ++i) client_->post(kPods, pod("c" + std::to_string(i)));
  std::string token = client_->get(kPods + "?limit=1").json()["metadata"]["continue"];
  client_->post(kPods, pod("c4"));  // the token's revision is now history
  ASSERT_TRUE(server_->store().compact(*server_->store().currentRevision()).ok());
  json event;
  int status = client_->watch(kPods + "?watch=1&resourceVersion=" + old,
                              [&](const json& e) {
                                event = e;
                                return false;
                              },
                              std::chrono::seconds(5));
  EXPECT_EQ(status, 200);
  EXPECT_EQ(event["type"], "ERROR");
  EXPECT_EQ(event["object"]["code"], 410);
  EXPECT_EQ(event["object"]["reason"], "Expired");
  auto r = client_->get(kPods + "?limit=1&continue=" + token);
  EXPECT_EQ(r.status, 410);
  EXPECT_EQ(client_->get(kPods + "?resourceVersion=" + old + "&resourceVersionMatch=Exact").status, 410);
}

// Finalizers hold a deleted object (with deletionTimestamp) until removed.
TEST_F(ApiServerTest, FinalizersDelayDeletion) {
  json p = pod("fin");
  p["metadata"]["finalizers"] = {"example.com/hold"};
  ASSERT_EQ(client_->post(kPods, p).status, 201);
  auto d = client_->del(kPods + "/fin");
  EXPECT_EQ(d.status, 200);
  auto still = client_->get(kPods + "/fin").json();
  EXPECT_FALSE(still["metadata"]["deletionTimestamp"].get<std::string>().empty());
  auto done = client_->patch(kPods + "/fin", {{"metadata", {{"finalizers", nullptr}}}}, "application/merge-patch+json");
  EXPECT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(client_->get(kPods + "/fin").status, 404);
}

// The three patch types, the scale subresource, and status isolation.
TEST_F(ApiServerTest, PatchScaleAndStatus) {
  const std::string deploys = "/apis/apps/v1/namespaces/default/deployments";
  json d = {{"apiVersion", "apps/v1"},
            {"kind", "Deployment"},
            {"metadata", {{"name", "web"}}},
            {"spec",
             {{"replicas", 3},
              {"selector", {{"matchLabels", {{"app", "web"}}}}},
              {"template",
               {{"metadata", {{"labels", {{"app", "web"}}}}},
                {"spec", {{"containers", {{{"name", "nginx"}, {"image", "nginx:1.16"}, {"ports", {{{"containerPort", 80}}}}}}}}}}}}}};
  ASSERT_EQ(client_->post(deploys, d).status, 201);
  auto smp = client_->patch(deploys + "/web",
                            {{"spec", {{"template", {{"spec", {{"containers", {{{"name", "nginx"}, {"image", "nginx:1.17"}}}}}}}}}}},
                            "application/strategic-merge-patch+json");
  ASSERT_EQ(smp.status, 200) << smp.body;
  EXPECT_EQ(smp.json()["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"], 80);
  EXPECT_EQ(smp.json()["metadata"]["generation"], 2);
  auto jp = client_->patch(deploys + "/web", json::parse(R"([{"op":"replace","path":"/spec/replicas","value":4}])"),
                           "application/json-patch+json");
  EXPECT_EQ(jp.json()["spec"]["replicas"], 4);
  auto scale = client_->get(deploys + "/web/scale").json();
  EXPECT_EQ(scale["kind"], "Scale");
  EXPECT_EQ(scale["spec"]["replicas"], 4);
  EXPECT_EQ(scale["status"]["selector"], "app=web");
  auto scaled = client_->patch(deploys + "/web/scale", {{"spec", {{"replicas", 6}}}}, "application/merge-patch+json");
  EXPECT_EQ(scaled.json()["spec"]["replicas"], 6);
  scale = client_->get(deploys + "/web/scale").json();
  scale["spec"]["replicas"] = 2;
  EXPECT_EQ(client_->put(deploys + "/web/scale", scale).json()["spec"]["replicas"], 2);
  scale["spec"]["replicas"] = 9;  // stale resourceVersion now
  EXPECT_EQ(client_->put(deploys + "/web/scale", scale).status, 409);
  // Status writes change only status; main writes never change status.
  auto st = client_->patch(deploys + "/web/status", {{"status", {{"readyReplicas", 2}}}, {"spec", {{"replicas", 50}}}},
                           "application/merge-patch+json");
  EXPECT_EQ(st.json()["status"]["readyReplicas"], 2);
  EXPECT_EQ(st.json()["spec"]["replicas"], 2);
  auto main = client_->patch(deploys + "/web", {{"status", {{"readyReplicas", 7}}}}, "application/merge-patch+json");
  EXPECT_EQ(main.json()["status"]["readyReplicas"], 2);
}

// Server-side printing: the columns kubectl shows.
TEST_F(ApiServerTest, TableOutput) {
  client_->post(kPods, pod("t"));
  auto r = client_->request("GET", kPods, "", "", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json");
  json t = r.json();
  EXPECT_EQ(t["kind"], "Table");
  std::vector<std::string> cols;
  for (const auto& c : t["columnDefinitions"]) cols.push_back(c["name"]);
  EXPECT_THAT(cols, ::testing::ElementsAre("Name", "Ready", "Status", "Restarts", "Age", "IP", "Node",
                                           "Nominated Node", "Readiness Gates"));
  EXPECT_EQ(t["rows"][0]["cells"][0], "t");
  EXPECT_EQ(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

// Explicit and automatic NodePorts, collision as a field error, release on
// delete, and allocations rebuilt after a restart of the server.
TEST_F(ApiServerTest, ServiceAllocationAcrossRestart) {
  const std::string svcs = "/api/v1/namespaces/default/services";
  auto svc = [](const std::string& name, const std::string& type, int nodePort) {
    json port = {{"port", 80}};
    if (nodePort) port["nodePort"] = nodePort;
    return json{{"metadata", {{"name", name}}}, {"spec", {{"type", type}, {"ports", {port}}, {"selector", {{"app", "x"}}}}}};
  };
  auto a = client_->post(svcs, svc("a", "NodePort", 30000));
  ASSERT_EQ(a.status, 201) << a.body;
  auto b = client_->post(svcs, svc("b", "NodePort", 30000));
  ASSERT_EQ(b.status, 422);
  EXPECT_EQ(b.json()["details"]["causes"][0]["field"], "spec.ports[0].nodePort");
  EXPECT_EQ(b.json()["message"], "Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30000: provided port is already allocated");
  auto lb = client_->post(svcs, svc("lb", "LoadBalancer", 0)).json();
  EXPECT_EQ(lb["status"]["loadBalancer"]["ingress"][0]["ip"], "192.0.2.1");
  std::string lbIp = lb["spec"]["clusterIP"];

  server_.reset();  // restart on the same data directory
  startServer();
  EXPECT_EQ(client_->post(svcs, svc("b", "NodePort", 30000)).status, 422);
  json clash = svc("c", "ClusterIP", 0);
  clash["spec"]["clusterIP"] = lbIp;
  EXPECT_EQ(client_->post(svcs, clash).status, 422);
  ASSERT_EQ(client_->del(svcs + "/a").status, 200);
  EXPECT_EQ(client_->post(svcs, svc("b", "NodePort", 30000)).status, 201);
  // LoadBalancer -> ClusterIP releases the ingress IP and node port.
  auto changed = client_->patch(svcs + "/lb", {{"spec", {{"type", "ClusterIP"}}}}, "application/strategic-merge-patch+json");
  ASSERT_EQ(changed.status, 200) << changed.body;
  EXPECT_FALSE(changed.json()["spec"]["ports"][0].contains("nodePort"));
  EXPECT_FALSE(changed.json()["status"]["loadBalancer"].contains("ingress"));
  auto lb2 = client_->post(svcs, svc("lb2", "LoadBalancer", 0)).json();
  EXPECT_EQ(lb2["status"]["loadBalancer"]["ingress"][0]["ip"], "192.0.2.1");
}

// Namespaces: created and deleted with their contents; default is protected.
TEST_F(ApiServerTest, NamespaceLifecycle) {
  ASSERT_EQ(client_->post("/api/v1/namespaces", {{"metadata", {{"name", "team"}}}}).status, 201);
  ASSERT_EQ(client_->post("/api/v1/namespaces/team/pods", pod("x")).status, 201);
  EXPECT_EQ(client_->del("/api/v1/namespaces/team").status, 200);
  EXPECT_EQ(client_->get("/api/v1/namespaces/team/pods/x").status, 404);
  EXPECT_EQ(client_->get("/api/v1/namespaces/team").status, 404);
  auto r = client_->del("/api/v1/namespaces/default");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.json()["message"], "namespaces \"default\" is forbidden: this namespace may not be deleted");
}

}  // namespace
}  // namespace sluice::server
