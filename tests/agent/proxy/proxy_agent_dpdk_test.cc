// ProxyAgent in dpdk mode end to end: a real API server in-process,
// Services and EndpointSlices through its REST API, the agent's mode
// factory creating the dpdk Datapath, which starts sluice-dpdk (detached)
// on the node's uplink; real clients in a pod and an outside namespace.
//
//   node netns: the uplink slpd<pid> (owned by sluice-dpdk's net_af_packet;
//     no address), the TAP sdpa<pid> with the node address 192.168.88.1/24
//     and the service CIDR routed into it, pods on veths (topology.h)
//   outside netns: 192.168.88.2/24, the LoadBalancer pool 192.0.2.0/28
//     on-link (sluice-dpdk answers ARP for LoadBalancer IPs)
//
// The agent restarts 20 times under a TCP stream; sluice-dpdk is killed
// during 5 of them, and the agent sees the new epoch and syncs again.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "control/agent/proxy/debug_client.h"
#include "control/agent/proxy/proxy_agent.h"
#include "control/agent/proxy/service_translator.h"
#include "tests/control/controllers/control_plane.h"
#include "tests/netns/client.h"
#include "tests/netns/topology.h"

namespace sluice::agent {
namespace {

using namespace sluice::netns;  // NOLINT(google-build-using-namespace)
using client::Json;
using client::resources::kEndpointSlices;
using client::resources::kServices;
using sluice::testing::ControlPlane;

constexpr uint16_t kBackendPort = 8080;
constexpr const char* kNodeIp = "192.168.88.1";
constexpr auto kDeadline = std::chrono::seconds(30);
const std::vector<std::string> kWebPods = {"web-a", "web-b", "web-c"};

struct Node {
  std::string error;
  std::unique_ptr<Topology> topo;
  std::string outsideNetns, uplink, socket, stateFile;
  int outsideFd = -1;
  std::unique_ptr<ScopedSetns> inNode;
  std::vector<ChildProcess> servers;
  std::unique_ptr<ControlPlane> cp;
  ProxyAgentOptions options;
  std::unique_ptr<ProxyAgent> agent;

  bool start();
  Result<void> startAgent() {
    auto a = ProxyAgent::start(cp->client(), options);
    if (!a) return a.error();
    agent = std::move(*a);
    return okResult();
  }
  ~Node();
};

bool Node::start() {
  auto fail = [this](std::string why) {
    error = std::move(why);
    return false;
  };
  const char* exe = std::getenv("SLUICE_ECHO_SERVER");
  const char* dpdk = std::getenv("SLUICE_DPDK");
  if (exe == nullptr || dpdk == nullptr) return fail("SLUICE_ECHO_SERVER / SLUICE_DPDK not set");
  topo = Topology::create({"client", "web-a", "web-b", "web-c"}, &error);
  if (!topo) return false;
  for (const std::string& name : kWebPods) {
    ChildProcess p = startEchoServer(topo->pod(name).netnsFd, exe, name, kBackendPort, &error);
    if (p.pid() < 0) return false;
    servers.push_back(std::move(p));
  }
  const std::string suffix = std::to_string(::getpid());
  outsideNetns = "sluice-" + suffix + "-pdout";
  uplink = "slpd" + suffix;
  socket = "/tmp/sluice-pd-" + suffix + ".sock";
  stateFile = "/dev/shm/sluice-pd-" + suffix + ".state";
  const std::string node = topo->nodeNetns();
  if (!sh("ip netns add " + outsideNetns) ||
      !sh("ip -n " + node + " link add " + uplink + " type veth peer name eth0 netns " +
          outsideNetns) ||
      !sh("ip -n " + node + " link set " + uplink + " up") ||
      !sh("ip -n " + outsideNetns + " link set lo up") ||
      !sh("ip -n " + outsideNetns + " addr add 192.168.88.2/24 dev eth0") ||
      !sh("ip -n " + outsideNetns + " link set eth0 up") ||
      // Software checksums: net_af_packet gets a veth's frames half-done.
      !sh("ip netns exec " + outsideNetns + " ethtool -K eth0 tx off >/dev/null") ||
      !sh("ip -n " + outsideNetns + " route add 192.0.2.0/28 dev eth0")) {
    return fail("outside link (see the failed command above)");
  }
  outsideFd = ::open(("/var/run/netns/" + outsideNetns).c_str(), O_RDONLY | O_CLOEXEC);
  if (outsideFd < 0) return fail("open the outside netns");
  inNode = std::make_unique<ScopedSetns>(topo->nodeNetnsFd());
  if (!inNode->ok()) return fail("setns into the node namespace failed");
  ControlPlane::Options cpo;
  cpo.startControllers = false;
  try {
    cp = std::make_unique<ControlPlane>("proxy-agent-dpdk", cpo);
  } catch (const std::exception& e) {
    return fail(std::string("control plane: ") + e.what());
  }
  options.node.nodeName = "node-1";
  options.node.instance = "pd" + suffix;
  options.node.nodeAddresses = {IpAddress::parse(kNodeIp).value()};
  options.node.uplink = uplink;
  options.mode = "dpdk";
  options.modeFlags["dpdk"] = {
      {"socket", socket},       {"state-file", stateFile},         {"binary", dpdk},
      {"tap", "sdpa" + suffix}, {"kernel-routes", "10.96.0.0/12"}, {"conntrack-capacity", "65536"}};
  options.metricsAddr = "127.0.0.1:0";
  options.debugSocket = "/tmp/sluice-pd-" + suffix + ".debug.sock";
  if (auto r = startAgent(); !r) return fail(r.error().message);
  return true;
}

Node::~Node() {
  if (agent) {
    agent->stop();
    (void)agent->datapath().cleanup();  // stops the sluice-dpdk the agent started
    agent.reset();
  }
  cp.reset();
  servers.clear();
  inNode.reset();
  if (outsideFd >= 0) ::close(outsideFd);
  if (!outsideNetns.empty()) sh("ip netns del " + outsideNetns + " 2>/dev/null");
  topo.reset();
  std::error_code ec;
  for (const std::string& f :
       {socket, socket + ".log", socket + ".pid", stateFile, options.debugSocket}) {
    std::filesystem::remove(f, ec);
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
    delete node;
    node = nullptr;
  }
};
[[maybe_unused]] ::testing::Environment* const kNodeEnvironment =
    ::testing::AddGlobalTestEnvironment(new NodeEnvironment);

class ProxyAgentDpdkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(node, nullptr);
    ASSERT_TRUE(node->error.empty()) << "the test node could not be built: " << node->error;
  }
  client::ApiClient& api() { return node->cp->client(); }
  Placement pod() const { return {node->topo->pod("client").netnsFd, {}}; }
  Placement outside() const { return {node->outsideFd, {}}; }

