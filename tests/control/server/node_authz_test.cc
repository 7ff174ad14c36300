// Node identities (control/server/authz.h): each agent's token is bound to
// its Node, and a node may do what a kubelet may (its Node, its Lease, its
// pods' status) and nothing else — not another node's pods, not any
// Deployment. A real server over HTTPS; each client presents a token as the
// agent's kubeconfig would.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "control/server/api_server.h"
#include "tests/control/server/https_client.h"
#include "tests/control/server/server_fixture.h"

namespace sluice::server {
namespace {

using nlohmann::json;
using testing::HttpsClient;

class NodeAuthzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::scratchDir("sluice-node-authz");
    ApiServerOptions o = testing::testServerOptions(dir_);
    auto s = ApiServer::start(o);
    ASSERT_TRUE(s.ok()) << s.error().message;
    server_ = std::move(*s);
    admin_ = client(server_->token());
    n1_ = client(server_->nodeToken("n1"));
    // Two nodes, a pod on each.
    for (const char* n : {"n1", "n2"}) {
      ASSERT_EQ(admin_->post("/api/v1/nodes", {{"metadata", {{"name", n}}}}).status, 201);
    }
    for (auto [pod, node] : {std::pair{"on-n1", "n1"}, std::pair{"on-n2", "n2"}}) {
      json p = {{"metadata", {{"name", pod}}},
                {"spec", {{"nodeName", node}, {"containers", {{{"name", "c"}, {"image", "sluice/echo"}}}}}}};
      ASSERT_EQ(admin_->post("/api/v1/namespaces/default/pods", p).status, 201);
    }
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<HttpsClient> client(const std::string& token) {
    return std::make_unique<HttpsClient>("127.0.0.1", server_->port(), server_->caCertPem(), token);
  }
  static json runningStatus() {
    return {{"status", {{"phase", "Running"}, {"podIP", "10.244.0.5"}}}};
  }

  std::filesystem::path dir_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<HttpsClient> admin_;
  std::unique_ptr<HttpsClient> n1_;
};

// A node reads what its agent and proxy watch.
TEST_F(NodeAuthzTest, NodeReadsPodsServicesAndEndpointSlices) {
  EXPECT_EQ(n1_->get("/api/v1/pods").status, 200);
  EXPECT_EQ(n1_->get("/api/v1/services").status, 200);
  EXPECT_EQ(n1_->get("/apis/discovery.k8s.io/v1/endpointslices").status, 200);
  EXPECT_EQ(n1_->get("/api/v1/nodes/n2").status, 200);
  EXPECT_EQ(n1_->get("/api").status, 200);  // discovery
}

// Its own pods' status, yes; another node's pods, no — neither their
// status nor deleting them.
TEST_F(NodeAuthzTest, NodeChangesOnlyItsOwnPods) {
  const std::string pods = "/api/v1/namespaces/default/pods/";
  auto own = n1_->patch(pods + "on-n1/status", runningStatus(), "application/merge-patch+json");
  EXPECT_EQ(own.status, 200) << own.body;
  auto other = n1_->patch(pods + "on-n2/status", runningStatus(), "application/merge-patch+json");
  EXPECT_EQ(other.status, 403) << other.body;
  EXPECT_EQ(other.json()["reason"], "Forbidden");
  EXPECT_NE(other.json()["message"].get<std::string>().find("User \"system:node:n1\" cannot patch resource "
                                                            "\"pods/status\""),
            std::string::npos)
      << other.body;
  EXPECT_EQ(n1_->del(pods + "on-n2").status, 403);
  // The pod's spec is the scheduler's and the user's, not the node's.
  EXPECT_EQ(n1_->patch(pods + "on-n1", {{"metadata", {{"labels", {{"x", "y"}}}}}}, "application/merge-patch+json")
                .status,
            403);
  EXPECT_EQ(admin_->get(pods + "on-n2").json()["status"].value("phase", ""), "Pending");
}

// No workload objects at all: a compromised node must not change what runs
// elsewhere.
TEST_F(NodeAuthzTest, NodeCannotTouchDeployments) {
  json d = {{"metadata", {{"name", "web"}}},
            {"spec",
             {{"selector", {{"matchLabels", {{"app", "web"}}}}},
              {"template",
               {{"metadata", {{"labels", {{"app", "web"}}}}},
                {"spec", {{"containers", {{{"name", "c"}, {"image", "sluice/echo"}}}}}}}}}}};
  auto created = n1_->post("/apis/apps/v1/namespaces/default/deployments", d);
  EXPECT_EQ(created.status, 403) << created.body;
  ASSERT_EQ(admin_->post("/apis/apps/v1/namespaces/default/deployments", d).status, 201);
  EXPECT_EQ(n1_->patch("/apis/apps/v1/namespaces/default/deployments/web", {{"spec", {{"replicas", 50}}}},
                       "application/merge-patch+json")
                .status,
            403);
  EXPECT_EQ(n1_->del("/apis/apps/v1/namespaces/default/deployments/web").status, 403);
  EXPECT_EQ(n1_->get("/apis/apps/v1/namespaces/default/replicasets").status, 403);
}

// The API server's /metrics is for admins (and the Prometheus they give
// the admin token): cluster-wide request and object counts are not a
// node's to read.
TEST_F(NodeAuthzTest, MetricsAreForAdminsOnly) {
  auto denied = n1_->get("/metrics");
  EXPECT_EQ(denied.status, 403) << denied.body;
  auto served = admin_->get("/metrics");
  EXPECT_EQ(served.status, 200);
  EXPECT_NE(served.body.find("apiserver_request_total"), std::string::npos);
}

// Its own Node and Lease, not another node's.
TEST_F(NodeAuthzTest, NodeWritesItsOwnNodeAndLease) {
  json ready = {{"status", {{"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
  EXPECT_EQ(n1_->patch("/api/v1/nodes/n1/status", ready, "application/merge-patch+json").status, 200);
  EXPECT_EQ(n1_->patch("/api/v1/nodes/n2/status", ready, "application/merge-patch+json").status, 403);
  // kube-node-lease exists from the start (the server makes it, as kube-apiserver does).
  auto lease = [](const char* name) {
    return json{{"metadata", {{"name", name}}}, {"spec", {{"holderIdentity", name}, {"leaseDurationSeconds", 40}}}};
  };
  const std::string leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
  auto own = n1_->post(leases, lease("n1"));
  EXPECT_EQ(own.status, 201) << own.body;
  EXPECT_EQ(n1_->post(leases, lease("n2")).status, 403);
}

// A token for one node, edited to name another, or with its MAC altered,
// is no identity at all.
TEST_F(NodeAuthzTest, ForgedNodeTokensAreUnauthorized) {
  const std::string good = server_->nodeToken("n1");
  const std::string mac = good.substr(good.rfind('.') + 1);
  EXPECT_EQ(client("sluice-node.n2." + mac)->get("/api/v1/pods").status, 401);
  std::string flipped = good;
  flipped.back() = flipped.back() == '0' ? '1' : '0';
  EXPECT_EQ(client(flipped)->get("/api/v1/pods").status, 401);
  EXPECT_EQ(client("sluice-node.n1.")->get("/api/v1/pods").status, 401);
  EXPECT_NE(server_->nodeToken("n1"), server_->nodeToken("n2"));
}

}  // namespace
}  // namespace sluice::server
