// Node registration and heartbeat against a real in-process server: the
// agent creates its Node (addresses, capacity/allocatable, podCIDR, Ready),
// renews the Ready condition's lastHeartbeatTime and the Lease
// kube-node-lease/<node>, keeps a podCIDR the server already has, and
// re-registers a Node deleted under it. Needs no privileges.
#include "control/agent/runtime/node_agent.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "tests/control/controllers/control_plane.h"

namespace sluice::agent {
namespace {

using Json = nlohmann::json;
using std::chrono::seconds;

class NodeAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sluice::testing::ControlPlane::Options o;
    o.startControllers = false;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    cp_ = std::make_unique<sluice::testing::ControlPlane>(std::string("node-") + info->name(), o);
    name_ = "node-" + std::to_string(::getpid());
  }

  NodeAgentOptions options() const {
    NodeAgentOptions o;
    o.nodeName = name_;
    o.internalIp = "192.0.2.10";
    o.podCidr = "10.251.3.0/24";
    o.heartbeat = std::chrono::milliseconds(300);
    return o;
  }

  client::ApiClient& client() { return cp_->client(); }
  Json node() {
    auto n = client().get(client::resources::kNodes, "", name_);
    return n ? *n : Json();
  }
  static const Json* ready(const Json& node) {
    if (!node.contains("status") || !node["status"].contains("conditions")) return nullptr;
    for (const Json& c : node["status"]["conditions"]) {
      if (c.value("type", "") == "Ready") return &c;
    }
    return nullptr;
  }

  std::unique_ptr<sluice::testing::ControlPlane> cp_;
  std::string name_;
};

TEST_F(NodeAgentTest, RegistersNodeAndHeartbeats) {
  auto agent = NodeAgent::start(client(), options());
  ASSERT_TRUE(agent) << agent.error().message;
  EXPECT_EQ((*agent)->podCidr(), "10.251.3.0/24");
  Json n = node();
  ASSERT_FALSE(n.is_null());
  EXPECT_EQ(n["spec"]["podCIDR"], "10.251.3.0/24");
  EXPECT_EQ(n["metadata"]["labels"]["kubernetes.io/hostname"], name_);
  bool internal = false;
  for (const Json& a : n["status"]["addresses"]) {
    if (a["type"] == "InternalIP") internal = a["address"] == "192.0.2.10";
  }
  EXPECT_TRUE(internal) << n["status"].dump(2);
  const Json& alloc = n["status"]["allocatable"];
  EXPECT_EQ(alloc["pods"], "110");
  EXPECT_EQ(alloc["cpu"], std::to_string(::sysconf(_SC_NPROCESSORS_ONLN)));
  EXPECT_NE(alloc.value("memory", "").find("Ki"), std::string::npos);
  const Json* r = ready(n);
  ASSERT_NE(r, nullptr) << n.dump(2);
  EXPECT_EQ((*r)["status"], "True");
  const std::string firstBeat = (*r)["lastHeartbeatTime"];
  const std::string transition = (*r)["lastTransitionTime"];

  auto lease = client().get(client::resources::kLeases, "kube-node-lease", name_);
  ASSERT_TRUE(lease) << lease.error().message;
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], name_);
  const std::string firstRenew = (*lease)["spec"]["renewTime"];

  // Times have one-second resolution on the Node: wait for a later one.
  std::string beat;
  EXPECT_TRUE(sluice::testing::ControlPlane::eventually(
      [&] {
        const Json current = node();
        const Json* c = ready(current);
        beat = c != nullptr ? c->value("lastHeartbeatTime", "") : "";
        return !beat.empty() && beat > firstBeat;
      },
      seconds(20)))
      << beat;
  const Json later = node();
  ASSERT_NE(ready(later), nullptr);
  EXPECT_EQ((*ready(later))["lastTransitionTime"], transition) << "a heartbeat is not a transition";
  std::string renew;
  EXPECT_TRUE(sluice::testing::ControlPlane::eventually(
      [&] {
        auto l = client().get(client::resources::kLeases, "kube-node-lease", name_);
        renew = l ? (*l)["spec"].value("renewTime", "") : "";
        return renew > firstRenew;
      },
      seconds(20)))
      << renew;

  // Deleted under a running agent: the next heartbeat registers it again.
  ASSERT_TRUE(client().remove(client::resources::kNodes, "", name_));
  EXPECT_TRUE(sluice::testing::ControlPlane::eventually(
      [&] {
        Json again = node();
        return !again.is_null() && ready(again) != nullptr;
      },
      seconds(20)));
  (*agent)->stop();
}