  Json createService(const std::string& name, const std::string& type = "ClusterIP",
                     const Json& annotations = Json::object()) {
    Json svc = {{"apiVersion", "v1"},
                {"kind", "Service"},
                {"metadata", {{"name", name}, {"namespace", "default"}, {"annotations", annotations}}},
                {"spec",
                 {{"type", type},
                  {"ports", Json::array({{{"name", "http"},
                                          {"port", 80},
                                          {"protocol", "TCP"},
                                          {"targetPort", kBackendPort}}})}}}};
    auto r = api().create(kServices, "default", svc);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : Json();
  }
  void createSlice(const std::string& service, const std::vector<std::string>& pods) {
    Json eps = Json::array();
    for (const std::string& p : pods) {
      eps.push_back({{"addresses", Json::array({node->topo->pod(p).ip4})},
                     {"conditions", {{"ready", true}, {"serving", true}, {"terminating", false}}},
                     {"nodeName", "node-1"}});
    }
    Json slice = {
        {"apiVersion", "discovery.k8s.io/v1"},
        {"kind", "EndpointSlice"},
        {"metadata",
         {{"name", service + "-manual"},
          {"namespace", "default"},
          {"labels", {{kServiceNameLabel, service}}}}},
        {"addressType", "IPv4"},
        {"ports", Json::array({{{"name", "http"}, {"port", kBackendPort}, {"protocol", "TCP"}}})},
        {"endpoints", eps}};
    auto r = api().create(kEndpointSlices, "default", slice);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }
  static bool answeredBy(const Placement& where, const std::string& addr, uint16_t port,
                         const std::set<std::string>& want, int count = 30) {
    std::set<std::string> seen;
    const bool ok = ControlPlane::eventually(
        [&] {
          seen.clear();
          for (const Answer& a : request(where, Transport::kTcp, addr, port, count)) {
            seen.insert(a.err == 0 ? a.backend : "error: " + a.describe());
          }
          return seen == want;
        },
        kDeadline);
    if (!ok) {
      std::string got;
      for (const std::string& s : seen) got += " [" + s + "]";
      ADD_FAILURE() << addr << ":" << port << " answered by" << got;
    }
    return ok;
  }
};

// Services made through the API reach the process: a ClusterIP from a pod
// (routed into the TAP), a LoadBalancer IP and its NodePort from outside.
TEST_F(ProxyAgentDpdkTest, ClusterIpNodePortAndLoadBalancerThroughTheApi) {
  const Json cip = createService("web-cip");
  createSlice("web-cip", {"web-a", "web-b"});
  answeredBy(pod(), cip["spec"]["clusterIP"], 80, {"web-a", "web-b"});
  const Json lb = createService("web-lb", "LoadBalancer");
  ASSERT_TRUE(lb["status"]["loadBalancer"]["ingress"].is_array()) << lb.dump();
  const std::string lbIp = lb["status"]["loadBalancer"]["ingress"][0]["ip"];
  const int nodePort = lb["spec"]["ports"][0]["nodePort"];
  createSlice("web-lb", {"web-c"});
  answeredBy(outside(), lbIp, 80, {"web-c"}, 5);
  answeredBy(outside(), kNodeIp, static_cast<uint16_t>(nodePort), {"web-c"}, 5);
  EXPECT_TRUE(ControlPlane::eventually(
      [&] { return node->agent->lbAddresses().count(IpAddress::parse(lbIp).value()) == 1; },
      kDeadline));
}

