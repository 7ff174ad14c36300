// sluice-dpdk as a process, with real clients over real veths:
//
//   outside netns: eth0 192.168.88.2/24, the LoadBalancer pool on-link
//        | veth
//   node netns: the uplink (no address: net_af_packet of sluice-dpdk owns
//     it, the kernel's copy is dropped at tc ingress), sluice-dpdk's TAP
//     with the node address 192.168.88.1/24 and the service CIDR route,
//     pods web-a/b/c (echo servers on 8080) and client on veths
//     (tests/netns/topology.h), forwarding on.
//
// The test drives the process over its gRPC socket as the agent's dpdk
// mode would (streamed sync, apply), then asserts on what clients saw:
// NodePort and LoadBalancer from outside, ClusterIP from a pod, affinity
// for 15 requests, refused fast without endpoints, UDP, and a TCP stream
// that keeps its backend across 5 restarts of sluice-dpdk (SIGTERM and
// SIGKILL alternately; the flows come back from the state file).
//
// Direct server return has a backend host of its own, behind the outside
// namespace acting as the node's gateway (DsrLoadBalancerIsAnsweredBy...).
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <net/if.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bpf/loader/tc_attach.h"
#include "dataplane/dpdk/api_codec.h"
#include "dsr_decap.skel.h"
#include "dataplane/dpdk/dpdk.grpc.pb.h"
#include "tests/bpf/packet_cases.h"
#include "tests/netns/client.h"
#include "tests/netns/topology.h"

namespace sluice::dpdk {
namespace {

using namespace sluice::netns;  // NOLINT(google-build-using-namespace)
using sluice::testing::backend;
using sluice::testing::frontend;
using sluice::testing::service;

constexpr uint16_t kBackendPort = 8080;
constexpr const char* kNodeIp = "192.168.88.1";
constexpr const char* kOutsideIp = "192.168.88.2";
constexpr const char* kLbIp = "198.51.100.10";
// The outside end of the uplink: the node's gateway (--gateway-mac).
constexpr const char* kGatewayMac = "02:00:00:00:88:02";
const std::vector<std::string> kWebPods = {"web-a", "web-b", "web-c"};

struct Node {
  std::string error;
  std::unique_ptr<Topology> topo;
  std::string outsideNetns, uplink, tap, socket, stateFile, log;
  int outsideFd = -1;
  std::vector<ChildProcess> servers;
  pid_t dataplane = -1;
  ServiceTable table;
  // Whether startDataplane() passes --gateway-mac (the outside host's MAC).
  bool gatewayMac = true;
  std::vector<std::string> extraArgs;  // more flags for startDataplane()

