// Services through the eBPF fast path with real processes and sockets: a
// node namespace, pods wired to it by veths (bpf_lxc on each veth's node
// side, the per-packet path), and a cgroup with bpf_sock attached (the
// socket path) for clients on the host. Every scenario runs from a pod and
// from the host, and asserts on what the client application saw.
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
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

using namespace sluice::netns;   // NOLINT(google-build-using-namespace)
using testing::backend;          // NOLINT
using testing::frontend;         // NOLINT
using testing::service;          // NOLINT

constexpr uint16_t kBackendPort = 8080;
const std::vector<std::string> kWebPods = {"web-a", "web-b", "web-c"};

// ---------------------------------------------------------------------------
// One node for the whole test program: building it (namespaces, veths,
// echo servers) takes a second; tests use distinct service addresses, so
// they do not see each other's flows.

struct Node {
  std::string error;  // why the node could not be built
  std::unique_ptr<testing::ScopedBpffs> fs;
  std::unique_ptr<ScopedCgroup> cgroup;
  std::unique_ptr<Topology> topo;
  std::unique_ptr<ScopedSetns> inNode;  // the test thread lives in the node netns
  std::vector<ChildProcess> servers;
  EbpfOptions options;
  std::unique_ptr<EbpfMode> mode;
  ServiceTable table;

  bool start();
  // The agent starting: load (adopting the pinned maps), full sync, attach
  // to every pod veth and to the cgroup.
  Result<void> startAgent();
  ~Node();
};

bool Node::start() {
  auto fail = [this](std::string why) {
    error = std::move(why);
    return false;
  };
  fs = std::make_unique<testing::ScopedBpffs>();
  if (!fs->ok()) return fail("bpffs: " + fs->error());
  cgroup = std::make_unique<ScopedCgroup>();
  if (!cgroup->ok()) return fail("cgroup: " + cgroup->error());
  std::vector<std::string> pods = {"client"};
  pods.insert(pods.end(), kWebPods.begin(), kWebPods.end());
  topo = Topology::create(pods, &error);
  if (!topo) return false;
  const char* exe = std::getenv("SLUICE_ECHO_SERVER");
  if (exe == nullptr) return fail("SLUICE_ECHO_SERVER is not set (run through meson test)");
  for (const std::string& name : kWebPods) {
    ChildProcess p = startEchoServer(topo->pod(name).netnsFd, exe, name, kBackendPort, &error);
    if (p.pid() < 0) return false;
    servers.push_back(std::move(p));
  }
  inNode = std::make_unique<ScopedSetns>(topo->nodeNetnsFd());
  if (!inNode->ok()) return fail("setns into the node namespace failed");
  options.pinDir = fs->pinDir();
  if (auto r = startAgent(); !r) return fail(r.error().message);
  return true;
}

Result<void> Node::startAgent() {
  auto m = EbpfMode::create(options);
  if (!m) return m.error();
  mode = std::move(*m);
  if (auto r = mode->sync(table); !r) return r;
  for (const Pod& p : topo->pods()) {
    const int ifindex = static_cast<int>(if_nametoindex(p.hostVeth.c_str()));
    if (ifindex == 0) return Error::internal("no interface " + p.hostVeth + " in the node netns");
    if (auto r = mode->attachLxc(ifindex); !r) return r;
  }
  return mode->attachCgroup(cgroup->path());
}

Node::~Node() {
  if (mode && cgroup && cgroup->ok()) (void)mode->detachCgroup(cgroup->path());
  mode.reset();
  servers.clear();
  inNode.reset();
  topo.reset();
  cgroup.reset();
  fs.reset();
}

Node* node = nullptr;

class NodeEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    node = new Node();
    node->start();
  }
  void TearDown() override {
    delete node;
    node = nullptr;
  }
};
[[maybe_unused]] ::testing::Environment* const kNodeEnvironment =
    ::testing::AddGlobalTestEnvironment(new NodeEnvironment);

// ---------------------------------------------------------------------------

enum class ClientAt {
  kPod,   // the "client" pod: bpf_lxc balances its packets
  kHost,  // a process of the node in the cgroup: bpf_sock balances its sockets
};

std::string clientName(const ::testing::TestParamInfo<ClientAt>& info) {
  return info.param == ClientAt::kPod ? "FromPod" : "FromHost";
}

class ServiceLbTest : public ::testing::TestWithParam<ClientAt> {
 protected:
  void SetUp() override {
    ASSERT_NE(node, nullptr);
    ASSERT_TRUE(node->error.empty()) << "the test node could not be built: " << node->error;
  }

