// NodePort and LoadBalancer traffic from outside the node, through
// bpf/host.bpf.c on the node's uplink, with real clients in an "outside"
// namespace:
//
//   outside netns: eth0 192.168.88.2/24, 198.51.100.0/24 on-link (so the
//     client ARPs for the LoadBalancer IP, as on a shared L2 segment)
//        | veth
//   node netns: the uplink, 192.168.88.1/24 (the node address NodePorts
//     listen on and eTP=Cluster flows are SNATed to) and the LoadBalancer
//     IP 198.51.100.10/32 (so the node answers ARP for it: the agent's job,
//     done here by hand), bpf_xdp and bpf_host on its XDP and tc ingress
//     hooks; pods on veths with
//     bpf_lxc, as in service_lb_test.cc.
//
// Backends here are all on this node; replies leave through their pod veth
// (bpf_lxc reverses them and routes them out of the uplink).
#include <gtest/gtest.h>
#include <net/if.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bpf/loader/ebpf_mode.h"
#include "dataplane/service_diff.h"
#include "tests/bpf/bpffs.h"
#include "tests/bpf/lb_fixtures.h"
#include "tests/netns/client.h"
#include "tests/netns/topology.h"

namespace sluice {
namespace {

using namespace sluice::netns;  // NOLINT(google-build-using-namespace)
using testing::backend;         // NOLINT
using testing::frontend;        // NOLINT
using testing::ip;              // NOLINT
using testing::service;         // NOLINT

constexpr uint16_t kBackendPort = 8080;
constexpr const char* kUplinkIp = "192.168.88.1";
constexpr const char* kOutsideIp = "192.168.88.2";
constexpr const char* kLbIp = "198.51.100.10";
const std::vector<std::string> kWebPods = {"web-a", "web-b", "web-c"};

struct UplinkNode {
  std::string error;
  std::unique_ptr<testing::ScopedBpffs> fs;
  std::unique_ptr<Topology> topo;
  std::string outsideNetns;
  int outsideFd = -1;
  std::string uplink;
  std::unique_ptr<ScopedSetns> inNode;
  std::vector<ChildProcess> servers;
  std::unique_ptr<EbpfMode> mode;
  ServiceTable table;

  bool start();
  ~UplinkNode();
};

bool UplinkNode::start() {
  auto fail = [this](std::string why) {
    error = std::move(why);
    return false;
  };
  fs = std::make_unique<testing::ScopedBpffs>();
  if (!fs->ok()) return fail("bpffs: " + fs->error());
  topo = Topology::create(kWebPods, &error);
  if (!topo) return false;
  const char* exe = std::getenv("SLUICE_ECHO_SERVER");
  if (exe == nullptr) return fail("SLUICE_ECHO_SERVER is not set (run through meson test)");
  for (const std::string& name : kWebPods) {
    ChildProcess p = startEchoServer(topo->pod(name).netnsFd, exe, name, kBackendPort, &error);
    if (p.pid() < 0) return false;
    servers.push_back(std::move(p));
  }

  const std::string suffix = std::to_string(::getpid());
  outsideNetns = "sluice-" + suffix + "-outside";
  uplink = "slup" + suffix;
  const std::string node = topo->nodeNetns();
  if (!sh("ip netns add " + outsideNetns)) return fail("outside netns");
  if (!sh("ip -n " + node + " link add " + uplink + " type veth peer name eth0 netns " +
          outsideNetns) ||
      !sh("ip -n " + node + " addr add " + kUplinkIp + "/24 dev " + uplink) ||
      !sh("ip -n " + node + " addr add " + kLbIp + "/32 dev " + uplink) ||
      !sh("ip -n " + node + " link set " + uplink + " up") ||
      !sh("ip netns exec " + node + " sysctl -qw net.ipv4.conf." + uplink +
          ".forwarding=1 net.ipv4.conf." + uplink + ".rp_filter=0") ||
      !sh("ip -n " + outsideNetns + " link set lo up") ||
      !sh("ip -n " + outsideNetns + " addr add " + kOutsideIp + "/24 dev eth0") ||
      !sh("ip -n " + outsideNetns + " link set eth0 up") ||
      !sh("ip -n " + outsideNetns + " route add 198.51.100.0/24 dev eth0")) {
    return fail("outside link (see the failed command above)");
  }
  outsideFd = ::open(("/var/run/netns/" + outsideNetns).c_str(), O_RDONLY | O_CLOEXEC);
  if (outsideFd < 0) return fail("open the outside netns");

  inNode = std::make_unique<ScopedSetns>(topo->nodeNetnsFd());
  if (!inNode->ok()) return fail("setns into the node namespace failed");
  EbpfOptions options;
  options.pinDir = fs->pinDir();
  auto m = EbpfMode::create(options);
  if (!m) return fail(m.error().message);
  mode = std::move(*m);
  if (auto r = mode->sync(table); !r) return fail(r.error().message);
  for (const Pod& p : topo->pods()) {
    const int ifindex = static_cast<int>(if_nametoindex(p.hostVeth.c_str()));
    if (ifindex == 0) return fail("no interface " + p.hostVeth);
    if (auto r = mode->attachLxc(ifindex); !r) return fail(r.error().message);
  }
  const int up = static_cast<int>(if_nametoindex(uplink.c_str()));
  if (up == 0) return fail("no uplink " + uplink);
  if (auto r = mode->attachUplink(up, {ip(kUplinkIp)}); !r) return fail(r.error().message);
  // XDP in front (early drop only): every test's traffic crosses it too.
  if (auto r = mode->attachUplinkXdp(up); !r) return fail(r.error().message);
  return true;
}

UplinkNode::~UplinkNode() {
  mode.reset();
  servers.clear();
  inNode.reset();
  if (outsideFd >= 0) ::close(outsideFd);
  if (!outsideNetns.empty()) sh("ip netns del " + outsideNetns + " 2>/dev/null");
  topo.reset();
  fs.reset();
}

UplinkNode* node = nullptr;

class UplinkEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    node = new UplinkNode();
    node->start();
  }
  void TearDown() override {
    delete node;
    node = nullptr;
  }
};
[[maybe_unused]] ::testing::Environment* const kUplinkEnvironment =
    ::testing::AddGlobalTestEnvironment(new UplinkEnvironment);