// A Node the server (or an operator) created with a podCIDR keeps it; the
// agent reports the one it found.
TEST_F(NodeAgentTest, KeepsExistingPodCidr) {
  Json n = {{"apiVersion", "v1"},
            {"kind", "Node"},
            {"metadata", {{"name", name_}}},
            {"spec", {{"podCIDR", "10.251.9.0/24"}, {"podCIDRs", {"10.251.9.0/24"}}}}};
  ASSERT_TRUE(client().create(client::resources::kNodes, "", n));
  auto agent = NodeAgent::start(client(), options());
  ASSERT_TRUE(agent) << agent.error().message;
  EXPECT_EQ((*agent)->podCidr(), "10.251.9.0/24");
  const Json current = node();
  EXPECT_EQ(current["spec"]["podCIDR"], "10.251.9.0/24");
  const Json* r = ready(current);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ((*r)["status"], "True");
}

// Without --pod-cidr: the agent registers its Node without one and waits;
// when the server (here the test, standing in for node IPAM) sets
// spec.podCIDR, that is what it returns.
TEST_F(NodeAgentTest, AwaitPodCidrReturnsTheServerAssignedCidr) {
  std::thread ipam([&] {
    for (int i = 0; i < 250; ++i) {  // up to 5 s for the agent's Node to appear
      if (!node().is_null()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_EQ(node().value("/spec/podCIDR"_json_pointer, std::string()), "") << "registered without a CIDR";
    auto r = client().patch(client::resources::kNodes, "", name_,
                            Json{{"spec", {{"podCIDR", "10.251.7.0/24"}, {"podCIDRs", {"10.251.7.0/24"}}}}});
    EXPECT_TRUE(r) << r.error().message;
  });
  auto cidr = NodeAgent::awaitPodCidr(client(), name_, seconds(30));
  ipam.join();
  ASSERT_TRUE(cidr) << cidr.error().message;
  EXPECT_EQ(*cidr, "10.251.7.0/24");
  // The full registration that follows keeps it.
  NodeAgentOptions o = options();
  o.podCidr = *cidr;
  auto agent = NodeAgent::start(client(), o);
  ASSERT_TRUE(agent) << agent.error().message;
  EXPECT_EQ((*agent)->podCidr(), "10.251.7.0/24");
  EXPECT_NE(ready(node()), nullptr);
}

// Nobody assigns a CIDR: the wait ends at its bound with an error that
// says what to check.
TEST_F(NodeAgentTest, AwaitPodCidrTimesOutWithAClearError) {
  auto cidr = NodeAgent::awaitPodCidr(client(), name_, std::chrono::milliseconds(600));
  ASSERT_FALSE(cidr);
  EXPECT_EQ(cidr.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(cidr.error().message.find("node " + name_ + ": no spec.podCIDR after"), std::string::npos)
      << cidr.error().message;
  EXPECT_NE(cidr.error().message.find("--cluster-cidr"), std::string::npos) << cidr.error().message;
  EXPECT_NE(cidr.error().message.find("--pod-cidr"), std::string::npos) << cidr.error().message;
  EXPECT_FALSE(node().is_null()) << "the Node is registered while waiting";
}

}  // namespace
}  // namespace sluice::agent
