// The ipvs mode with real kernel IPVS (vm suite): the netns scenarios the
// eBPF mode passes (tests/netns/service_lb_test.cc, uplink_lb_test.cc),
// from a pod, from the host and from an outside client namespace, each
// asserting on what the client application saw. Timings are printed,
// never asserted.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "tests/ipvs/ipvs_node.h"

namespace sluice::ipvs::testing {
namespace {

using netns::Answer;
using netns::request;
using netns::Transport;
using Ms = std::chrono::duration<double, std::milli>;

class IpvsModeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(node().error.empty()) << "the test node could not be built: " << node().error;
    ASSERT_NE(node().dp, nullptr) << "no datapath (an earlier test's restart failed)";
  }
  // Fresh service addresses per test: no IPVS or conntrack entry of another
  // test applies to them.
  static std::string vip4() {
    static int next = 10;
    return "10.96.0." + std::to_string(next++);
  }
  static std::string lbIp() {
    static int next = 10;
    return "198.51.100." + std::to_string(next++);
  }
  static void put(const sluice::Service& s) {
    auto r = node().put(s);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }
};

TEST_F(IpvsModeTest, TcpAndUdpToClusterIpFromAPodReachSeveralBackends) {
  const std::string vip = vip4();
  put(service("cip", Protocol::kTcp, {frontend(vip, 80)}, podBackends(kWebPods)));
  put(service("cip-udp", Protocol::kUdp, {frontend(vip, 53, Protocol::kUdp)},
              podBackends(kWebPods)));

  const auto tcp = request(pod(), Transport::kTcp, vip, 80, 20);
  EXPECT_GE(answeredBy(tcp).size(), 2u) << join(tcp);
  for (const Answer& a : tcp) {
    if (a.err != 0) continue;
    EXPECT_EQ(a.peer, hostPort(vip, 80));
    EXPECT_EQ(a.seenAs, node().topo->pod("client").ip4) << "ClusterIP traffic is not SNATed";
  }
  const auto udp = request(pod(), Transport::kUdp, vip, 53, 20);
  EXPECT_GE(answeredBy(udp).size(), 2u) << join(udp);
  for (const Answer& a : udp) {
    if (a.err == 0) {
      EXPECT_EQ(a.from, hostPort(vip, 53)) << a.describe();
    }
  }
}

TEST_F(IpvsModeTest, TcpToClusterIpFromTheHostIsBalanced) {
  const std::string vip = vip4();
  put(service("cip-host", Protocol::kTcp, {frontend(vip, 80)}, podBackends(kWebPods)));
  const auto tcp = request(host(), Transport::kTcp, vip, 80, 20);
  EXPECT_GE(answeredBy(tcp).size(), 2u) << join(tcp);
  for (const Answer& a : tcp) {
    if (a.err == 0) {
      EXPECT_EQ(a.peer, hostPort(vip, 80));
    }
  }
  std::printf("host -> ClusterIP: the backend saw the client as %s\n", tcp[0].seenAs.c_str());
}

TEST_F(IpvsModeTest, OutsideClientReachesNodePortAndLoadBalancerIpMasqueraded) {
  const std::string vip = vip4();
  const std::string lb = lbIp();
  sluice::Service s = service(
      "np", Protocol::kTcp,
      {frontend(vip, 80), frontend(kUplinkIp, 30080, Protocol::kTcp, FrontendScope::kNodePort),
       frontend(lb, 80, Protocol::kTcp, FrontendScope::kLoadBalancer)},
      podBackends(kWebPods));
  put(s);
  EXPECT_TRUE(node().dp->claimedAddresses().count(ip(lb))) << "LB IP not on the dummy interface";
  EXPECT_FALSE(node().dp->claimedAddresses().count(ip(kUplinkIp)))
      << "a node address must not move to the dummy interface";

  for (const auto& [addr, port] : {std::pair<std::string, uint16_t>{kUplinkIp, 30080}, {lb, 80}}) {
    SCOPED_TRACE(hostPort(addr, port));
    const auto answers = request(outside(), Transport::kTcp, addr, port, 15);
    EXPECT_GE(answeredBy(answers).size(), 2u) << join(answers);
    for (const Answer& a : answers) {
      if (a.err != 0) continue;
      EXPECT_EQ(a.peer, hostPort(addr, port));
      // eTP=Cluster: masqueraded, so replies come back through this node.
      EXPECT_NE(a.seenAs, kOutsideIp);
    }
  }
}

