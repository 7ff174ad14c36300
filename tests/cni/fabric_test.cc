// Two simulated nodes (network namespaces with their own pod CIDRs) joined
// by the fabric; pods added by sluice-cni on each reach each other by IP.
#include "cni/fabric.h"

#include <gtest/gtest.h>

#include "cni/spec.h"
#include "tests/cni/cni_test_util.h"

namespace sluice::cni {
namespace {

using testing::ScopedDir;
using testing::ScopedNetns;

class FabricTest : public ::testing::TestWithParam<FabricMode> {};

// Pod A on node 1 and pod B on node 2 connect both ways; each sees the
// other's pod IP as the source (pod traffic is never NATed between nodes).
TEST_P(FabricTest, PodsOnDifferentNodesReachEachOtherByIp) {
  const FabricMode mode = GetParam();
  ScopedNetns node1("slnode");
  ScopedNetns node2("slnode");
  ScopedNetns podA("slpod");
  ScopedNetns podB("slpod");
  ScopedDir data;
  ASSERT_TRUE(node1.ok() && node2.ok() && podA.ok() && podB.ok());

  FabricOptions options;
  options.mode = mode;
  options.hubNetnsName = testing::uniqueName("slhub");
  auto fabric = Fabric::create(options, {{node1.path(), *IpPrefix::parse("10.244.1.0/24")},
                                         {node2.path(), *IpPrefix::parse("10.244.2.0/24")}});
  ASSERT_TRUE(fabric.ok()) << fabric.error().message;

  auto addPod = [&](const ScopedNetns& node, const ScopedNetns& pod, const char* subnet,
                    const char* id) {
    Json conf = {{"cniVersion", "1.1.0"},
                 {"name", "podnet"},
                 {"type", "sluice-cni"},
                 {"ipam", {{"type", "sluice-ipam"}, {"subnet", subnet},
                           {"dataDir", data.path() + "/" + node.name()}}}};
    if (mode == FabricMode::kVxlan) conf["mtu"] = 1500 - kVxlanOverhead;
    return testing::runPlugin("sluice-cni", testing::cniEnv("ADD", id, pod.path()), conf.dump(),
                              &node.netns());
  };
  auto addA = addPod(node1, podA, "10.244.1.0/24", "podA");
  auto addB = addPod(node2, podB, "10.244.2.0/24", "podB");
  ASSERT_EQ(addA.exitCode, 0) << addA.stdoutData;
  ASSERT_EQ(addB.exitCode, 0) << addB.stdoutData;
  const IpAddress ipA = parseResult(addA.output, "a", kCodeDecodeFailure)->ips[0].address.address();
  const IpAddress ipB = parseResult(addB.output, "b", kCodeDecodeFailure)->ips[0].address.address();
  EXPECT_EQ(ipA.toString(), "10.244.1.2");
  EXPECT_EQ(ipB.toString(), "10.244.2.2");

  struct Direction {
    const ScopedNetns& from;
    const ScopedNetns& to;
    IpAddress fromIp;
    IpAddress toIp;
  };
  for (const Direction& d : {Direction{podA, podB, ipA, ipB}, Direction{podB, podA, ipB, ipA}}) {
    SCOPED_TRACE(d.fromIp.toString() + " -> " + d.toIp.toString());
    testing::Listener server;
    testing::listenTcp(d.to.netns(), d.toIp, 0, server);
    ASSERT_TRUE(server.error.empty()) << server.error;
    // A payload larger than one segment at the pod MTU exercises the overlay's
    // MTU budget, not just the handshake.
    const std::string payload(8000, 'x');
    auto ex = testing::tcpExchange(d.from.netns(), d.toIp, server.port, server, payload);
    EXPECT_TRUE(ex.ok) << ex.error;
    EXPECT_EQ(ex.peer, d.fromIp.toString());
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, FabricTest,
                         ::testing::Values(FabricMode::kRoutes, FabricMode::kVxlan),
                         [](const auto& info) {
                           return info.param == FabricMode::kRoutes ? "Routes" : "Vxlan";
                         });

}  // namespace
}  // namespace sluice::cni