std::string join(const std::vector<Answer>& answers) {
  std::string s;
  for (const Answer& a : answers) s += "\n  " + a.describe();
  return s;
}

std::set<std::string> answeredBy(const std::vector<Answer>& answers) {
  std::set<std::string> out;
  for (const Answer& a : answers) {
    EXPECT_EQ(a.err, 0) << a.describe();
    if (a.err == 0) out.insert(a.backend);
  }
  return out;
}

class UplinkLbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(node, nullptr);
    ASSERT_TRUE(node->error.empty()) << "the test node could not be built: " << node->error;
  }

  Placement outside() const { return {node->outsideFd, {}}; }

  std::vector<Backend> webBackends(const std::vector<std::string>& pods) const {
    std::vector<Backend> out;
    for (const std::string& name : pods) {
      out.push_back(backend(node->topo->pod(name).ip4.c_str(), kBackendPort,
                            BackendState::kActive, true));
    }
    return out;
  }

  void put(const Service& svc) {
    ServiceTable next = node->table;
    auto u = next.upsert(svc);
    ASSERT_TRUE(u.ok()) << u.error().message;
    auto r = node->mode->apply(ServiceDiff::between(node->table, next));
    ASSERT_TRUE(r.ok()) << r.error().message;
    node->table = next;
  }
};

Frontend nodePort(uint16_t port, Protocol proto) {
  return frontend(kUplinkIp, port, proto, FrontendScope::kNodePort);
}

uint64_t counter(const std::string& name) {
  auto s = node->mode->stats();
  auto it = s.counters.find(name);
  return it == s.counters.end() ? 0 : it->second;
}

TEST_F(UplinkLbTest, NodePortTcpFromOutsideIsBalancedAndSnatedToTheNode) {
  put(service("np-tcp", Protocol::kTcp, {nodePort(30100, Protocol::kTcp)}, webBackends(kWebPods)));
  const uint64_t snat = counter("event.snat");
  const auto answers = request(outside(), Transport::kTcp, kUplinkIp, 30100, 20);
  EXPECT_GE(counter("event.snat"), snat + 20) << "every segment of 20 connections is SNATed";
  EXPECT_GE(answeredBy(answers).size(), 2u) << join(answers);
  for (const Answer& a : answers) {
    if (a.err == 0) {
      EXPECT_EQ(a.seenAs, kUplinkIp) << "eTP=Cluster: the backend sees the node";
      EXPECT_EQ(a.peer, std::string(kUplinkIp) + ":30100");
    }
  }
}

TEST_F(UplinkLbTest, NodePortUdpFromOutsideIsBalanced) {
  put(service("np-udp", Protocol::kUdp, {nodePort(30101, Protocol::kUdp)}, webBackends(kWebPods)));
  const auto answers = request(outside(), Transport::kUdp, kUplinkIp, 30101, 20);
  EXPECT_GE(answeredBy(answers).size(), 2u) << join(answers);
  for (const Answer& a : answers) {
    if (a.err == 0) {
      EXPECT_EQ(a.from, std::string(kUplinkIp) + ":30101");
    }
  }
}

