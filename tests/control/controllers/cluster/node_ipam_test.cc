// Node IPAM (the range allocator): the block arithmetic of NodeCidrSet, and
// the controller against a real server: Nodes without spec.podCIDR get
// distinct blocks of the cluster CIDR, a CIDR a Node already carries (set
// by its agent) is never handed out again, a restarted controller re-reads
// what is taken, a deleted Node's block goes to a Node that waited because
// the cluster CIDR was exhausted, and bad flags are refused by name.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "control/controllers/cluster/node_ipam.h"
#include "tests/control/controllers/cluster/cluster_fixture.h"

namespace sluice::testing {
namespace {

using controllers::NodeCidrSet;

// A fresh set hands out blocks lowest first.
TEST(NodeCidrSetTest, AllocatesBlocksInOrder) {
  auto s = NodeCidrSet::create("10.244.0.0/16", 24);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->size(), 256u);
  EXPECT_EQ(*s->allocateNext("a"), "10.244.0.0/24");
  EXPECT_EQ(*s->allocateNext("b"), "10.244.1.0/24");
  EXPECT_EQ(s->used(), 2u);
  EXPECT_EQ(s->heldBy("b"), std::vector<std::string>{"10.244.1.0/24"});
}

// Occupied blocks are skipped; a released block is reused only once the
// cursor comes round again.
TEST(NodeCidrSetTest, SkipsOccupiedAndReusesReleasedLast) {
  auto s = NodeCidrSet::create("10.10.0.0/22", 24);  // 4 blocks
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->occupy("10.10.0.0/24", "agent").ok());
  EXPECT_EQ(*s->allocateNext("a"), "10.10.1.0/24");
  s->release("a");
  EXPECT_EQ(*s->allocateNext("b"), "10.10.2.0/24");
  EXPECT_EQ(*s->allocateNext("c"), "10.10.3.0/24");
  EXPECT_EQ(*s->allocateNext("d"), "10.10.1.0/24");
  auto full = s->allocateNext("e");
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code, ErrorCode::kResourceExhausted);
  EXPECT_NE(full.error().message.find("no free /24 left in cluster CIDR 10.10.0.0/22"), std::string::npos)
      << full.error().message;
}

// A wider CIDR takes every block it covers; a narrower one its block; one
// outside the cluster CIDR is ignored; another node's block is refused
// without recording anything.
TEST(NodeCidrSetTest, OccupyCoversOverlappedBlocks) {
  auto s = NodeCidrSet::create("10.244.0.0/16", 24);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->occupy("10.244.4.0/23", "wide").ok());
  EXPECT_EQ(s->heldBy("wide"), (std::vector<std::string>{"10.244.4.0/24", "10.244.5.0/24"}));
  ASSERT_TRUE(s->occupy("10.244.7.128/25", "narrow").ok());
  EXPECT_EQ(s->heldBy("narrow"), std::vector<std::string>{"10.244.7.0/24"});
  ASSERT_TRUE(s->occupy("10.99.0.0/24", "outside").ok());
  EXPECT_TRUE(s->heldBy("outside").empty());
  auto clash = s->occupy("10.244.5.0/24", "other");
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.error().code, ErrorCode::kAlreadyExists);
  EXPECT_NE(clash.error().message.find("node wide"), std::string::npos) << clash.error().message;
  EXPECT_EQ(s->used(), 3u);
  EXPECT_FALSE(s->occupy("10.244.0.0", "x").ok());
}

// Each bad option is refused with the flag's name.
TEST(NodeCidrSetTest, RejectsBadOptionsNamingTheFlag) {
  struct Case {
    const char* cidr;
    int mask;
    const char* flag;
  } cases[] = {
      {"10.244.0.0", 24, "--cluster-cidr"},         {"10.244.0.1/16", 24, "--cluster-cidr"},
      {"fd00::/48", 64, "--cluster-cidr"},          {"10.244.0.0/33", 24, "--cluster-cidr"},
      {"10.244.0.0/16", 8, "--node-cidr-mask-size"}, {"10.244.0.0/16", 31, "--node-cidr-mask-size"},
      {"10.0.0.0/7", 24, "--node-cidr-mask-size"},
  };
  for (const auto& c : cases) {
    auto s = NodeCidrSet::create(c.cidr, c.mask);
    ASSERT_FALSE(s.ok()) << c.cidr << " /" << c.mask;
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(s.error().message.rfind(c.flag, 0), 0u) << s.error().message;
  }
  EXPECT_TRUE(NodeCidrSet::create("10.0.0.0/8", 24).ok());  // exactly 2^16 blocks
}

class NodeIpamTest : public ClusterTest {
 protected:
  ControlPlane::Options options() override {
    ControlPlane::Options o;
    o.manager.only = {"nodeipam"};
    o.manager.nodeIpam.clusterCidr = clusterCidr_;
    o.manager.nodeIpam.nodeCidrMaskSize = 24;
    return o;
  }

