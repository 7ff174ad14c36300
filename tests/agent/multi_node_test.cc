// Two simulated nodes: each a network namespace joined to the other by the
// CNI fabric (cni/fabric.h, plain routes over a shared underlay bridge), each
// with its own PodRuntime (node name, pod CIDR, data directory) against one
// real API server. Echo pods on both nodes; every pod reaches every other by
// pod IP, from inside the client pod's own network namespace, and the answer
// carries the target pod's hostname and IP.
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cni/fabric.h"
#include "tests/agent/agent_fixture.h"

namespace sluice::agent::testing {
namespace {

using std::chrono::seconds;

struct SimulatedNode {
  std::string name;
  std::string podCidr;
  std::unique_ptr<cni::testing::ScopedNetns> netns;
  std::unique_ptr<cni::testing::ScopedDir> data;
  std::unique_ptr<PodRuntime> runtime;
  PodRuntimeOptions options;
};

class MultiNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sluice::testing::ControlPlane::Options o;
    o.startControllers = false;
    cp_ = std::make_unique<sluice::testing::ControlPlane>("agent-multinode", o);
    const std::string pid = std::to_string(::getpid());
    for (int i = 0; i < 2; ++i) {
      SimulatedNode n;
      n.name = "sim" + std::to_string(i + 1) + "-" + pid;
      n.podCidr = "10.252." + std::to_string(i + 1) + ".0/24";
      n.netns = std::make_unique<cni::testing::ScopedNetns>("slmn");
      n.data = std::make_unique<cni::testing::ScopedDir>();
      ASSERT_TRUE(n.netns->ok()) << n.netns->error();
      nodes_.push_back(std::move(n));
    }
    cni::FabricOptions fo;
    fo.mode = cni::FabricMode::kRoutes;
    fo.hubNetnsName = cni::testing::uniqueName("slmnhub");
    fo.underlay = *cni::IpPrefix::parse("172.30.7.0/24");
    std::vector<cni::SimNode> sims;
    for (const SimulatedNode& n : nodes_)
      sims.push_back({n.netns->path(), *cni::IpPrefix::parse(n.podCidr)});
    auto fabric = cni::Fabric::create(fo, sims);
    ASSERT_TRUE(fabric.ok()) << fabric.error().message;
    fabric_ = std::make_unique<cni::Fabric>(std::move(*fabric));
    for (size_t i = 0; i < nodes_.size(); ++i) {
      SimulatedNode& n = nodes_[i];
      n.options.nodeName = n.name;
      n.options.dataDir = n.data->path();
      n.options.cniPluginDirs = {cni::testing::binDir(),
                                 std::string(cni::testing::kReferencePluginDir)};
      n.options.podCidr = n.podCidr;
      n.options.nodeNetnsPath = n.netns->path();
      n.options.hostIp = fabric_->nodeAddress(i).toString();
      n.options.echoCommand = {sluiceBinary(), "echo"};
      n.options.syncPeriod = std::chrono::milliseconds(100);
      auto rt = PodRuntime::start(cp_->client(), n.options);
      ASSERT_TRUE(rt) << rt.error().message;
      n.runtime = std::move(*rt);
    }
  }

  void TearDown() override {
    for (SimulatedNode& n : nodes_) {
      if (n.runtime) n.runtime->stop();
      n.runtime.reset();
      PodRuntime::teardownAll(n.options);
    }
    fabric_.reset();
    nodes_.clear();
    cp_.reset();
  }

  std::unique_ptr<sluice::testing::ControlPlane> cp_;
  std::vector<SimulatedNode> nodes_;
  std::unique_ptr<cni::Fabric> fabric_;
};

TEST_F(MultiNodeTest, EveryPodReachesEveryOtherPodByIp) {
  struct PodInfo {
    std::string name, node, uid, ip, hostIp;
  };
  std::vector<PodInfo> pods;
  const char* placement[][2] = {{"alpha", "0"}, {"beta", "0"}, {"gamma", "1"}, {"delta", "1"}};
  for (const auto& [name, idx] : placement) {
    const SimulatedNode& n = nodes_[static_cast<size_t>(std::stoi(idx))];
    Json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", name}, {"namespace", "default"}}},
                {"spec",
                 {{"nodeName", n.name},
                  {"containers",
                   {{{"name", "echo"},
                     {"image", "sluice/echo"},
                     {"ports", {{{"containerPort", 8080}}}}}}}}}};
    auto created = cp_->client().create(client::resources::kPods, "default", pod);
    ASSERT_TRUE(created) << created.error().message;
    pods.push_back({name, n.name, "", "", n.options.hostIp});
  }
  for (PodInfo& p : pods) {
    Json last;
    bool ready = sluice::testing::ControlPlane::eventually(
        [&] {
          auto got = cp_->client().get(client::resources::kPods, "default", p.name);
          if (!got) return false;
          last = *got;
          if (!last.contains("status") || !last["status"].contains("conditions")) return false;
          for (const Json& c : last["status"]["conditions"]) {
            if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
          }
          return false;
        },
        seconds(60));
    ASSERT_TRUE(ready) << last.dump(2);
    p.uid = last["metadata"]["uid"];
    p.ip = last["status"]["podIP"];
    EXPECT_EQ(last["status"]["hostIP"], p.hostIp) << p.name;
  }
  EXPECT_EQ(pods[0].ip.rfind("10.252.1.", 0), 0u) << pods[0].ip;
  EXPECT_EQ(pods[2].ip.rfind("10.252.2.", 0), 0u) << pods[2].ip;

  for (const PodInfo& from : pods) {
    const std::string fromNetns = cni::Netns::pathOf("sluice-" + from.uid);
    for (const PodInfo& to : pods) {
      if (from.name == to.name) continue;
      SCOPED_TRACE(from.name + " (" + from.ip + ") -> " + to.name + " (" + to.ip + ")");
      std::optional<std::string> body;
      EXPECT_TRUE(sluice::testing::ControlPlane::eventually(
          [&] { return (body = httpGet(fromNetns, to.ip, 8080, "/")).has_value(); }, seconds(20)));
      if (!body) continue;
      EXPECT_NE(body->find("hostname: " + to.name + "\n"), std::string::npos) << *body;
      EXPECT_NE(body->find("pod-ip: " + to.ip + "\n"), std::string::npos) << *body;
      // The echo workload reports the peer it saw: no NAT between pods.
      EXPECT_NE(body->find("client: " + from.ip + ":"), std::string::npos) << *body;
    }
  }
}

}  // namespace
}  // namespace sluice::agent::testing