  bool fromHost() const { return GetParam() == ClientAt::kHost; }

  // Where the client runs: in a pod's namespace (the "client" pod unless
  // named), or, from the host, in that namespace too when a pod is named
  // (a pod's process in the hooked cgroup: the hooks leave it to bpf_lxc,
  // being of another namespace), else the node's; host clients join the
  // cgroup.
  Placement client(const std::string& pod = "") const {
    if (!fromHost()) return {node->topo->pod(pod.empty() ? "client" : pod).netnsFd, {}};
    const int ns = pod.empty() ? node->topo->nodeNetnsFd() : node->topo->pod(pod).netnsFd;
    return {ns, node->cgroup->procsFile()};
  }
  // The address backends see the client connect from.
  std::string clientIp4() const {
    return fromHost() ? Topology::kNodeIp4 : node->topo->pod("client").ip4;
  }
  std::string clientIp6() const {
    return fromHost() ? Topology::kNodeIp6 : node->topo->pod("client").ip6;
  }

  // Fresh service addresses per test: no conntrack or affinity entry of
  // another test applies to them.
  static std::string vip4() {
    static int next = 10;
    return "10.96.0." + std::to_string(next++);
  }
  static std::string vip6() {
    static int next = 10;
    return "fd00:96::" + std::to_string(next++);
  }

  std::vector<Backend> webBackends(const std::vector<std::string>& pods, bool v6 = false,
                                   BackendState state = BackendState::kActive) const {
    std::vector<Backend> out;
    for (const std::string& name : pods) {
      const Pod& p = node->topo->pod(name);
      out.push_back(backend((v6 ? p.ip6 : p.ip4).c_str(), kBackendPort, state, true));
    }
    return out;
  }

  // Programs (or reprograms) one service through apply(), as the agent does.
  void put(const Service& svc) {
    ServiceTable next = node->table;
    auto u = next.upsert(svc);
    ASSERT_TRUE(u.ok()) << u.error().message;
    auto r = node->mode->apply(ServiceDiff::between(node->table, next));
    ASSERT_TRUE(r.ok()) << r.error().message;
    node->table = next;
  }

  Service web(const std::string& name, Protocol proto, std::vector<Frontend> frontends,
              std::vector<Backend> backends) const {
    Service s = service(name + (fromHost() ? "-host" : "-pod"), proto, std::move(frontends),
                        std::move(backends));
    return s;
  }

  static std::string join(const std::vector<Answer>& answers) {
    std::string s;
    for (const Answer& a : answers) s += "\n  " + a.describe();
    return s;
  }
};

// Every answer succeeded; returns the distinct backends that gave them.
std::set<std::string> answeredBy(const std::vector<Answer>& answers) {
  std::set<std::string> out;
  for (const Answer& a : answers) {
    EXPECT_EQ(a.err, 0) << a.describe();
    if (a.err == 0) out.insert(a.backend);
  }
  return out;
}

std::string hostPort(const std::string& addr, uint16_t port) {
  return (addr.find(':') != std::string::npos ? "[" + addr + "]" : addr) + ":" +
         std::to_string(port);
}

// ---------------------------------------------------------------------------

TEST_P(ServiceLbTest, TcpToClusterIpReachesSeveralBackendsAndPeerIsTheClusterIp) {
  const std::string vip = vip4();
  put(web("tcp", Protocol::kTcp, {frontend(vip.c_str(), 80)}, webBackends(kWebPods)));

  const auto answers = request(client(), Transport::kTcp, vip, 80, 30);
  const auto backends = answeredBy(answers);
  EXPECT_GE(backends.size(), 2u) << "30 connections all went to one backend:" << join(answers);
  for (const Answer& a : answers) {
    if (a.err != 0) continue;
    EXPECT_EQ(a.peer, hostPort(vip, 80)) << "getpeername() must show the service";
    EXPECT_EQ(a.seenAs, clientIp4()) << "the backend sees the client itself (no SNAT)";
  }
}

