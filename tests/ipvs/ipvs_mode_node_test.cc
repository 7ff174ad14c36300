// The ipvs mode's node side and its kernel-facing choices (vm suite):
// sysctls, source ranges, schedulers and Maglev -> mh, IPv6, connection
// reuse without a stall, weights after a restart, introspection, and what
// one change costs in netlink messages.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
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

std::string sysctl(const std::string& key) {
  std::ifstream in("/proc/sys/" + key);
  std::string v;
  std::getline(in, v);
  return v;
}

class IpvsNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(node().error.empty()) << "the test node could not be built: " << node().error;
    ASSERT_NE(node().dp, nullptr) << "no datapath (an earlier test's restart failed)";
  }
  static std::string vip4() {
    static int next = 10;
    return "10.97.0." + std::to_string(next++);
  }
  static void put(const sluice::Service& s) {
    auto r = node().put(s);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }
  static const DescribedFrontend* find(const std::vector<DescribedFrontend>& all,
                                       const std::string& addr) {
    for (const DescribedFrontend& f : all) {
      if (f.frontend.address == ip(addr)) return &f;
    }
    return nullptr;
  }
};

TEST_F(IpvsNodeTest, SysctlsAreSetAndConnReuseModeStaysAtTheKernelDefault) {
  EXPECT_EQ(sysctl("net/ipv4/vs/conntrack"), "1");
  EXPECT_EQ(sysctl("net/ipv4/vs/expire_nodest_conn"), "1");
  EXPECT_EQ(sysctl("net/ipv4/vs/expire_quiescent_template"), "1");
  EXPECT_EQ(sysctl("net/ipv4/vs/conn_reuse_mode"), "1");
  EXPECT_EQ(sysctl("net/ipv4/conf/all/arp_ignore"), "1");
  EXPECT_EQ(sysctl("net/ipv4/conf/all/arp_announce"), "2");
}

// kube-proxy issues #70747/#90854: with conn_reuse_mode=1 a new SYN from a
// client port whose previous IPVS connection is still in TIME_WAIT used to
// be dropped (1 s retransmit). The same source port, 20 times in a row.
TEST_F(IpvsNodeTest, ReusedClientPortConnectsWithoutAOneSecondStall) {
  const std::string vip = vip4();
  put(service("reuse", Protocol::kTcp, {frontend(vip, 80)}, podBackends(kWebPods)));
  const std::string out = netns::runInChild(pod(), [&]() -> std::string {
    std::string times;
    double worst = 0;
    for (int i = 0; i < 20; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      const int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      linger lg{1, 0};
      sockaddr_in local{};
      local.sin_family = AF_INET;
      local.sin_port = htons(40000);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
        return "bind: " + std::string(std::strerror(errno));
      }
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(80);
      ::inet_pton(AF_INET, vip.c_str(), &to.sin_addr);
      const auto t0 = std::chrono::steady_clock::now();
      if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
        return "connect " + std::to_string(i) + ": " + std::strerror(errno);
      }
      const double ms = Ms(std::chrono::steady_clock::now() - t0).count();
      worst = std::max(worst, ms);
      (void)::send(fd, "x\n", 2, MSG_NOSIGNAL);
      char buf[128];
      (void)::recv(fd, buf, sizeof(buf), 0);
      // RST: no TIME_WAIT on the client's side (it would refuse the same
      // 4-tuple itself); IPVS keeps its entry (CLOSE) for the next SYN.
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
      ::close(fd);
    }
    return "ok worst " + std::to_string(worst);
  });
  ASSERT_EQ(out.rfind("ok", 0), 0u) << out;
  std::printf("20 connects from one client port, each reusing the last IPVS entry: %s ms\n",
              out.c_str() + 3);
}

