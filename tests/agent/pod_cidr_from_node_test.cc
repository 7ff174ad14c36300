// Two real `sluice agent` processes started WITHOUT --pod-cidr, each on a
// simulated node (its own network namespace and data directory), against
// one in-process server running the node IPAM controller: each agent
// registers its Node, waits for the server to set spec.podCIDR, and runs its
// pods on that CIDR. The CIDRs are distinct /24s of the cluster CIDR, every
// pod's IP is inside its node's, and once the nodes are joined by the CNI
// fabric (plain routes for the allocated CIDRs) pods reach each other
// across nodes.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cni/fabric.h"
#include "cni/ip_prefix.h"
#include "tests/agent/agent_fixture.h"

namespace sluice::agent::testing {
namespace {

using std::chrono::seconds;

constexpr const char* kClusterCidr = "10.253.0.0/16";

struct AgentNode {
  std::string name;
  std::unique_ptr<cni::testing::ScopedNetns> netns;
  std::unique_ptr<cni::testing::ScopedDir> data;
  pid_t pid = -1;
  std::string podCidr;
};

class PodCidrFromNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sluice::testing::ControlPlane::Options o;
    o.manager.only = {"nodeipam"};
    o.manager.nodeIpam.clusterCidr = kClusterCidr;
    o.manager.nodeIpam.nodeCidrMaskSize = 24;
    cp_ = std::make_unique<sluice::testing::ControlPlane>("agent-podcidr", o);
    const std::string pid = std::to_string(::getpid());
    for (int i = 0; i < 2; ++i) {
      AgentNode n;
      n.name = "cidr" + std::to_string(i + 1) + "-" + pid;
      n.netns = std::make_unique<cni::testing::ScopedNetns>("slpc");
      n.data = std::make_unique<cni::testing::ScopedDir>();
      ASSERT_TRUE(n.netns->ok()) << n.netns->error();
      nodes_.push_back(std::move(n));
    }
  }

  void TearDown() override {
    for (AgentNode& n : nodes_) {
      if (n.pid > 0) {
        ::kill(n.pid, SIGTERM);
        int status = 0;
        ::waitpid(n.pid, &status, 0);
      }
      // The agent leaves pods running on exit; remove what it recorded.
      PodRuntimeOptions ro;
      ro.nodeName = n.name;
      ro.dataDir = n.data->path();
      ro.nodeNetnsPath = n.netns->path();
      ro.cniPluginDirs = {cni::testing::binDir(), std::string(cni::testing::kReferencePluginDir)};
      if (!n.podCidr.empty()) ro.podCidr = n.podCidr;
      PodRuntime::teardownAll(ro);
    }
    fabric_.reset();
    nodes_.clear();
    cp_.reset();
  }

  // `sluice agent` for node `n`, no --pod-cidr, no proxy; output to its log.
  void startAgent(AgentNode& n) {
    std::vector<std::string> args = {sluiceBinary(),
                                     "agent",
                                     "--kubeconfig",
                                     cp_->server().kubeconfigPath(),
                                     "--node-name",
                                     n.name,
                                     "--data-dir",
                                     n.data->path(),
                                     "--node-netns",
                                     n.netns->path(),
                                     "--cni-bin-dir",
                                     cni::testing::binDir(),
                                     "--cni-bin-dir",
                                     std::string(cni::testing::kReferencePluginDir),
                                     "--mode",
                                     "none",
                                     // Two agents on one host: no fixed port.
                                     "--streaming-address",
                                     "127.0.0.1",
                                     "--streaming-port",
                                     "0"};
    std::string log = logPath(n);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    n.pid = pid;
  }