TEST_P(ServiceLbTest, UdpToClusterIpReachesSeveralBackendsAndAnswersComeFromTheClusterIp) {
  const std::string vip = vip4();
  put(web("udp", Protocol::kUdp, {frontend(vip.c_str(), 53, Protocol::kUdp)},
          webBackends(kWebPods)));

  // Unconnected: recvfrom() must name the ClusterIP as the source.
  const auto answers = request(client(), Transport::kUdp, vip, 53, 30);
  EXPECT_GE(answeredBy(answers).size(), 2u) << join(answers);
  for (const Answer& a : answers) {
    if (a.err == 0) {
      EXPECT_EQ(a.from, hostPort(vip, 53)) << a.describe();
    }
  }
  // Connected: the kernel only delivers datagrams from the connected
  // address, and getpeername() shows the ClusterIP.
  const auto connected = request(client(), Transport::kUdpConnected, vip, 53, 10);
  EXPECT_FALSE(answeredBy(connected).empty()) << join(connected);
  for (const Answer& a : connected) {
    if (a.err == 0) {
      EXPECT_EQ(a.peer, hostPort(vip, 53)) << a.describe();
    }
  }
}

TEST_P(ServiceLbTest, ServiceWithoutEndpointsRefusesTcpAndUdp) {
  const std::string vip = vip4();
  put(web("empty-tcp", Protocol::kTcp, {frontend(vip.c_str(), 80)}, {}));
  put(web("empty-udp", Protocol::kUdp, {frontend(vip.c_str(), 53, Protocol::kUdp)}, {}));

  // TCP: a RST from bpf_lxc, or connect4 failing the call; both read as
  // ECONNREFUSED, never a timeout.
  const auto tcp = request(client(), Transport::kTcp, vip, 80);
  ASSERT_EQ(tcp.size(), 1u);
  EXPECT_EQ(tcp[0].err, ECONNREFUSED) << tcp[0].describe();
  EXPECT_EQ(tcp[0].failedAt, "connect");

  // UDP: from a pod the ICMP port unreachable reaches the connected socket
  // as ECONNREFUSED on recv(); on the host the connect() itself fails.
  const auto udp = request(client(), Transport::kUdpConnected, vip, 53);
  ASSERT_EQ(udp.size(), 1u);
  EXPECT_EQ(udp[0].err, ECONNREFUSED) << udp[0].describe();
  EXPECT_EQ(udp[0].failedAt, fromHost() ? "connect" : "recv");
}

TEST_P(ServiceLbTest, MaglevServiceSpreadsConnectionsOverItsBackends) {
  const std::string vip = vip4();
  Service s = web("maglev", Protocol::kTcp, {frontend(vip.c_str(), 80)}, webBackends(kWebPods));
  s.algorithm = LbAlgorithm::kMaglev;
  s.maglevTableSize = 251;
  put(s);

  const auto answers = request(client(), Transport::kTcp, vip, 80, 30);
  EXPECT_GE(answeredBy(answers).size(), 2u) << join(answers);
}

TEST_P(ServiceLbTest, ClientIpAffinityHoldsFor15ConsecutiveConnections) {
  const std::string vip = vip4();
  Service s = web("sticky", Protocol::kTcp, {frontend(vip.c_str(), 80)}, webBackends(kWebPods));
  s.affinity.clientIp = true;
  s.affinity.timeoutSeconds = 60;
  put(s);

  const auto answers = request(client(), Transport::kTcp, vip, 80, 15);
  EXPECT_EQ(answeredBy(answers).size(), 1u) << "affinity broke:" << join(answers);
}

TEST_P(ServiceLbTest, PodReachingItselfThroughItsServiceIsAnswered) {
  // Hairpin: web-a is the service's only backend and the client. bpf_lxc
  // must also rewrite the source (the kernel would drop a packet from its
  // own address arriving from outside). The socket hooks act on the node's
  // namespace only (sl_netns_cookie), so a process in web-a's namespace
  // takes the packet path even from inside the hooked cgroup.
  const std::string vip = vip4();
  put(web("hairpin", Protocol::kTcp, {frontend(vip.c_str(), 80)}, webBackends({"web-a"})));
  put(web("hairpin-udp", Protocol::kUdp, {frontend(vip.c_str(), 53, Protocol::kUdp)},
          webBackends({"web-a"})));

  const std::string seen = "169.254.42.1";
  const auto tcp = request(client("web-a"), Transport::kTcp, vip, 80, 3);
  for (const Answer& a : tcp) {
    EXPECT_EQ(a.err, 0) << a.describe();
    EXPECT_EQ(a.backend, "web-a");
    EXPECT_EQ(a.seenAs, seen);
    EXPECT_EQ(a.peer, hostPort(vip, 80));
  }
  const auto udp = request(client("web-a"), Transport::kUdp, vip, 53, 3);
  for (const Answer& a : udp) {
    EXPECT_EQ(a.err, 0) << a.describe();
    EXPECT_EQ(a.backend, "web-a");
    EXPECT_EQ(a.from, hostPort(vip, 53));
  }
}