  bool start();
  bool startDataplane();
  // Signals the process and reaps it; false when it was still running 10 s
  // later (then it is SIGKILLed).
  bool stopDataplane(int sig);
  std::unique_ptr<api::Dataplane::Stub> stub() const {
    return api::Dataplane::NewStub(
        grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()));
  }
  Result<uint64_t> sync();
  ~Node();
};

bool Node::start() {
  auto fail = [this](std::string why) {
    error = std::move(why);
    return false;
  };
  const char* exe = std::getenv("SLUICE_ECHO_SERVER");
  if (exe == nullptr || std::getenv("SLUICE_DPDK") == nullptr) {
    return fail("SLUICE_ECHO_SERVER / SLUICE_DPDK not set (run through meson test)");
  }
  std::vector<std::string> pods = {"client"};
  pods.insert(pods.end(), kWebPods.begin(), kWebPods.end());
  topo = Topology::create(pods, &error);
  if (!topo) return false;
  for (const std::string& name : kWebPods) {
    ChildProcess p = startEchoServer(topo->pod(name).netnsFd, exe, name, kBackendPort, &error);
    if (p.pid() < 0) return false;
    servers.push_back(std::move(p));
  }
  const std::string suffix = std::to_string(::getpid());
  outsideNetns = "sluice-" + suffix + "-dpout";
  uplink = "sdpu" + suffix;
  tap = "sdpt" + suffix;
  socket = "/tmp/sluice-dpdk-test-" + suffix + ".sock";
  stateFile = "/dev/shm/sluice-dpdk-test-" + suffix + ".state";
  log = "/tmp/sluice-dpdk-test-" + suffix + ".log";
  const std::string node = topo->nodeNetns();
  if (!sh("ip netns add " + outsideNetns) ||
      !sh("ip -n " + node + " link add " + uplink + " type veth peer name eth0 netns " +
          outsideNetns) ||
      !sh("ip -n " + node + " link set " + uplink + " up") ||
      !sh("ip -n " + outsideNetns + " link set lo up") ||
      !sh("ip -n " + outsideNetns + " link set eth0 address " + kGatewayMac) ||
      !sh("ip -n " + outsideNetns + " addr add " + kOutsideIp + "/24 dev eth0") ||
      !sh("ip -n " + outsideNetns + " link set eth0 up") ||
      // A veth hands frames over with the checksum still to be computed
      // (CHECKSUM_PARTIAL); a NIC's wire never does, and the packet socket
      // of net_af_packet passes the half-done sum on. Outside clients
      // checksum in software, as hosts behind a real wire do.
      !sh("ip netns exec " + outsideNetns + " ethtool -K eth0 tx off >/dev/null") ||
      !sh("ip -n " + outsideNetns + " route add 198.51.100.0/24 dev eth0")) {
    return fail("outside link (see the failed command above)");
  }
  outsideFd = ::open(("/var/run/netns/" + outsideNetns).c_str(), O_RDONLY | O_CLOEXEC);
  if (outsideFd < 0) return fail("open the outside netns");
  return startDataplane();
}

bool Node::startDataplane() {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    if (::setns(topo->nodeNetnsFd(), CLONE_NEWNET) != 0) ::_exit(126);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    const std::string dp = std::getenv("SLUICE_DPDK");
    std::vector<std::string> args = {dp,
                                           "--uplink-vdev",
                                           "net_af_packet0,iface=" + uplink,
                                           "--tap",
                                           tap,
                                           "--socket",
                                           socket,
                                           "--state-file",
                                           stateFile,
                                           "--kernel-address",
                                           std::string(kNodeIp) + "/24",
                                           "--kernel-route",
                                           "10.96.0.0/16",
                                           "--node-address",
                                           kNodeIp,
                                           "--conntrack-capacity",
                                           "65536",
                                           "--memory",
                                           "256",
                                           "--file-prefix",
                                           "sluice-dpdk-test-" + std::to_string(::getppid())};
    if (gatewayMac) args.insert(args.end(), {"--gateway-mac", kGatewayMac});
    args.insert(args.end(), extraArgs.begin(), extraArgs.end());
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(dp.c_str(), argv.data());
    ::_exit(127);
  }
  dataplane = pid;
  // Ready once the API answers (EAL, ports and the TAP come first).
  for (int i = 0; i < 300; ++i) {
    api::StatusReply reply;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    if (std::filesystem::exists(socket) && stub()->Status(&ctx, api::StatusRequest(), &reply).ok())
      return true;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      dataplane = -1;
      error = "sluice-dpdk exited (status " + std::to_string(status) + "); see " + log;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  error = "sluice-dpdk did not answer on " + socket + "; see " + log;
  return false;
}

bool Node::stopDataplane(int sig) {
  if (dataplane < 0) return true;
  ::kill(dataplane, sig);
  int status = 0;
  bool stopped = false;
  for (int i = 0; i < 200 && !stopped; ++i) {
    stopped = ::waitpid(dataplane, &status, WNOHANG) == dataplane;
    if (!stopped) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!stopped) {  // 10 s: it ignored the signal; never leave it running
    ::kill(dataplane, SIGKILL);
    ::waitpid(dataplane, &status, 0);
  }
  dataplane = -1;
  return stopped;
}

Result<uint64_t> Node::sync() {
  api::SyncChunk chunk;
  for (const auto& [key, s] : table) toProto(s, *chunk.add_services());
  api::SyncReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto writer = stub()->Sync(&ctx, &reply);
  writer->Write(chunk);
  writer->WritesDone();
  const grpc::Status s = writer->Finish();
  if (!s.ok()) return Error::internal("sync: " + s.error_message());
  return reply.epoch();
}

Node::~Node() {
  stopDataplane(SIGTERM);
  servers.clear();
  if (outsideFd >= 0) ::close(outsideFd);
  if (!outsideNetns.empty()) sh("ip netns del " + outsideNetns + " 2>/dev/null");
  topo.reset();
  std::error_code ec;
  for (const std::string& f : {socket, stateFile, log}) {
    if (!f.empty()) std::filesystem::remove(f, ec);
  }
}

Node* node = nullptr;

class NodeEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    node = new Node();
    node->start();
  }
  void TearDown() override {
    // Debugging aid: keep the namespaces and the process for inspection.
    if (const char* hold = std::getenv("SLUICE_DPDK_TEST_HOLD_S"))
      ::sleep(unsigned(std::atoi(hold)));
    delete node;
    node = nullptr;
  }
};
[[maybe_unused]] ::testing::Environment* const kNodeEnvironment =
    ::testing::AddGlobalTestEnvironment(new NodeEnvironment);

class DataplaneProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(node, nullptr);
    ASSERT_TRUE(node->error.empty()) << "the test node could not be built: " << node->error;
  }
  Placement outside() const { return {node->outsideFd, {}}; }
  Placement pod() const { return {node->topo->pod("client").netnsFd, {}}; }

  // The web pods as backends on this node.
  static std::vector<Backend> webBackends(const std::vector<std::string>& pods = kWebPods) {
    std::vector<Backend> out;
    for (const std::string& p : pods) {
      out.push_back(
          backend(node->topo->pod(p).ip4.c_str(), kBackendPort, BackendState::kActive, true));
    }
    return out;
  }
  void add(Service s) {
    ASSERT_TRUE(node->table.upsert(std::move(s)).ok());
    auto r = node->sync();
    ASSERT_TRUE(r.ok()) << r.error().message;
  }
  // One counter of the process (0 when it has none of that name).
  static uint64_t counter(const std::string& name) {
    api::StatusReply r;
    grpc::ClientContext ctx;
    node->stub()->Status(&ctx, api::StatusRequest(), &r);
    for (const auto& c : r.counters()) {
      if (c.name() == name) return c.value();
    }
    return 0;
  }
  // Non-zero counters of the process, for failure messages.
  static std::string counters() {
    api::StatusReply r;
    grpc::ClientContext ctx;
    node->stub()->Status(&ctx, api::StatusRequest(), &r);
    std::string out;
    for (const auto& c : r.counters()) {
      if (c.value() != 0) out += " " + c.name() + "=" + std::to_string(c.value());
    }
    return out;
  }
  static std::set<std::string> backendsOf(const std::vector<Answer>& answers) {
    std::set<std::string> seen;
    for (const Answer& a : answers) seen.insert(a.err == 0 ? a.backend : "error: " + a.describe());
    return seen;
  }
};

// Outside clients reach a NodePort and a LoadBalancer IP (whose ARP the
// process answers on the uplink), spread over the three pods.
TEST_F(DataplaneProcessTest, OutsideClientsReachNodePortAndLoadBalancerIp) {
  add(service("web-np", Protocol::kTcp,
              {frontend(kNodeIp, 30080, Protocol::kTcp, FrontendScope::kNodePort),
               frontend(kLbIp, 80, Protocol::kTcp, FrontendScope::kLoadBalancer)},
              webBackends()));
  const std::set<std::string> all(kWebPods.begin(), kWebPods.end());
  EXPECT_EQ(backendsOf(request(outside(), Transport::kTcp, kNodeIp, 30080, 30)), all) << counters();
  EXPECT_EQ(backendsOf(request(outside(), Transport::kTcp, kLbIp, 80, 30)), all) << counters();
}

// A pod reaches a ClusterIP: the kernel routes the service CIDR into the
// TAP, the process full-NATs to a pod on this node.
TEST_F(DataplaneProcessTest, PodReachesClusterIp) {
  add(service("web-cip", Protocol::kTcp, {frontend("10.96.0.10", 80)},
              webBackends({"web-a", "web-b"})));
  EXPECT_EQ(backendsOf(request(pod(), Transport::kTcp, "10.96.0.10", 80, 20)),
            (std::set<std::string>{"web-a", "web-b"}));
}