TEST_F(IpvsModeTest, ExternalTrafficLocalKeepsTheClientIpAndNeverFallsBackToRemoteBackends) {
  const std::string vip = vip4();
  std::vector<Backend> backends = podBackends(kWebPods);
  backends[2].nodeLocal = false;  // web-c "runs on another node"
  sluice::Service s = service(
      "local", Protocol::kTcp,
      {frontend(vip, 80), frontend(kUplinkIp, 30081, Protocol::kTcp, FrontendScope::kNodePort)},
      backends);
  s.externalPolicy = TrafficPolicy::kLocal;
  put(s);

  const auto answers = request(outside(), Transport::kTcp, kUplinkIp, 30081, 15);
  const auto backendsSeen = answeredBy(answers);
  EXPECT_EQ(backendsSeen.count("web-c"), 0u) << "eTP=Local used a remote backend" << join(answers);
  for (const Answer& a : answers) {
    if (a.err == 0) {
      EXPECT_EQ(a.seenAs, kOutsideIp) << "eTP=Local must keep the client address";
    }
  }
  // The ClusterIP keeps the cluster-wide set.
  EXPECT_EQ(answeredBy(request(pod(), Transport::kTcp, vip, 80, 20)).size(), 3u);

  // Only the remote backend left: refused, not sent to it (kube-proxy's
  // fallback to cluster endpoints, PR #97081, is exactly what must not be).
  std::vector<Backend> remote = {backends[2]};
  s.backends = remote;
  put(s);
  const auto refused = request(outside(), Transport::kTcp, kUplinkIp, 30081, 1);
  EXPECT_EQ(refused[0].err, ECONNREFUSED) << refused[0].describe();
  EXPECT_EQ(answeredBy(request(pod(), Transport::kTcp, vip, 80, 3)),
            std::set<std::string>{"web-c"});
}

TEST_F(IpvsModeTest, ClientIpAffinityHoldsFor15ConsecutiveConnections) {
  const std::string vip = vip4();
  sluice::Service s = service("sticky", Protocol::kTcp, {frontend(vip, 80)}, podBackends(kWebPods));
  s.affinity.clientIp = true;
  s.affinity.timeoutSeconds = 60;
  put(s);
  const auto answers = request(pod(), Transport::kTcp, vip, 80, 15);
  EXPECT_EQ(answeredBy(answers).size(), 1u) << "affinity broke:" << join(answers);
  auto described = node().dp->mode().describeFrontends();
  ASSERT_TRUE(described.ok()) << described.error().message;
  bool found = false;
  for (const DescribedFrontend& f : *described) {
    if (f.frontend.address != ip(vip)) continue;
    found = true;
    EXPECT_TRUE(f.affinity);
    EXPECT_EQ(f.affinityTimeoutSeconds, 60u);
  }
  EXPECT_TRUE(found);
}

TEST_F(IpvsModeTest, ServiceWithoutEndpointsIsRefusedFastOverTcpAndUdp) {
  const std::string vip = vip4();
  put(service("empty", Protocol::kTcp, {frontend(vip, 80)}, {}));
  put(service("empty-udp", Protocol::kUdp, {frontend(vip, 53, Protocol::kUdp)}, {}));
  for (const auto& [where, placement] :
       {std::pair<const char*, netns::Placement>{"pod", pod()}, {"host", host()}}) {
    SCOPED_TRACE(where);
    const auto t0 = std::chrono::steady_clock::now();
    const auto tcp = request(placement, Transport::kTcp, vip, 80, 5);
    const double tcpMs = Ms(std::chrono::steady_clock::now() - t0).count();
    for (const Answer& a : tcp) {
      EXPECT_EQ(a.err, ECONNREFUSED) << a.describe();
      EXPECT_EQ(a.failedAt, "connect");
    }
    const auto t1 = std::chrono::steady_clock::now();
    const auto udp = request(placement, Transport::kUdpConnected, vip, 53, 1);
    const double udpMs = Ms(std::chrono::steady_clock::now() - t1).count();
    EXPECT_EQ(udp[0].err, ECONNREFUSED) << udp[0].describe();
    std::printf("refused from the %s: 5 TCP connects %.1f ms, one UDP exchange %.1f ms\n", where,
                tcpMs, udpMs);
  }
}