TEST_P(ServiceLbTest, TerminatingBackendKeepsItsConnectionsAndGetsNoNewOnes) {
  const std::string vip = vip4();
  put(web("drain", Protocol::kTcp, {frontend(vip.c_str(), 80)}, webBackends(kWebPods)));

  StreamClient stream(client(), vip, 80);
  ASSERT_EQ(stream.first().err, 0) << stream.first().describe();
  const std::string held = stream.first().backend;

  // The held backend starts terminating (its pod got a deletion).
  std::vector<Backend> backends;
  for (const std::string& name : kWebPods) {
    backends.push_back(webBackends({name}, false,
                                   name == held ? BackendState::kTerminating
                                                : BackendState::kActive)[0]);
  }
  put(web("drain", Protocol::kTcp, {frontend(vip.c_str(), 80)}, backends));

  for (int i = 0; i < 3; ++i) {
    const Answer a = stream.ping();
    EXPECT_EQ(a.err, 0) << "the established connection broke: " << a.describe();
    EXPECT_EQ(a.backend, held);
  }
  const auto fresh = request(client(), Transport::kTcp, vip, 80, 15);
  const auto others = answeredBy(fresh);
  EXPECT_EQ(others.count(held), 0u) << "a terminating backend got a new connection:"
                                    << join(fresh);

  // Nothing active left: terminating backends are the fallback.
  put(web("drain", Protocol::kTcp, {frontend(vip.c_str(), 80)},
          webBackends(kWebPods, false, BackendState::kTerminating)));
  const auto fallback = request(client(), Transport::kTcp, vip, 80, 5);
  EXPECT_FALSE(answeredBy(fallback).empty()) << join(fallback);
  EXPECT_EQ(stream.ping().backend, held);
}