// sessionAffinity ClientIP: 15 connections from one outside client, one pod.
TEST_F(DataplaneProcessTest, AffinityHoldsForFifteenRequests) {
  Service s =
      service("web-sticky", Protocol::kTcp,
              {frontend(kNodeIp, 30081, Protocol::kTcp, FrontendScope::kNodePort)}, webBackends());
  s.affinity.clientIp = true;
  s.affinity.timeoutSeconds = 300;
  add(s);
  const auto seen = backendsOf(request(outside(), Transport::kTcp, kNodeIp, 30081, 15));
  EXPECT_EQ(seen.size(), 1u) << *seen.begin();
  EXPECT_EQ(seen.begin()->rfind("web-", 0), 0u) << *seen.begin();
}

// No endpoints: refused at once (RST), not a timeout.
TEST_F(DataplaneProcessTest, NoEndpointsIsRefusedFast) {
  add(service("web-empty", Protocol::kTcp,
              {frontend(kNodeIp, 30082, Protocol::kTcp, FrontendScope::kNodePort)}, {}));
  const auto start = std::chrono::steady_clock::now();
  const Answer a = request(outside(), Transport::kTcp, kNodeIp, 30082).front();
  EXPECT_EQ(a.err, ECONNREFUSED) << a.describe();
  // A SYN retransmission would take 1 s: the refusal comes well before.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
}

// UDP through a NodePort from outside.
TEST_F(DataplaneProcessTest, UdpNodePortAnswers) {
  add(service(
      "dns-np", Protocol::kUdp,
      {frontend(kNodeIp, 30053, Protocol::kUdp, FrontendScope::kNodePort)},
      {backend(node->topo->pod("web-c").ip4.c_str(), kBackendPort, BackendState::kActive, true)}));
  EXPECT_EQ(backendsOf(request(outside(), Transport::kUdp, kNodeIp, 30053, 5)),
            (std::set<std::string>{"web-c"}));
}

// A TCP stream from outside keeps answering from its pod across 5
// restarts of sluice-dpdk (SIGTERM and SIGKILL alternately): the new
// process re-adopts the flow from the state file, reports another epoch,
// and the client (here the test, as the agent would) syncs again.
TEST_F(DataplaneProcessTest, StreamSurvivesFiveDataplaneRestarts) {
  add(service("web-rst", Protocol::kTcp,
              {frontend(kNodeIp, 30083, Protocol::kTcp, FrontendScope::kNodePort)}, webBackends()));
  StreamClient stream(outside(), kNodeIp, 30083);
  ASSERT_EQ(stream.first().err, 0) << stream.first().describe();
  const std::string held = stream.first().backend;
  uint64_t epoch = 0;
  for (int i = 0; i < 5; ++i) {
    const std::string when = "restart " + std::to_string(i);
    ASSERT_EQ(stream.ping().backend, held) << when << ", before";
    ASSERT_TRUE(node->stopDataplane(i % 2 == 0 ? SIGTERM : SIGKILL)) << when << ": ignored the signal";
    ASSERT_TRUE(node->startDataplane()) << when << ": " << node->error;
    auto status = [&] {
      api::StatusReply r;
      grpc::ClientContext ctx;
      node->stub()->Status(&ctx, api::StatusRequest(), &r);
      return r;
    }();
    EXPECT_GE(status.adopted_flows(), 1u) << when;
    EXPECT_NE(status.epoch(), epoch) << when;
    auto synced = node->sync();
    ASSERT_TRUE(synced.ok()) << synced.error().message;
    epoch = *synced;
    const Answer a = stream.ping();
    EXPECT_EQ(a.err, 0) << when << ": " << a.describe();
    EXPECT_EQ(a.backend, held) << when;
  }
  // New connections still spread after the last restart.
  const std::set<std::string> all(kWebPods.begin(), kWebPods.end());
  EXPECT_EQ(backendsOf(request(outside(), Transport::kTcp, kNodeIp, 30083, 30)), all);
}

