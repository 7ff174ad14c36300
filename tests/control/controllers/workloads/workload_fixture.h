// Shared pieces of the workload controller tests: a control plane running
// only the workload controllers (ManualClock), hollow nodes with their own
// client (so they survive ControlPlane::restart()), and object builders.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "control/client/api_client.h"
#include "control/controllers/workloads/pod_util.h"
#include "tests/control/controllers/control_plane.h"
#include "tests/control/controllers/hollow_node.h"

namespace sluice::testing {

using client::Json;
namespace res = client::resources;

class WorkloadTest : public ::testing::Test {
 protected:
  // Controllers under test (the cluster controllers stay off, so nothing
  // else moves pods around).
  virtual std::vector<std::string> controllers() const { return {"replicaset", "deployment", "garbagecollector"}; }

  void SetUp() override {
    ControlPlane::Options o;
    o.manager.only = controllers();
    std::string tag = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    cp_ = std::make_unique<ControlPlane>(tag, o);
    auto kc = client::Kubeconfig::load(cp_->server().kubeconfigPath());
    ASSERT_TRUE(kc.ok()) << kc.error().message;
    auto c = client::ApiClient::create(*kc, "hollow-node");
    ASSERT_TRUE(c.ok()) << c.error().message;
    nodeClient_ = std::move(*c);
  }

  void TearDown() override {
    if (nodes_) nodes_->stop();
    nodes_.reset();
    nodeClient_.reset();
    cp_.reset();
  }

  void startNodes(int count = 2, bool bind = true) {
    HollowNodeOptions o;
    for (int i = 0; i < count; ++i) o.names.push_back("hollow-" + std::to_string(i));
    o.bindUnscheduled = bind;
    o.clock = &cp_->clock();
    o.heartbeat = std::chrono::milliseconds(500);
    auto n = HollowNodes::start(*nodeClient_, o);
    ASSERT_TRUE(n.ok()) << n.error().message;
    nodes_ = std::move(*n);
  }

  client::ApiClient& api() { return cp_->client(); }

  static Json podTemplate(const Json& labels, const std::string& image = "sluice/echo:1") {
    return {{"metadata", {{"labels", labels}}},
            {"spec", {{"containers", {{{"name", "app"}, {"image", image}}}}}}};
  }

  static Json replicaSet(const std::string& name, int replicas, const Json& labels) {
    return {{"apiVersion", "apps/v1"},
            {"kind", "ReplicaSet"},
            {"metadata", {{"name", name}}},
            {"spec", {{"replicas", replicas}, {"selector", {{"matchLabels", labels}}}, {"template", podTemplate(labels)}}}};
  }

  static Json barePod(const std::string& name, const Json& labels) {
    return {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata", {{"name", name}, {"labels", labels}}},
            {"spec", {{"containers", {{{"name", "app"}, {"image", "sluice/echo:1"}}}}}}};
  }

  // Pods in "default" (all, or with this label selector).
  std::vector<Json> pods(const std::string& selector = {}) {
    client::ListOptions o;
    o.labelSelector = selector;
    auto l = api().list(res::kPods, "default", o);
    EXPECT_TRUE(l.ok()) << l.error().message;
    std::vector<Json> out;
    if (l) {
      for (const auto& p : (*l)["items"]) out.push_back(p);
    }
    return out;
  }

  std::vector<Json> podsOwnedBy(const std::string& uid) {
    std::vector<Json> out;
    for (const auto& p : pods()) {
      if (controllers::workloads::controlledBy(p, uid)) out.push_back(p);
    }
    return out;
  }

  Json get(const client::Resource& r, const std::string& name) {
    auto o = api().get(r, "default", name);
    return o ? *o : Json();
  }

  static int status(const Json& obj, const char* field) { return controllers::workloads::statusInt(obj, field); }

  static bool eventually(const std::function<bool()>& pred,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return ControlPlane::eventually(pred, timeout);
  }

  std::unique_ptr<ControlPlane> cp_;
  std::unique_ptr<client::ApiClient> nodeClient_;
  std::unique_ptr<HollowNodes> nodes_;
};

}  // namespace sluice::testing
