// Helpers for the cluster controller tests: a ControlPlane per test, and
// objects written straight through the API (pods get their status — IP,
// phase, Ready — with updateStatus, standing in for a node agent).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "control/client/api_client.h"
#include "tests/control/controllers/control_plane.h"

namespace sluice::testing {

using client::Json;
namespace res = client::resources;

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cp_ = std::make_unique<ControlPlane>(::testing::UnitTest::GetInstance()->current_test_info()->name(), options());
  }
  void TearDown() override { cp_.reset(); }
  virtual ControlPlane::Options options() { return {}; }

  client::ApiClient& api() { return cp_->client(); }

  static Json pod(const std::string& name, Json labels, Json ports = Json::array()) {
    Json c = {{"name", "c"}, {"image", "sluice/echo"}};
    if (!ports.empty()) c["ports"] = ports;
    return {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata", {{"name", name}, {"labels", labels}}},
            {"spec", {{"containers", {c}}}}};
  }

  // Creates a pod and reports it Running with `ip` (none if empty), Ready or
  // not, bound to `node` if given.
  Json runPod(const std::string& ns, Json p, const std::string& ip, bool ready, const std::string& node = "") {
    if (!node.empty()) p["spec"]["nodeName"] = node;
    auto created = api().create(res::kPods, ns, p);
    EXPECT_TRUE(created.ok()) << created.error().message;
    if (!created.ok()) return {};
    return setStatus(ns, client::nameOf(p), ip, ready);
  }

  Json setStatus(const std::string& ns, const std::string& name, const std::string& ip, bool ready,
                 const std::string& transition = "2024-01-01T00:00:00Z") {
    for (int attempt = 0; attempt < 10; ++attempt) {
      auto cur = api().get(res::kPods, ns, name);
      EXPECT_TRUE(cur.ok());
      if (!cur.ok()) return {};
      Json p = *cur;
      p["status"]["phase"] = "Running";
      if (!ip.empty()) {
        p["status"]["podIP"] = ip;
        p["status"]["podIPs"] = Json::array({{{"ip", ip}}});
      }
      p["status"]["conditions"] = Json::array(
          {{{"type", "Ready"}, {"status", ready ? "True" : "False"}, {"lastTransitionTime", transition}}});
      auto r = api().updateStatus(res::kPods, ns, p);
      if (r.ok()) return *r;
      if (r.error().code != ErrorCode::kAborted) {
        ADD_FAILURE() << r.error().message;
        return {};
      }
    }
    ADD_FAILURE() << "status update kept conflicting";
    return {};
  }

  Json service(const std::string& name, Json selector, Json ports) {
    Json s = {{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", {{"name", name}}}, {"spec", {{"ports", ports}}}};
    if (!selector.is_null()) s["spec"]["selector"] = selector;
    auto r = api().create(res::kServices, "default", s);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : Json();
  }

  // The object, or null if it does not exist.
  Json get(const client::Resource& r, const std::string& ns, const std::string& name) {
    auto o = api().get(r, ns, name);
    return o.ok() ? *o : Json();
  }

  Json slicesOf(const std::string& svc) {
    client::ListOptions o;
    o.labelSelector = "kubernetes.io/service-name=" + svc;
    auto l = api().list(res::kEndpointSlices, "default", o);
    return l.ok() ? (*l)["items"] : Json::array();
  }

  static bool eventually(const std::function<bool()>& pred) { return ControlPlane::eventually(pred); }

  std::unique_ptr<ControlPlane> cp_;
};

}  // namespace sluice::testing