// A backend on another host and no --gateway-mac: the process asks the
// node's kernel for the next hop (its route through the TAP, then its
// neighbour entry, which the kernel resolves with ARP through the TAP,
// the uplink and back through the exception path), and frames for the
// backend carry that host's MAC. The backend here is the outside host
// itself, on the node's link; its clients reach it through a NodePort
// (full NAT: the replies come back to the node address). Over IPv4 (ARP)
// and IPv6 (neighbour discovery): for this test the node and the outside
// host also get an address of fd00:88::/64.
TEST_F(DataplaneProcessTest, RemoteBackendsNextHopIsResolvedThroughTheKernel) {
  constexpr const char* kNodeIp6 = "fd00:88::1";
  constexpr const char* kOutsideIp6 = "fd00:88::2";
  std::string error;
  ChildProcess far =
      startEchoServer(node->outsideFd, std::getenv("SLUICE_ECHO_SERVER"), "outside-host", 8081, &error);
  ASSERT_GT(far.pid(), 0) << error;
  ASSERT_TRUE(node->stopDataplane(SIGTERM));
  node->gatewayMac = false;
  node->extraArgs = {"--kernel-address", std::string(kNodeIp6) + "/64", "--node-address", kNodeIp6};
  // The other tests' process again, however this one ends.
  struct Restore {
    ~Restore() {
      node->stopDataplane(SIGTERM);
      node->gatewayMac = true;
      node->extraArgs.clear();
      sh("ip -n " + node->outsideNetns + " addr del fd00:88::2/64 dev eth0 2>/dev/null");
      if (node->startDataplane()) (void)node->sync();
    }
  } restore;
  ASSERT_TRUE(sh("ip -n " + node->outsideNetns + " addr add " + kOutsideIp6 + "/64 dev eth0 nodad"));
  ASSERT_TRUE(node->startDataplane()) << node->error;
  ASSERT_TRUE(node->sync().ok());
  add(service("remote-np", Protocol::kTcp,
              {frontend(kNodeIp, 30085, Protocol::kTcp, FrontendScope::kNodePort)},
              {backend(kOutsideIp, 8081)}));
  add(service("remote-np6", Protocol::kTcp,
              {frontend(kNodeIp6, 30086, Protocol::kTcp, FrontendScope::kNodePort)},
              {backend(kOutsideIp6, 8081)}));
  EXPECT_EQ(backendsOf(request(outside(), Transport::kTcp, kNodeIp, 30085, 10)),
            (std::set<std::string>{"outside-host"}))
      << counters();
  EXPECT_EQ(backendsOf(request(outside(), Transport::kTcp, kNodeIp6, 30086, 10)),
            (std::set<std::string>{"outside-host"}))
      << counters();
  EXPECT_EQ(counter("neighbour.resolved"), 2u) << counters();
  EXPECT_EQ(counter("neighbour.unrouted"), 0u) << counters();
}

// SIGTERM stops the process every time, whichever of its threads the
// kernel hands the signal to (a handler setting a flag for pause() in the
// main thread did not: a test's cleanup left a process running).
TEST_F(DataplaneProcessTest, SigtermAlwaysStopsIt) {
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(node->stopDataplane(SIGTERM)) << "start " << i << ": still running 10 s after SIGTERM";
    ASSERT_TRUE(node->startDataplane()) << node->error;
  }
  ASSERT_TRUE(node->sync().ok());
}

// A backend host outside the node, for DSR: netns "far" behind the outside
// namespace (which routes between the node's link and far's), holding the
// VIP on lo and decapsulating with bpf/dsr_decap.bpf.c at tc ingress (this
// kernel has no ipip module), an echo server on the service port.
struct FarHost {
  std::string netns, error;
  int fd = -1;
  ChildProcess server;
  dsr_decap_bpf* skel = nullptr;

  bool start(const std::string& vip, uint16_t port) {
    netns = "sluice-" + std::to_string(::getpid()) + "-dpfar";
    const std::string out = node->outsideNetns;
    const std::string far0 = "far" + std::to_string(::getpid() % 100000);
    if (!sh("ip netns add " + netns) || !sh("ip -n " + netns + " link set lo up") ||
        !sh("ip -n " + out + " link add " + far0 + " type veth peer name eth0 netns " + netns) ||
        !sh("ip -n " + out + " addr add 192.168.89.1/24 dev " + far0) ||
        !sh("ip -n " + out + " link set " + far0 + " up") ||
        !sh("ip netns exec " + out + " sysctl -qw net.ipv4.ip_forward=1") ||
        !sh("ip netns exec " + out + " sysctl -qw net.ipv4.conf.all.rp_filter=0") ||
        !sh("ip netns exec " + out + " sysctl -qw net.ipv4.conf." + far0 + ".rp_filter=0") ||
        !sh("ip -n " + netns + " addr add 192.168.89.2/24 dev eth0") ||
        !sh("ip -n " + netns + " link set eth0 up") ||
        !sh("ip -n " + netns + " route add default via 192.168.89.1") ||
        !sh("ip -n " + netns + " addr add " + vip + "/32 dev lo")) {
      error = "far host links (see the failed command above)";
      return false;
    }
    fd = ::open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      error = "open the far netns";
      return false;
    }
    skel = dsr_decap_bpf__open_and_load();
    if (skel == nullptr) {
      error = "load dsr_decap.bpf.o";
      return false;
    }
    {
      ScopedSetns in(fd);
      auto r = bpf::tcAttach(static_cast<int>(if_nametoindex("eth0")), bpf::TcDirection::kIngress,
                             bpf_program__fd(skel->progs.dsr_decap));
      if (!r) {
        error = "attach dsr_decap: " + r.error().message;
        return false;
      }
    }
    server = startEchoServer(fd, std::getenv("SLUICE_ECHO_SERVER"), "far", port, &error);
    return server.pid() > 0;
  }
  ~FarHost() {
    server = ChildProcess();
    if (fd >= 0) ::close(fd);
    if (skel != nullptr) dsr_decap_bpf__destroy(skel);
    if (!netns.empty()) sh("ip netns del " + netns + " 2>/dev/null");
  }
};