TEST_P(ServiceLbTest, LongLivedStreamSurvives20AgentRestartsAndScalingTo1AndBackTo3) {
  const std::string vip = vip4();
  put(web("restart", Protocol::kTcp, {frontend(vip.c_str(), 80)}, webBackends(kWebPods)));
  StreamClient stream(client(), vip, 80);
  ASSERT_EQ(stream.first().err, 0) << stream.first().describe();
  const std::string held = stream.first().backend;

  for (int i = 0; i < 20; ++i) {
    // The agent exits (programs stay attached, maps stay pinned) ...
    node->mode.reset();
    Answer a = stream.ping();
    ASSERT_EQ(a.err, 0) << "restart " << i << ", agent down: " << a.describe();
    ASSERT_EQ(a.backend, held);
    // ... and comes back: adopts the maps, re-attaches.
    auto r = node->startAgent();
    ASSERT_TRUE(r.ok()) << "restart " << i << ": " << r.error().message;
    a = stream.ping();
    ASSERT_EQ(a.err, 0) << "restart " << i << ": " << a.describe();
    ASSERT_EQ(a.backend, held);
  }
  // New connections still work through the re-attached programs, and the
  // cgroup hooks were replaced in place, never stacked.
  EXPECT_GE(answeredBy(request(client(), Transport::kTcp, vip, 80, 20)).size(), 2u);
  const int cg = ::open(node->cgroup->path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(cg, 0);
  uint32_t ids[8] = {};
  uint32_t count = 8;
  ASSERT_EQ(bpf_prog_query(cg, BPF_CGROUP_INET4_CONNECT, 0, nullptr, ids, &count), 0);
  ::close(cg);
  EXPECT_EQ(count, 1u) << "connect4 programs on the cgroup after 20 restarts";

  // Scale 3 -> 1, keeping the stream's backend.
  put(web("restart", Protocol::kTcp, {frontend(vip.c_str(), 80)}, webBackends({held})));
  Answer a = stream.ping();
  EXPECT_EQ(a.err, 0) << a.describe();
  EXPECT_EQ(a.backend, held);
  const auto one = answeredBy(request(client(), Transport::kTcp, vip, 80, 5));
  EXPECT_EQ(one, std::set<std::string>{held});

  // And back to 3.
  put(web("restart", Protocol::kTcp, {frontend(vip.c_str(), 80)}, webBackends(kWebPods)));
  a = stream.ping();
  EXPECT_EQ(a.err, 0) << a.describe();
  EXPECT_EQ(a.backend, held);
  EXPECT_GE(answeredBy(request(client(), Transport::kTcp, vip, 80, 20)).size(), 2u);
}

TEST_P(ServiceLbTest, Ipv6ClusterIpTcpAndUdp) {
  const std::string vip = vip6();
  put(web("v6", Protocol::kTcp, {frontend(vip.c_str(), 80)}, webBackends(kWebPods, true)));
  put(web("v6-udp", Protocol::kUdp, {frontend(vip.c_str(), 53, Protocol::kUdp)},
          webBackends(kWebPods, true)));

  const auto tcp = request(client(), Transport::kTcp, vip, 80, 20);
  EXPECT_GE(answeredBy(tcp).size(), 2u) << join(tcp);
  for (const Answer& a : tcp) {
    if (a.err != 0) continue;
    EXPECT_EQ(a.peer, hostPort(vip, 80));
    EXPECT_EQ(a.seenAs, clientIp6());
  }
  const auto udp = request(client(), Transport::kUdp, vip, 53, 10);
  EXPECT_FALSE(answeredBy(udp).empty()) << join(udp);
  for (const Answer& a : udp) {
    if (a.err == 0) {
      EXPECT_EQ(a.from, hostPort(vip, 53));
    }
  }
}

TEST_P(ServiceLbTest, Ipv4MappedAddressOnAnIpv6SocketIsTheIpv4Service) {
  const std::string vip = vip4();
  put(web("mapped", Protocol::kTcp, {frontend(vip.c_str(), 80)}, webBackends(kWebPods)));
  const std::string mapped = "::ffff:" + vip;
  const auto answers = request(client(), Transport::kTcp, mapped, 80, 5);
  EXPECT_FALSE(answeredBy(answers).empty()) << join(answers);
  for (const Answer& a : answers) {
    if (a.err == 0) {
      EXPECT_EQ(a.peer, hostPort(mapped, 80));
    }
  }
}

TEST_P(ServiceLbTest, NodePortOnTheNodeAddressIsBalanced) {
  const std::string vip = vip4();
  put(web("nodeport", Protocol::kTcp,
          {frontend(vip.c_str(), 80),
           frontend(Topology::kNodeIp4, fromHost() ? 30080 : 30081, Protocol::kTcp,
                    FrontendScope::kNodePort)},
          webBackends(kWebPods)));
  const uint16_t port = fromHost() ? 30080 : 30081;
  const auto answers = request(client(), Transport::kTcp, Topology::kNodeIp4, port, 20);
  EXPECT_GE(answeredBy(answers).size(), 2u) << join(answers);
  for (const Answer& a : answers) {
    if (a.err == 0) {
      EXPECT_EQ(a.peer, hostPort(Topology::kNodeIp4, port));
    }
  }
}

uint64_t counter(const std::string& name) {
  const auto stats = node->mode->stats();
  auto it = stats.counters.find(name);
  EXPECT_NE(it, stats.counters.end()) << "no counter " << name;
  return it == stats.counters.end() ? 0 : it->second;
}

// A backend leaves a UDP service while a client holds a connected socket
// to it. From the host (socket LB: the socket itself is connected to the
// backend) the socket is destroyed: the application's next recv() fails
// with ECONNABORTED and a reconnect reaches a live backend. From a pod
// (per-packet LB: the socket is connected to the ClusterIP) the flow moves
// at once and nothing is destroyed. Either way, another socket connected
// to the same backend's own address, not through the service, and a
// socket of another service that keeps that backend, are left alone.
TEST_P(ServiceLbTest, ConnectedUdpSocketToARemovedBackendIsAbortedOrRebalanced) {
  if (fromHost()) {
    auto available = node->mode->socketTermination();
    if (!available) GTEST_SKIP() << available.error().message;
  }
  for (const bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "IPv6" : "IPv4");
    const std::string vip = v6 ? vip6() : vip4();
    const std::string name = std::string("stale-udp") + (v6 ? "6" : "4");
    put(web(name, Protocol::kUdp, {frontend(vip.c_str(), 53, Protocol::kUdp)},
            webBackends(kWebPods, v6)));

    UdpSession session(client(), vip, 53);
    ASSERT_EQ(session.first().err, 0) << session.first().describe();
    EXPECT_EQ(session.first().peer, hostPort(vip, 53));
    const std::string held = session.first().backend;
    const Pod& heldPod = node->topo->pod(held);
    const std::string heldIp = v6 ? heldPod.ip6 : heldPod.ip4;
    const Answer direct = session.pingOther(heldIp, kBackendPort);
    ASSERT_EQ(direct.err, 0) << direct.describe();
    ASSERT_EQ(direct.backend, held);
    // Another service whose only backend is the same pod: its socket
    // keeps that backend, which it still has.
    const std::string otherVip = v6 ? vip6() : vip4();
    put(web(name + "-other", Protocol::kUdp, {frontend(otherVip.c_str(), 53, Protocol::kUdp)},
            webBackends({held}, v6)));
    UdpSession otherService(client(), otherVip, 53);
    ASSERT_EQ(otherService.first().err, 0) << otherService.first().describe();

    const uint64_t terminated = counter("event.sock_term");
    std::vector<std::string> rest;
    for (const std::string& pod : kWebPods) {
      if (pod != held) rest.push_back(pod);
    }
    put(web(name, Protocol::kUdp, {frontend(vip.c_str(), 53, Protocol::kUdp)},
            webBackends(rest, v6)));

    if (fromHost()) {
      auto swept = node->mode->lastSocketTermination();
      EXPECT_TRUE(swept.ok()) << swept.error().message;
      const Answer aborted = session.pendingError();
      EXPECT_EQ(aborted.err, ECONNABORTED) << aborted.describe();
      EXPECT_EQ(counter("event.sock_term"), terminated + 1);
      const Answer again = session.reconnect();
      ASSERT_EQ(again.err, 0) << again.describe();
      EXPECT_NE(again.backend, held);
      EXPECT_EQ(again.peer, hostPort(vip, 53));
    } else {
      const Answer moved = session.ping();
      ASSERT_EQ(moved.err, 0) << moved.describe();
      EXPECT_NE(moved.backend, held);
      EXPECT_EQ(counter("event.sock_term"), terminated);
    }
    const Answer still = session.pingOther(heldIp, kBackendPort);
    EXPECT_EQ(still.err, 0) << "the unrelated socket was touched: " << still.describe();
    EXPECT_EQ(still.backend, held);
    EXPECT_EQ(otherService.pendingError().err, EAGAIN) << "another service's socket was aborted";
    const Answer kept = otherService.ping();
    EXPECT_EQ(kept.err, 0) << kept.describe();
    EXPECT_EQ(kept.backend, held);
  }
}