TEST_F(UplinkLbTest, LoadBalancerIpTcpAndUdpFromOutside) {
  put(service("lb-tcp", Protocol::kTcp,
              {frontend(kLbIp, 80, Protocol::kTcp, FrontendScope::kLoadBalancer)},
              webBackends(kWebPods)));
  put(service("lb-udp", Protocol::kUdp,
              {frontend(kLbIp, 53, Protocol::kUdp, FrontendScope::kLoadBalancer)},
              webBackends(kWebPods)));
  const auto tcpAnswers = request(outside(), Transport::kTcp, kLbIp, 80, 20);
  EXPECT_GE(answeredBy(tcpAnswers).size(), 2u) << join(tcpAnswers);
  for (const Answer& a : tcpAnswers) {
    if (a.err == 0) {
      EXPECT_EQ(a.peer, std::string(kLbIp) + ":80");
    }
  }
  const auto udpAnswers = request(outside(), Transport::kUdp, kLbIp, 53, 20);
  EXPECT_GE(answeredBy(udpAnswers).size(), 2u) << join(udpAnswers);
  for (const Answer& a : udpAnswers) {
    if (a.err == 0) {
      EXPECT_EQ(a.from, std::string(kLbIp) + ":53");
    }
  }
}

TEST_F(UplinkLbTest, ExternalTrafficPolicyLocalKeepsTheClientAddress) {
  Service s =
      service("np-local", Protocol::kTcp, {nodePort(30102, Protocol::kTcp)}, webBackends(kWebPods));
  s.externalPolicy = TrafficPolicy::kLocal;
  put(s);
  const auto answers = request(outside(), Transport::kTcp, kUplinkIp, 30102, 10);
  EXPECT_FALSE(answeredBy(answers).empty()) << join(answers);
  for (const Answer& a : answers) {
    if (a.err == 0) {
      EXPECT_EQ(a.seenAs, kOutsideIp) << "eTP=Local: no SNAT";
      EXPECT_EQ(a.peer, std::string(kUplinkIp) + ":30102");
    }
  }
}

TEST_F(UplinkLbTest, NodePortWithoutEndpointsIsRefused) {
  put(service("np-empty", Protocol::kTcp, {nodePort(30103, Protocol::kTcp)}, {}));
  const auto answers = request(outside(), Transport::kTcp, kUplinkIp, 30103, 1);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].err, ECONNREFUSED) << answers[0].describe();
}

// Every backend on another node: the packet is dropped on the uplink (by
// XDP, before the stack; counted), never forwarded, never answered.
TEST_F(UplinkLbTest, ExternalTrafficPolicyLocalWithoutLocalBackendsDropsOnTheUplink) {
  Service s = service("np-local-none", Protocol::kUdp, {nodePort(30104, Protocol::kUdp)},
                      {backend("10.0.9.9", kBackendPort)});
  s.externalPolicy = TrafficPolicy::kLocal;
  put(s);
  const uint64_t drops = counter("drop.no_local_backend");
  const auto answers = request(outside(), Transport::kUdp, kUplinkIp, 30104, 1);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_NE(answers[0].err, 0) << answers[0].describe();
  EXPECT_EQ(counter("drop.no_local_backend"), drops + 1);
}

// The backend's port is closed: its port unreachable, about a datagram
// bpf_host DNATed and SNATed to the node address, leaves the pod veth
// through bpf_lxc, which restores the outside client and the NodePort in
// the quote and routes it out of the uplink: the client's connected socket
// gets ECONNREFUSED instead of waiting for a timeout.
TEST_F(UplinkLbTest, NodePortUdpToAClosedBackendPortIsRefused) {
  constexpr uint16_t kClosedPort = 9;  // the web pods listen on kBackendPort only
  put(service("np-closed", Protocol::kUdp, {nodePort(30105, Protocol::kUdp)},
              {backend(node->topo->pod("web-a").ip4.c_str(), kClosedPort, BackendState::kActive,
                       true)}));
  const uint64_t translated = counter("event.icmp_err_rev");
  const auto answers = request(outside(), Transport::kUdpConnected, kUplinkIp, 30105, 1);
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].err, ECONNREFUSED) << answers[0].describe();
  EXPECT_EQ(answers[0].failedAt, "recv");
  EXPECT_EQ(counter("event.icmp_err_rev"), translated + 1);
}

}  // namespace
}  // namespace sluice