TEST_F(IpvsNodeTest, LoadBalancerSourceRangesAdmitOnlyTheirClients) {
  const std::string lb = "198.51.100.200";
  sluice::Service s = service(
      "ranged", Protocol::kTcp,
      {frontend(vip4(), 80), frontend(lb, 80, Protocol::kTcp, FrontendScope::kLoadBalancer)},
      podBackends(kWebPods));
  s.sourceRanges = {*IpPrefix::parse("192.168.88.0/30")};
  put(s);
  EXPECT_FALSE(answeredBy(request(outside(), Transport::kTcp, lb, 80, 3)).empty());
  s.sourceRanges = {*IpPrefix::parse("10.0.0.0/8")};
  put(s);
  const auto denied = request(outside(), Transport::kTcp, lb, 80, 1);
  EXPECT_NE(denied[0].err, 0) << "a client outside the source ranges got through: "
                              << denied[0].describe();
  EXPECT_TRUE(node().dp->mode().capabilities().supports(ModeFeature::kLoadBalancerSourceRanges));
}

TEST_F(IpvsNodeTest, MaglevMapsToMhWithItsFlagsAndTheFixedTableSizeIsSaid) {
  const std::string vip = vip4();
  sluice::Service s = service("maglev", Protocol::kTcp, {frontend(vip, 80)}, podBackends(kWebPods));
  s.algorithm = LbAlgorithm::kMaglev;
  s.maglevTableSize = 251;
  put(s);
  EXPECT_GE(answeredBy(request(pod(), Transport::kTcp, vip, 80, 20)).size(), 2u)
      << "mh-port: one client's connections spread";
  auto described = node().dp->mode().describeFrontends();
  ASSERT_TRUE(described.ok()) << described.error().message;
  const DescribedFrontend* f = find(*described, vip);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->scheduler, "mh");
  EXPECT_EQ(f->maglevSize, kKernelMhTableSize);
  const ModeCapabilities caps = node().dp->mode().capabilities();
  ASSERT_TRUE(caps.fixedMaglevTableSize.has_value());
  const auto unmet = unmetRequests(s, caps);
  ASSERT_EQ(unmet.size(), 1u);
  EXPECT_EQ(unmet[0].feature, ModeFeature::kMaglevTableSize) << unmet[0].message;
}

TEST_F(IpvsNodeTest, SchedulerAnnotationPicksTheServicesSchedulerAndABadOneIsIgnored) {
  const std::string vip = vip4();
  sluice::Service s = service("wlc", Protocol::kTcp, {frontend(vip, 80)}, podBackends(kWebPods));
  s.modeOptions["ipvs-scheduler"] = "wlc";
  put(s);
  auto described = node().dp->mode().describeFrontends();
  ASSERT_TRUE(described.ok());
  EXPECT_EQ(find(*described, vip)->scheduler, "wlc");
  s.modeOptions["ipvs-scheduler"] = "nonsense";
  put(s);
  described = node().dp->mode().describeFrontends();
  ASSERT_TRUE(described.ok());
  EXPECT_EQ(find(*described, vip)->scheduler, "rr") << "the mode's default";
  EXPECT_FALSE(answeredBy(request(pod(), Transport::kTcp, vip, 80, 3)).empty());
}

TEST_F(IpvsNodeTest, Ipv6ClusterIpTcpAndUdp) {
  const std::string vip = "fd00:96::77";
  put(service("v6", Protocol::kTcp, {frontend(vip, 80)}, podBackends(kWebPods, true)));
  put(service("v6-udp", Protocol::kUdp, {frontend(vip, 53, Protocol::kUdp)},
              podBackends(kWebPods, true)));
  const auto tcp = request(pod(), Transport::kTcp, vip, 80, 15);
  EXPECT_GE(answeredBy(tcp).size(), 2u) << join(tcp);
  for (const Answer& a : tcp) {
    if (a.err == 0) {
      EXPECT_EQ(a.seenAs, node().topo->pod("client").ip6);
    }
  }
  const auto udp = request(pod(), Transport::kUdp, vip, 53, 5);
  EXPECT_FALSE(answeredBy(udp).empty()) << join(udp);
}