  static std::string logPath(const AgentNode& n) { return n.data->path() + "/agent.log"; }
  static std::string readLog(const AgentNode& n) {
    std::ifstream in(logPath(n));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::unique_ptr<sluice::testing::ControlPlane> cp_;
  std::vector<AgentNode> nodes_;
  std::unique_ptr<cni::Fabric> fabric_;
};

TEST_F(PodCidrFromNodeTest, AgentsWithoutPodCidrUseDistinctServerAssignedCidrs) {
  for (AgentNode& n : nodes_) startAgent(n);
  auto cluster = *cni::IpPrefix::parse(kClusterCidr);
  for (AgentNode& n : nodes_) {
    // The agent is up once its Node reports Ready (status comes after the
    // CIDR wait), and says which CIDR its pods use.
    bool up = sluice::testing::ControlPlane::eventually(
        [&] { return readLog(n).find("ready (pod CIDR ") != std::string::npos; }, seconds(90));
    ASSERT_TRUE(up) << readLog(n);
    auto node = cp_->client().get(client::resources::kNodes, "", n.name);
    ASSERT_TRUE(node) << node.error().message;
    n.podCidr = node->value("/spec/podCIDR"_json_pointer, std::string());
    auto prefix = cni::IpPrefix::parse(n.podCidr);
    ASSERT_TRUE(prefix) << n.podCidr;
    EXPECT_EQ(prefix->length(), 24) << n.podCidr;
    EXPECT_TRUE(cluster.contains(prefix->address())) << n.podCidr;
    EXPECT_NE(readLog(n).find("ready (pod CIDR " + n.podCidr + ")"), std::string::npos) << readLog(n);
    EXPECT_NE(readLog(n).find("waiting for the server to assign the Node a pod CIDR node=" + n.name), std::string::npos)
        << "the agent should have registered without a CIDR and waited: " << readLog(n);
  }
  ASSERT_NE(nodes_[0].podCidr, nodes_[1].podCidr);

  cni::FabricOptions fo;
  fo.mode = cni::FabricMode::kRoutes;
  fo.hubNetnsName = cni::testing::uniqueName("slpchub");
  fo.underlay = *cni::IpPrefix::parse("172.30.9.0/24");
  std::vector<cni::SimNode> sims;
  for (const AgentNode& n : nodes_) sims.push_back({n.netns->path(), *cni::IpPrefix::parse(n.podCidr)});
  auto fabric = cni::Fabric::create(fo, sims);
  ASSERT_TRUE(fabric.ok()) << fabric.error().message;
  fabric_ = std::make_unique<cni::Fabric>(std::move(*fabric));

  struct PodInfo {
    std::string name, uid, ip;
    size_t node;
  };
  std::vector<PodInfo> pods = {{"left", "", "", 0}, {"right", "", "", 1}};
  for (const PodInfo& p : pods) {
    Json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", p.name}, {"namespace", "default"}}},
                {"spec",
                 {{"nodeName", nodes_[p.node].name},
                  {"containers",
                   {{{"name", "echo"}, {"image", "sluice/echo"}, {"ports", {{{"containerPort", 8080}}}}}}}}}};
    auto created = cp_->client().create(client::resources::kPods, "default", pod);
    ASSERT_TRUE(created) << created.error().message;
  }
  for (PodInfo& p : pods) {
    Json last;
    bool ready = sluice::testing::ControlPlane::eventually(
        [&] {
          auto got = cp_->client().get(client::resources::kPods, "default", p.name);
          if (!got) return false;
          last = *got;
          for (const Json& c : last.value("/status/conditions"_json_pointer, Json::array())) {
            if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
          }
          return false;
        },
        seconds(60));
    ASSERT_TRUE(ready) << last.dump(2) << "\n" << readLog(nodes_[p.node]);
    p.uid = last["metadata"]["uid"];
    p.ip = last["status"]["podIP"];
    std::cout << "pod " << p.name << " on " << nodes_[p.node].name << " (podCIDR " << nodes_[p.node].podCidr
              << "): " << p.ip << "\n";
    auto ip = IpAddress::parse(p.ip);
    ASSERT_TRUE(ip) << p.ip;
    EXPECT_TRUE(cni::IpPrefix::parse(nodes_[p.node].podCidr)->contains(*ip))
        << p.name << " " << p.ip << " not in " << nodes_[p.node].podCidr;
  }
  // Across nodes, through routes for the server-assigned CIDRs.
  for (const PodInfo& from : pods) {
    const PodInfo& to = from.node == 0 ? pods[1] : pods[0];
    std::optional<std::string> body;
    EXPECT_TRUE(sluice::testing::ControlPlane::eventually(
        [&] { return (body = httpGet(cni::Netns::pathOf("sluice-" + from.uid), to.ip, 8080, "/")).has_value(); },
        seconds(20)))
        << from.name << " -> " << to.name << " (" << to.ip << ")";
    std::cout << from.name << " -> " << to.name << " (" << to.ip << "): " << (body ? "answered" : "no answer") << "\n";
    if (body) {
      EXPECT_NE(body->find("pod-ip: " + to.ip + "\n"), std::string::npos) << *body;
    }
  }
}

}  // namespace
}  // namespace sluice::agent::testing