// sluice.io/dpdk-forwarding: dsr. Requests from outside to a LoadBalancer
// IP whose backend is the far host: the process encapsulates each packet
// to it (IPIP via the gateway), the far host decapsulates and answers from
// the VIP straight to the client. The client is answered by the far host;
// the process counted its packets as dsr, saw none of the replies (no
// reverse NAT), and tracks the flows without SNAT.
TEST_F(DataplaneProcessTest, DsrLoadBalancerIsAnsweredByTheRemoteBackendDirectly) {
  constexpr const char* kDsrVip = "198.51.100.20";
  FarHost far;
  ASSERT_TRUE(far.start(kDsrVip, 80)) << far.error;
  Service s = service("web-dsr", Protocol::kTcp,
                      {frontend(kDsrVip, 80, Protocol::kTcp, FrontendScope::kLoadBalancer)},
                      {backend("192.168.89.2", 80)});
  s.modeOptions["dpdk-forwarding"] = "dsr";
  add(s);
  const uint64_t dsrBefore = counter("event.dsr"), revNatBefore = counter("event.rev_nat");
  EXPECT_EQ(backendsOf(request(outside(), Transport::kTcp, kDsrVip, 80, 10)),
            (std::set<std::string>{"far"}))
      << counters();
  // Each connection's SYN, ACK, request and FIN (at least) went out encapsulated.
  EXPECT_GE(counter("event.dsr") - dsrBefore, 40u) << counters();
  EXPECT_EQ(counter("event.rev_nat"), revNatBefore) << "a reply passed the dataplane";
  // The flows name the service (its id as the frontends list it).
  uint32_t serviceId = 0;
  api::FrontendList frontends;
  grpc::ClientContext frontendsCtx;
  ASSERT_TRUE(
      node->stub()->DescribeFrontends(&frontendsCtx, api::DescribeRequest(), &frontends).ok());
  for (const api::DescribedFrontend& d : frontends.frontends()) {
    if (d.service().find("/web-dsr") != std::string::npos) serviceId = d.service_id();
  }
  ASSERT_NE(serviceId, 0u);
  api::FlowList flows;
  grpc::ClientContext ctx;
  ASSERT_TRUE(node->stub()->DescribeFlows(&ctx, api::DescribeFlowsRequest(), &flows).ok());
  int dsrFlows = 0;
  for (const api::Flow& f : flows.flows()) {
    auto dst = addressFrom(f.destination());
    if (!dst || dst->toString() != kDsrVip) continue;
    ++dsrFlows;
    EXPECT_TRUE(f.snat().empty()) << "a DSR flow has no SNAT";
    EXPECT_EQ(f.service_id(), serviceId);
  }
  EXPECT_GE(dsrFlows, 1) << "the connections' flows are tracked";
}

}  // namespace
}  // namespace sluice::dpdk

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (::geteuid() != 0) {
    std::fprintf(stderr, "SKIP: the sluice-dpdk process test needs root (netns, veth, TAP)\n");
    return 77;
  }
  if (std::system("ip -V >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "SKIP: iproute2's `ip` is not installed\n");
    return 77;
  }
  return RUN_ALL_TESTS();
}