TEST_F(IpvsModeTest, PodReachingItselfThroughItsServiceIsAnswered) {
  const std::string vip = vip4();
  put(service("hairpin", Protocol::kTcp, {frontend(vip, 80)}, podBackends({"web-a"})));
  put(service("hairpin-udp", Protocol::kUdp, {frontend(vip, 53, Protocol::kUdp)},
              podBackends({"web-a"})));
  const auto tcp = request(pod("web-a"), Transport::kTcp, vip, 80, 3);
  for (const Answer& a : tcp) {
    EXPECT_EQ(a.err, 0) << a.describe();
    EXPECT_EQ(a.backend, "web-a");
    EXPECT_EQ(a.peer, hostPort(vip, 80));
    EXPECT_NE(a.seenAs, node().topo->pod("web-a").ip4) << "hairpin must be masqueraded";
  }
  const auto udp = request(pod("web-a"), Transport::kUdp, vip, 53, 3);
  for (const Answer& a : udp) {
    EXPECT_EQ(a.err, 0) << a.describe();
    EXPECT_EQ(a.from, hostPort(vip, 53));
  }
}

TEST_F(IpvsModeTest, TerminatingBackendKeepsItsConnectionGetsNoNewOnesAndIsDeletedOnceDrained) {
  const std::string vip = vip4();
  put(service("drain", Protocol::kTcp, {frontend(vip, 80)}, podBackends(kWebPods)));
  auto stream = std::make_unique<netns::StreamClient>(pod(), vip, 80);
  ASSERT_EQ(stream->first().err, 0) << stream->first().describe();
  const std::string held = stream->first().backend;

  std::vector<Backend> backends;
  for (const std::string& name : kWebPods) {
    backends.push_back(podBackends(
        {name}, false, name == held ? BackendState::kTerminating : BackendState::kActive)[0]);
  }
  put(service("drain", Protocol::kTcp, {frontend(vip, 80)}, backends));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(stream->ping().backend, held);
  const auto fresh = request(pod(), Transport::kTcp, vip, 80, 15);
  EXPECT_EQ(answeredBy(fresh).count(held), 0u)
      << "a terminating backend got a new connection" << join(fresh);
  // Nothing active left: the terminating ones take new flows.
  put(service("drain", Protocol::kTcp, {frontend(vip, 80)},
              podBackends(kWebPods, false, BackendState::kTerminating)));
  EXPECT_FALSE(answeredBy(request(pod(), Transport::kTcp, vip, 80, 5)).empty());

  // The held pod is gone from the endpoints: its destination drains at
  // weight 0 while the stream lives, and is deleted once it closed.
  std::vector<std::string> rest;
  for (const std::string& p : kWebPods) {
    if (p != held) rest.push_back(p);
  }
  put(service("drain", Protocol::kTcp, {frontend(vip, 80)}, podBackends(rest)));
  EXPECT_EQ(node().dp->ipvs().draining(), 1u);
  usleep(600 * 1000);  // three drain checks
  const Answer still = stream->ping();
  EXPECT_EQ(still.err, 0) << "the draining connection broke: " << still.describe();
  EXPECT_EQ(still.backend, held);
  EXPECT_EQ(node().dp->ipvs().draining(), 1u) << "deleted while a connection was established";
  stream.reset();
  const auto t0 = std::chrono::steady_clock::now();
  bool drained = false;
  for (int i = 0; i < 300 && !drained; ++i) {
    usleep(100 * 1000);
    drained = node().dp->ipvs().draining() == 0;
  }
  EXPECT_TRUE(drained) << "the drained destination was not deleted within 30 s";
  std::printf("closed stream -> destination deleted after %.0f ms (drain checks every 200 ms)\n",
              Ms(std::chrono::steady_clock::now() - t0).count());
  EXPECT_GE(node().counter("ipvs.drained"), 1u);
}