  void createNode(const std::string& name, const std::string& podCidr = "") {
    Json n = {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", name}}}};
    if (!podCidr.empty()) n["spec"] = {{"podCIDR", podCidr}, {"podCIDRs", {podCidr}}};
    auto r = api().create(res::kNodes, "", n);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }

  std::string podCidr(const std::string& node) {
    return get(res::kNodes, "", node).value("/spec/podCIDR"_json_pointer, std::string());
  }

  // Waits for the node's podCIDR; "" if none came.
  std::string awaitCidr(const std::string& node) {
    std::string cidr;
    eventually([&] { return !(cidr = podCidr(node)).empty(); });
    return cidr;
  }

  std::string clusterCidr_ = "10.244.0.0/16";
};

// Nodes registered one after another get consecutive /24s, written to
// both spec.podCIDR and spec.podCIDRs.
TEST_F(NodeIpamTest, NodesWithoutCidrGetConsecutiveBlocks) {
  for (int i = 0; i < 3; ++i) {
    std::string name = "n" + std::to_string(i);
    createNode(name);
    EXPECT_EQ(awaitCidr(name), "10.244." + std::to_string(i) + ".0/24");
  }
  Json n = get(res::kNodes, "", "n2");
  EXPECT_EQ(n.value("/spec/podCIDRs"_json_pointer, Json()), Json::array({"10.244.2.0/24"}));
}

// Nodes created all at once (both workers busy) still get distinct blocks.
TEST_F(NodeIpamTest, ConcurrentNodesGetDistinctBlocks) {
  for (int i = 0; i < 12; ++i) createNode("c" + std::to_string(i));
  std::set<std::string> seen;
  for (int i = 0; i < 12; ++i) {
    std::string cidr = awaitCidr("c" + std::to_string(i));
    ASSERT_FALSE(cidr.empty()) << "c" << i;
    EXPECT_TRUE(seen.insert(cidr).second) << cidr << " handed out twice";
  }
}

// A CIDR the agent set (--pod-cidr) stays and is never given to another
// node; one outside the cluster CIDR is left alone.
TEST_F(NodeIpamTest, AgentSetCidrIsKeptAndSkipped) {
  createNode("agent", "10.244.0.0/24");
  createNode("outside", "10.99.0.0/24");
  createNode("fresh");
  EXPECT_EQ(awaitCidr("fresh"), "10.244.1.0/24");
  EXPECT_EQ(podCidr("agent"), "10.244.0.0/24");
  EXPECT_EQ(podCidr("outside"), "10.99.0.0/24");
}

// After a restart of server and controller, what the Nodes hold is taken:
// the next node gets the next free block, existing ones keep theirs.
TEST_F(NodeIpamTest, RestartRecordsExistingAllocations) {
  createNode("a");
  ASSERT_EQ(awaitCidr("a"), "10.244.0.0/24");
  createNode("b");
  ASSERT_EQ(awaitCidr("b"), "10.244.1.0/24");
  cp_->restart();
  createNode("c");
  EXPECT_EQ(awaitCidr("c"), "10.244.2.0/24");
  EXPECT_EQ(podCidr("a"), "10.244.0.0/24");
  EXPECT_EQ(podCidr("b"), "10.244.1.0/24");
}

class NodeIpamSmallTest : public NodeIpamTest {
 protected:
  ControlPlane::Options options() override {
    clusterCidr_ = "10.244.0.0/23";  // two /24s
    return NodeIpamTest::options();
  }
};

// With the cluster CIDR exhausted a node waits without a podCIDR; deleting
// a node frees its block and the waiting node gets it.
TEST_F(NodeIpamSmallTest, ExhaustedNodeWaitsAndGetsReleasedBlock) {
  createNode("a");
  ASSERT_EQ(awaitCidr("a"), "10.244.0.0/24");
  createNode("b");
  ASSERT_EQ(awaitCidr("b"), "10.244.1.0/24");
  createNode("c");
  // No completion signal exists for "refused"; give the controller several
  // retries' worth of time, then check it did not hand out a taken block.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(podCidr("c"), "");
  auto r = api().remove(res::kNodes, "", "a");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(awaitCidr("c"), "10.244.0.0/24");
  EXPECT_EQ(podCidr("b"), "10.244.1.0/24");
}

// A bad --cluster-cidr stops the controller manager from starting, named.
TEST(NodeIpamOptionsTest, ManagerRefusesBadClusterCidr) {
  ControlPlane::Options o;
  o.startControllers = false;
  ControlPlane cp("ipam-bad", o);
  controllers::ManagerOptions mo;
  mo.only = {"nodeipam"};
  mo.nodeIpam.clusterCidr = "10.244.0.0/40";
  auto m = controllers::ControllerManager::start(cp.client(), mo);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().message.rfind("--cluster-cidr 10.244.0.0/40", 0), 0u) << m.error().message;
}

}  // namespace
}  // namespace sluice::testing