// SCTP services are IPVS virtual servers like TCP ones (Debian builds
// CONFIG_IP_VS_PROTO_SCTP): programmed, described, and drained on removal.
// Traffic is not sent: the netns clients speak TCP and UDP only.
TEST_F(IpvsNodeTest, SctpServiceIsProgrammedAsAVirtualServer) {
  const std::string vip = vip4();
  sluice::Service s = service("sctp", Protocol::kSctp, {frontend(vip, 3868, Protocol::kSctp)},
                              podBackends(kWebPods));
  put(s);
  auto described = node().dp->mode().describeFrontends();
  ASSERT_TRUE(described.ok()) << described.error().message;
  const DescribedFrontend* f = find(*described, vip);
  ASSERT_NE(f, nullptr) << "no SCTP virtual server";
  EXPECT_EQ(f->frontend.protocol, Protocol::kSctp);
  EXPECT_EQ(f->backends.size(), 3u);
  s.backends = podBackends({"web-a"});
  put(s);
  EXPECT_EQ(node().dp->ipvs().draining(), 2u) << "SCTP destinations drain like TCP ones";
}

TEST_F(IpvsNodeTest, BackendRemovedWhileTheAgentWasDownDrainsAfterItsRestartInsteadOfLeaking) {
  // kube-proxy #92019/#111903: weight-0 destinations outlived restarts.
  const std::string vip = vip4();
  sluice::Service s = service("leak", Protocol::kTcp, {frontend(vip, 80)}, podBackends(kWebPods));
  put(s);
  node().stopAgent();
  ServiceTable changed = node().table;
  s.backends = podBackends({"web-a"});
  ASSERT_TRUE(changed.upsert(s).ok());
  node().table = changed;
  auto r = node().startAgent();
  ASSERT_TRUE(r.ok()) << r.error().message;
  bool gone = false;
  for (int i = 0; i < 300 && !gone; ++i) {
    usleep(100 * 1000);
    auto d = node().dp->mode().describeFrontends();
    ASSERT_TRUE(d.ok());
    gone = find(*d, vip)->backends.size() == 1;
  }
  EXPECT_TRUE(gone) << "the removed destinations stayed";
  EXPECT_EQ(answeredBy(request(pod(), Transport::kTcp, vip, 80, 5)),
            std::set<std::string>{"web-a"});
}

TEST_F(IpvsNodeTest, OneEndpointChangeCostsOneNetlinkMessagePerFrontendInOneSend) {
  const std::string vip = vip4();
  sluice::Service s = service(
      "cost", Protocol::kTcp,
      {frontend(vip, 80), frontend(kUplinkIp, 30090, Protocol::kTcp, FrontendScope::kNodePort)},
      podBackends({"web-a", "web-b"}));
  put(s);
  const uint64_t requests = node().counter("netlink.requests");
  const uint64_t sends = node().counter("netlink.send_calls");
  s.backends = podBackends(kWebPods);  // one endpoint added
  put(s);
  EXPECT_EQ(node().counter("netlink.requests") - requests, 2u) << "one destination per frontend";
  EXPECT_EQ(node().counter("netlink.send_calls") - sends, 1u) << "pipelined in one sendmsg";
}

TEST_F(IpvsNodeTest, DescribeShowsDestinationsWithConnectionsAndFlowsFromTheKernel) {
  const std::string vip = vip4();
  put(service("describe", Protocol::kTcp, {frontend(vip, 80)}, podBackends(kWebPods)));
  netns::StreamClient stream(pod(), vip, 80);
  ASSERT_EQ(stream.first().err, 0);
  auto described = node().dp->mode().describeFrontends();
  ASSERT_TRUE(described.ok()) << described.error().message;
  const DescribedFrontend* f = find(*described, vip);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->service, "default/describe");
  EXPECT_EQ(f->active, 3u);
  uint32_t active = 0;
  for (const DescribedBackend& b : f->backends) active += b.activeConnections;
  EXPECT_EQ(active, 1u);
  auto flows = node().dp->mode().describeFlows(0);
  ASSERT_TRUE(flows.ok()) << flows.error().message;
  bool seen = false;
  for (const DescribedFlow& fl : *flows) {
    seen = seen || (fl.destination.address == ip(vip) && fl.tcpFlags == "ESTABLISHED");
  }
  EXPECT_TRUE(seen) << "no ESTABLISHED flow to " << vip << " in /proc/net/ip_vs_conn";
}

}  // namespace
}  // namespace sluice::ipvs::testing
