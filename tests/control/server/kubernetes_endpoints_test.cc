// The `kubernetes` Service's backends, as kube-apiserver's endpoint
// reconciler keeps them: a real server on a real SQLite file writes
// Endpoints and EndpointSlice default/kubernetes with its advertise address
// and secure port, re-creates them when deleted, restores them when edited,
// leaves them alone (no resourceVersion churn) when they are right, and
// kubectl shows them; the serving certificate covers the addresses pods
// reach the server at.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "control/client/api_client.h"
#include "control/server/api_server.h"
#include "tests/control/server/server_fixture.h"

namespace sluice::server {
namespace {

using client::Json;
namespace res = client::resources;

bool eventually(const std::function<bool()>& pred, std::chrono::seconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

class KubernetesEndpointsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::scratchDir("sluice-kep");
    ApiServerOptions o = testing::testServerOptions(dir_);
    // TEST-NET-1: never routed; only written into objects here.
    o.advertiseAddress = "192.0.2.44";
    o.kubernetesEndpointsInterval = std::chrono::milliseconds(100);
    auto s = ApiServer::start(o);
    ASSERT_TRUE(s.ok()) << s.error().message;
    server_ = std::move(*s);
    auto kc = client::Kubeconfig::load(server_->kubeconfigPath());
    ASSERT_TRUE(kc.ok()) << kc.error().message;
    auto c = client::ApiClient::create(*kc, "kubernetes-endpoints-test");
    ASSERT_TRUE(c.ok()) << c.error().message;
    client_ = std::move(*c);
  }
  void TearDown() override {
    client_.reset();
    if (server_) server_->stop();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  // The object, or {} while it does not exist.
  Json get(const client::Resource& r) {
    auto o = client_->get(r, "default", "kubernetes");
    return o.ok() ? *o : Json::object();
  }
  // The expected objects, for this server's port.
  Json expectedSubsets() const {
    return Json::array({{{"addresses", {{{"ip", "192.0.2.44"}}}},
                         {"ports", {{{"name", "https"}, {"port", server_->port()}, {"protocol", "TCP"}}}}}});
  }
  bool sliceIsRight(const Json& s) const {
    return s.value("addressType", "") == "IPv4" &&
           s.value("endpoints", Json()) ==
               Json::array({{{"addresses", {"192.0.2.44"}}, {"conditions", {{"ready", true}}}}}) &&
           s.value("ports", Json()) ==
               Json::array({{{"name", "https"}, {"port", server_->port()}, {"protocol", "TCP"}}}) &&
           s.value("/metadata/labels/kubernetes.io~1service-name"_json_pointer, std::string()) == "kubernetes";
  }

  std::filesystem::path dir_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<client::ApiClient> client_;
};

// Right after start both objects name the advertise address and the
// server's real port, named "https"; the Service maps 443 to that port.
TEST_F(KubernetesEndpointsTest, WrittenOnStartWithAdvertiseAddressAndPort) {
  Json ep = get(res::kEndpoints);
  EXPECT_EQ(ep.value("subsets", Json()), expectedSubsets()) << ep.dump();
  EXPECT_EQ(ep.value("/metadata/labels/endpointslice.kubernetes.io~1skip-mirror"_json_pointer, std::string()),
            "true");
  Json slice = get(res::kEndpointSlices);
  EXPECT_TRUE(sliceIsRight(slice)) << slice.dump();
  Json svc = get(res::kServices);
  EXPECT_EQ(svc.value("/spec/ports/0/port"_json_pointer, 0), 443);
  EXPECT_EQ(svc.value("/spec/ports/0/targetPort"_json_pointer, 0), server_->port());
  // Found by the label the proxy groups slices by.
  client::ListOptions lo;
  lo.labelSelector = "kubernetes.io/service-name=kubernetes";
  auto l = client_->list(res::kEndpointSlices, "default", lo);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ((*l)["items"].size(), 1u);
}

// Deleted objects come back; edited ones are restored.
TEST_F(KubernetesEndpointsTest, RecreatedWhenDeletedAndRestoredWhenEdited) {
  ASSERT_TRUE(client_->remove(res::kEndpoints, "default", "kubernetes").ok());
  ASSERT_TRUE(client_->remove(res::kEndpointSlices, "default", "kubernetes").ok());
  EXPECT_TRUE(eventually([&] { return get(res::kEndpoints).value("subsets", Json()) == expectedSubsets(); }));
  EXPECT_TRUE(eventually([&] { return sliceIsRight(get(res::kEndpointSlices)); }));

  Json ep = get(res::kEndpoints);
  ep["subsets"][0]["addresses"][0]["ip"] = "198.51.100.9";
  ASSERT_TRUE(client_->update(res::kEndpoints, "default", ep).ok());
  Json slice = get(res::kEndpointSlices);
  slice["endpoints"] = Json::array();
  ASSERT_TRUE(client_->update(res::kEndpointSlices, "default", slice).ok());
  EXPECT_TRUE(eventually([&] { return get(res::kEndpoints).value("subsets", Json()) == expectedSubsets(); }));
  EXPECT_TRUE(eventually([&] { return sliceIsRight(get(res::kEndpointSlices)); }));
}

// Correct objects are not rewritten: their resourceVersions stay put over
// many reconcile passes (so watchers see no churn).
TEST_F(KubernetesEndpointsTest, NoRewriteWhenUnchanged) {
  std::string epRv = get(res::kEndpoints).value("/metadata/resourceVersion"_json_pointer, std::string());
  std::string sliceRv = get(res::kEndpointSlices).value("/metadata/resourceVersion"_json_pointer, std::string());
  ASSERT_FALSE(epRv.empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));  // ~10 passes
  EXPECT_EQ(get(res::kEndpoints).value("/metadata/resourceVersion"_json_pointer, std::string()), epRv);
  EXPECT_EQ(get(res::kEndpointSlices).value("/metadata/resourceVersion"_json_pointer, std::string()), sliceRv);
}

std::string run(const std::string& cmd, int* status) {
  std::string out;
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (f == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  *status = ::pclose(f);
  return out;
}

// In-cluster clients dial the Service's ClusterIP and land on the advertise
// address: the serving certificate names both.
TEST_F(KubernetesEndpointsTest, ServingCertificateNamesServiceIpAndAdvertiseAddress) {
  int rc = 0;
  std::string out = run("openssl x509 -noout -ext subjectAltName -in " + (dir_ / "server.crt").string(), &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("IP Address:192.0.2.44"), std::string::npos) << out;
  EXPECT_NE(out.find("IP Address:10.96.0.1"), std::string::npos) << out;
}

// `kubectl get endpoints kubernetes` and `kubectl get endpointslices` show
// the address and port.
TEST_F(KubernetesEndpointsTest, KubectlShowsThem) {
  if (::access("/usr/bin/kubectl", X_OK) != 0) GTEST_SKIP() << "/usr/bin/kubectl is not installed";
  std::string k = "KUBECONFIG=" + server_->kubeconfigPath() + " /usr/bin/kubectl ";
  std::string addr = "192.0.2.44:" + std::to_string(server_->port());
  int rc = 0;
  std::string out = run(k + "get endpoints kubernetes", &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find(addr), std::string::npos) << out;
  out = run(k + "get endpointslices -l kubernetes.io/service-name=kubernetes", &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("kubernetes"), std::string::npos) << out;
  EXPECT_NE(out.find("IPv4"), std::string::npos) << out;
  EXPECT_NE(out.find(std::to_string(server_->port())), std::string::npos) << out;
  EXPECT_NE(out.find("192.0.2.44"), std::string::npos) << out;
}

}  // namespace
}  // namespace sluice::server