// `sluice debug` and /metrics work unchanged: the frontend with its
// backends, the Maglev slots and the flows come from the process, the
// counters are its per-lcore ones summed.
TEST_F(ProxyAgentDpdkTest, DebugAndMetricsShowTheDataplanesOwnState) {
  const Json svc = createService("web-dbg", "ClusterIP",
                                 {{kLbAlgorithmAnnotation, "maglev"}, {kMaglevTableSizeAnnotation, "251"}});
  const std::string vip = svc["spec"]["clusterIP"];
  createSlice("web-dbg", {"web-b", "web-c"});
  ASSERT_TRUE(answeredBy(pod(), vip, 80, {"web-b", "web-c"}));
  auto lb = runDebugCommand(node->options.debugSocket, {"lb", "list"});
  ASSERT_TRUE(lb.ok()) << lb.error().message;
  EXPECT_NE(lb->find(vip + ":80/TCP"), std::string::npos) << *lb;
  EXPECT_NE(lb->find(node->topo->pod("web-b").ip4 + ":8080"), std::string::npos) << *lb;
  EXPECT_NE(lb->find("maglev=251"), std::string::npos) << *lb;

  // The slots as the process holds them: 251, each naming one of the two
  // backends the frontend lists, both present.
  auto mg = fetchMaglev(node->options.debugSocket, "default/web-dbg:http");
  ASSERT_TRUE(mg.ok()) << mg.error().message;
  ASSERT_EQ(mg->tables_size(), 1);
  EXPECT_EQ(mg->tables(0).size(), 251u);
  EXPECT_EQ(mg->tables(0).family(), "IPv4");
  std::set<uint32_t> listed;
  for (const auto& b : mg->backends()) listed.insert(b.id());
  const std::set<uint32_t> used(mg->tables(0).slots().begin(), mg->tables(0).slots().end());
  EXPECT_EQ(used, listed);
  EXPECT_EQ(used.size(), 2u);
  auto mgText = runDebugCommand(node->options.debugSocket, {"maglev", "default/web-dbg"});
  ASSERT_TRUE(mgText.ok()) << mgText.error().message;
  EXPECT_NE(mgText->find("251 slots"), std::string::npos) << *mgText;
  auto missing = runDebugCommand(node->options.debugSocket, {"maglev", "default/nope"});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);

  auto ct = runDebugCommand(node->options.debugSocket, {"ct", "list"});
  ASSERT_TRUE(ct.ok()) << ct.error().message;
  EXPECT_NE(ct->find(vip + ":80"), std::string::npos) << *ct;

  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(node->agent->metricsPort());
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string text;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
    const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    char buf[8192];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
      text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  EXPECT_NE(text.find("sluice_datapath_events_total{event=\"svc_new\",mode=\"dpdk\"}"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("sluice_datapath_drops_total{mode=\"dpdk\",reason=\"no_backend\"}"),
            std::string::npos);
}

// 20 agent restarts under a TCP stream from a pod through a ClusterIP: the
// dataplane is not the agent's, so nothing moves. While the agent is down
// at restarts 2, 6, 10, 14 and 18 the sluice-dpdk process itself dies
// (SIGKILL by PID) and the agent starting again starts it: it sees the new
// epoch and syncs, the stream's flow comes back from the state file.
TEST_F(ProxyAgentDpdkTest, StreamSurvivesTwentyAgentRestartsAndFiveDataplaneRestarts) {
  const Json svc = createService("web-rst");
  const std::string vip = svc["spec"]["clusterIP"];
  createSlice("web-rst", kWebPods);
  ASSERT_TRUE(answeredBy(pod(), vip, 80, {"web-a", "web-b", "web-c"}));
  StreamClient stream(pod(), vip, 80);
  ASSERT_EQ(stream.first().err, 0) << stream.first().describe();
  const std::string held = stream.first().backend;
  for (int i = 0; i < 20; ++i) {
    const std::string when = "restart " + std::to_string(i);
    node->agent->stop();
    node->agent.reset();
    Answer a = stream.ping();
    ASSERT_EQ(a.err, 0) << when << ", agent down: " << a.describe();
    ASSERT_EQ(a.backend, held) << when;
    const bool dataplaneToo = i % 4 == 2;
    if (dataplaneToo) {
      std::ifstream pidIn(node->socket + ".pid");
      pid_t pid = 0;
      ASSERT_TRUE(pidIn >> pid) << "no PID file of the started sluice-dpdk";
      ::kill(pid, SIGKILL);
      for (int t = 0; t < 100 && ::kill(pid, 0) == 0; ++t)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    auto r = node->startAgent();  // starts sluice-dpdk again when it is gone
    ASSERT_TRUE(r.ok()) << when << ": " << r.error().message;
    if (dataplaneToo) {
      ASSERT_TRUE(answeredBy(pod(), vip, 80, {"web-a", "web-b", "web-c"})) << when;
    }
    a = stream.ping();
    EXPECT_EQ(a.err, 0) << when << ", agent back: " << a.describe();
    EXPECT_EQ(a.backend, held) << when;
  }
}

}  // namespace
}  // namespace sluice::agent