TEST_F(IpvsModeTest, LongLivedStreamSurvivesAgentRestartsAndScaling3To1To3) {
  const std::string vip = vip4();
  put(service("restart", Protocol::kTcp, {frontend(vip, 80)}, podBackends(kWebPods)));
  netns::StreamClient stream(pod(), vip, 80);
  ASSERT_EQ(stream.first().err, 0) << stream.first().describe();
  const std::string held = stream.first().backend;

  double restartMs = 0;
  for (int i = 0; i < 20; ++i) {
    node().stopAgent();
    Answer a = stream.ping();
    ASSERT_EQ(a.err, 0) << "restart " << i << ", agent down: " << a.describe();
    ASSERT_EQ(a.backend, held);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = node().startAgent();
    restartMs += Ms(std::chrono::steady_clock::now() - t0).count();
    ASSERT_TRUE(r.ok()) << "restart " << i << ": " << r.error().message;
    // An unchanged table: the adopted state is right, nothing is written.
    EXPECT_EQ(node().counter("ipvs.batches"), 0u) << "restart " << i << " rewrote the table";
    a = stream.ping();
    ASSERT_EQ(a.err, 0) << "restart " << i << ": " << a.describe();
    ASSERT_EQ(a.backend, held);
  }
  std::printf("20 agent restarts with %zu services: %.1f ms per restart (create + dump + sync)\n",
              node().table.size(), restartMs / 20);
  EXPECT_GE(answeredBy(request(pod(), Transport::kTcp, vip, 80, 20)).size(), 2u);

  put(service("restart", Protocol::kTcp, {frontend(vip, 80)}, podBackends({held})));
  EXPECT_EQ(stream.ping().backend, held);
  EXPECT_EQ(answeredBy(request(pod(), Transport::kTcp, vip, 80, 5)), std::set<std::string>{held});
  put(service("restart", Protocol::kTcp, {frontend(vip, 80)}, podBackends(kWebPods)));
  const Answer a = stream.ping();
  EXPECT_EQ(a.err, 0) << a.describe();
  EXPECT_EQ(a.backend, held);
  EXPECT_GE(answeredBy(request(pod(), Transport::kTcp, vip, 80, 20)).size(), 2u);
}

TEST_F(IpvsModeTest, UdpToARemovedBackendMovesAtOnce) {
  const std::string vip = vip4();
  put(service("stale-udp", Protocol::kUdp, {frontend(vip, 53, Protocol::kUdp)},
              podBackends(kWebPods)));
  // Same source port every time: without the flush, the conntrack entry
  // would keep sending it to the removed backend.
  netns::UdpSession session(pod(), vip, 53);
  ASSERT_EQ(session.first().err, 0) << session.first().describe();
  const std::string held = session.first().backend;
  ASSERT_EQ(session.ping().backend, held);
  const uint64_t flushed = node().counter("conntrack.flushed");
  std::vector<std::string> rest;
  for (const std::string& p : kWebPods) {
    if (p != held) rest.push_back(p);
  }
  put(service("stale-udp", Protocol::kUdp, {frontend(vip, 53, Protocol::kUdp)}, podBackends(rest)));
  const Answer moved = session.ping();
  ASSERT_EQ(moved.err, 0) << moved.describe();
  EXPECT_NE(moved.backend, held);
  // No conntrack entry to the removed backend is left: the mode's flush
  // deletes them, or IPVS already did (since 5.9 expire_nodest_conn=1
  // expires a deleted destination's connections, and their conntrack
  // entries, from a work item a jiffy later).
  auto ct = ConntrackClient::create();
  ASSERT_TRUE(ct.ok()) << ct.error().message;
  const netns::Pod& heldPod = node().topo->pod(held);
  Destination removed;
  removed.address = ip(heldPod.ip4);
  removed.port = kBackendPort;
  auto left = (*ct)->list(udpFlushFilter(ServiceKey::tuple(ip(vip), 53, Protocol::kUdp), removed));
  ASSERT_TRUE(left.ok()) << left.error().message;
  EXPECT_TRUE(left->empty()) << left->size() << " conntrack entries still lead to " << held;
  std::printf("conntrack entries the mode deleted itself: %llu\n",
              static_cast<unsigned long long>(node().counter("conntrack.flushed") - flushed));
  EXPECT_EQ(node().dp->ipvs().draining(), 0u) << "UDP destinations are deleted, not drained";
}

TEST_F(IpvsModeTest, UdpToAClosedBackendPortIsRefusedNotTimedOut) {
  // IPVS hands the backend's ICMP port unreachable back to the client with
  // the frontend's address (ip_vs_out_icmp): no translation of our own.
  const std::string vip = vip4();
  std::vector<Backend> closed = podBackends({"web-b"});
  closed[0].port = 9;
  put(service("closed-udp", Protocol::kUdp, {frontend(vip, 53, Protocol::kUdp)}, closed));
  const auto answers = request(pod(), Transport::kUdpConnected, vip, 53, 1);
  EXPECT_EQ(answers[0].err, ECONNREFUSED) << answers[0].describe();
  EXPECT_EQ(answers[0].failedAt, "recv");
}

}  // namespace
}  // namespace sluice::ipvs::testing