// The backend's port is closed: its kernel answers with ICMP port
// unreachable, which must reach the client's socket connected to the
// service (ClusterIP and NodePort, IPv4 and IPv6) as ECONNREFUSED rather
// than a timeout. From a pod the error is translated by bpf_lxc (the
// socket is connected to the frontend); from the host the socket is
// connected to the backend itself and the error matches as it is.
TEST_P(ServiceLbTest, UdpToAClosedBackendPortIsRefusedNotTimedOut) {
  constexpr uint16_t kClosedPort = 9;  // the web pods listen on kBackendPort only
  const uint16_t nodePort = fromHost() ? 30053 : 30054;
  const std::string vip = vip4();
  const std::string vip6text = vip6();
  const Pod& pod = node->topo->pod("web-b");
  put(web("closed-udp", Protocol::kUdp,
          {frontend(vip.c_str(), 53, Protocol::kUdp), frontend(vip6text.c_str(), 53, Protocol::kUdp),
           frontend(Topology::kNodeIp4, nodePort, Protocol::kUdp, FrontendScope::kNodePort)},
          {backend(pod.ip4.c_str(), kClosedPort, BackendState::kActive, true),
           backend(pod.ip6.c_str(), kClosedPort, BackendState::kActive, true)}));

  const uint64_t translated = counter("event.icmp_err_rev");
  struct Target {
    std::string addr;
    uint16_t port;
  };
  for (const Target& t : {Target{vip, 53}, Target{vip6text, 53},
                          Target{Topology::kNodeIp4, nodePort}}) {
    const auto answers = request(client(), Transport::kUdpConnected, t.addr, t.port);
    ASSERT_EQ(answers.size(), 1u);
    EXPECT_EQ(answers[0].err, ECONNREFUSED) << hostPort(t.addr, t.port) << ": "
                                            << answers[0].describe();
    EXPECT_EQ(answers[0].failedAt, "recv");
  }
  if (!fromHost()) {
    EXPECT_EQ(counter("event.icmp_err_rev"), translated + 3);
  }
}

INSTANTIATE_TEST_SUITE_P(Clients, ServiceLbTest, ::testing::Values(ClientAt::kPod, ClientAt::kHost),
                         clientName);

}  // namespace
}  // namespace sluice
