// ProxyAgent end to end: a real API server in-process, Services and
// EndpointSlices created through its REST API, the agent in ebpf mode
// programming a node network namespace, and real clients (pod, host cgroup,
// an outside namespace through the uplink) asserting on what they saw.
//
//   test process: runs in the node netns (so do the API server, the
//     informers, /metrics and the debug socket: loopback there)
//   node netns:   pods client, web-a, web-b, web-c on veths (bpf_lxc via
//     ProxyAgent::onPodInterface), the uplink slpx<pid> 192.168.88.1/24
//     (bpf_host + XDP; LoadBalancer IPs appear on it as /32s)
//   outside netns: 192.168.88.2/24, the LoadBalancer pool on-link
//
// Backends are user-managed EndpointSlices (services without selector)
// pointing at echo servers in the pods: no controllers run.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "control/agent/proxy/debug_client.h"
#include "bpf/loader/ebpf_datapath.h"
#include "bpf/loader/kernel_features.h"
#include "bpf/loader/uplink_addresses.h"
#include "control/agent/proxy/proxy_agent.h"
#include "tests/bpf/bpffs.h"
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
constexpr const char* kUplinkIp = "192.168.88.1";
constexpr const char* kOutsideIp = "192.168.88.2";
constexpr auto kDeadline = std::chrono::seconds(30);
const std::vector<std::string> kWebPods = {"web-a", "web-b", "web-c"};

// RFC3339Nano now, as the EndpointSlice controller writes trigger times.
std::string nowRfc3339() {
  const auto now = std::chrono::system_clock::now();
  const time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(
                         now.time_since_epoch()).count() % 1000000000;
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(nanos));
  return buf;
}

struct Node {
  std::string error;
  std::unique_ptr<sluice::testing::ScopedBpffs> fs;
  std::unique_ptr<ScopedCgroup> cgroup;
  std::unique_ptr<Topology> topo;
  std::string outsideNetns;
  int outsideFd = -1;
  std::string uplink;
  std::unique_ptr<ScopedSetns> inNode;
  std::vector<ChildProcess> servers;
  std::unique_ptr<ControlPlane> cp;
  std::string debugDir;
  ProxyAgentOptions options;
  std::unique_ptr<ProxyAgent> agent;

  bool start();
  Result<void> startAgent();
  ~Node();
};

bool Node::start() {
  auto fail = [this](std::string why) {
    error = std::move(why);
    return false;
  };
  fs = std::make_unique<sluice::testing::ScopedBpffs>();
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
  const std::string suffix = std::to_string(::getpid());
  outsideNetns = "sluice-" + suffix + "-pxout";
  uplink = "slpx" + suffix;
  const std::string node = topo->nodeNetns();
  if (!sh("ip netns add " + outsideNetns)) return fail("outside netns");
  if (!sh("ip -n " + node + " link add " + uplink + " type veth peer name eth0 netns " +
          outsideNetns) ||
      !sh("ip -n " + node + " addr add " + kUplinkIp + "/24 dev " + uplink) ||
      !sh("ip -n " + node + " link set " + uplink + " up") ||
      !sh("ip netns exec " + node + " sysctl -qw net.ipv4.conf." + uplink +
          ".forwarding=1 net.ipv4.conf." + uplink + ".rp_filter=0") ||
      !sh("ip -n " + outsideNetns + " link set lo up") ||
      !sh("ip -n " + outsideNetns + " addr add " + kOutsideIp + "/24 dev eth0") ||
      !sh("ip -n " + outsideNetns + " link set eth0 up") ||
      // The ControlPlane's LoadBalancer pool, on-link: the client ARPs.
      !sh("ip -n " + outsideNetns + " route add 192.0.2.0/28 dev eth0")) {
    return fail("outside link (see the failed command above)");
  }
  outsideFd = ::open(("/var/run/netns/" + outsideNetns).c_str(), O_RDONLY | O_CLOEXEC);
  if (outsideFd < 0) return fail("open the outside netns");

  // Everything from here on (server, informers, sockets) lives in the node.
  inNode = std::make_unique<ScopedSetns>(topo->nodeNetnsFd());
  if (!inNode->ok()) return fail("setns into the node namespace failed");
  ControlPlane::Options cpo;
  cpo.startControllers = false;
  try {
    cp = std::make_unique<ControlPlane>("proxy-agent", cpo);
  } catch (const std::exception& e) {
    return fail(std::string("control plane: ") + e.what());
  }
  debugDir = "/tmp/sluice-px-" + suffix;
  options.node.nodeName = "node-1";
  options.node.nodeAddresses = {IpAddress::parse(kUplinkIp).value()};
  options.node.uplink = uplink;
  options.mode = "ebpf";
  options.modeFlags["ebpf"] = {{"pin-dir", fs->pinDir()}, {"cgroup", cgroup->path()}};
  options.metricsAddr = "127.0.0.1:0";
  options.debugSocket = debugDir + "/agent.sock";
  if (auto r = startAgent(); !r) return fail(r.error().message);
  return true;
}

Result<void> Node::startAgent() {
  auto a = ProxyAgent::start(cp->client(), options);
  if (!a) return a.error();
  agent = std::move(*a);
  for (const Pod& p : topo->pods()) {
    if (auto r = agent->onPodInterface(p.hostVeth); !r) return r;
  }
  return okResult();
}

Node::~Node() {
  if (agent) {
    // Leave nothing behind: the cgroup links are pinned and outlive us.
    agent->stop();
    if (cgroup && cgroup->ok()) (void)agent->datapath().cleanup();
    agent.reset();
  }
  cp.reset();
  servers.clear();
  inNode.reset();
  if (outsideFd >= 0) ::close(outsideFd);
  if (!outsideNetns.empty()) sh("ip netns del " + outsideNetns + " 2>/dev/null");
  topo.reset();
  cgroup.reset();
  fs.reset();
  std::error_code ec;
  if (!debugDir.empty()) std::filesystem::remove_all(debugDir, ec);
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

class ProxyAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(node, nullptr);
    ASSERT_TRUE(node->error.empty()) << "the test node could not be built: " << node->error;
  }

  client::ApiClient& api() { return node->cp->client(); }

  Placement host() const { return {node->topo->nodeNetnsFd(), node->cgroup->procsFile()}; }
  Placement pod() const { return {node->topo->pod("client").netnsFd, {}}; }
  Placement outside() const { return {node->outsideFd, {}}; }

  // A service without selector: backends come from the slices we write.
  Json createService(const std::string& name, const std::string& type = "ClusterIP",
                     const Json& annotations = Json::object()) {
    Json svc = {{"apiVersion", "v1"},
                {"kind", "Service"},
                {"metadata", {{"name", name}, {"namespace", "default"}, {"annotations", annotations}}},
                {"spec",
                 {{"type", type},
                  {"ports", Json::array({{{"name", "http"}, {"port", 80}, {"protocol", "TCP"},
                                          {"targetPort", kBackendPort}}})}}}};
    auto r = api().create(kServices, "default", svc);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? *r : Json();
  }

  Json sliceEndpoints(const std::vector<std::string>& pods, bool ready = true) {
    Json eps = Json::array();
    for (const std::string& p : pods) {
      eps.push_back({{"addresses", Json::array({node->topo->pod(p).ip4})},
                     {"conditions", {{"ready", ready}, {"serving", true}, {"terminating", !ready}}},
                     {"nodeName", "node-1"}});
    }
    return eps;
  }

  void createSlice(const std::string& service, const std::vector<std::string>& pods) {
    Json slice = {
        {"apiVersion", "discovery.k8s.io/v1"},
        {"kind", "EndpointSlice"},
        {"metadata",
         {{"name", service + "-manual"},
          {"namespace", "default"},
          {"labels", {{kServiceNameLabel, service}}},
          {"annotations", {{kLastChangeTriggerTimeAnnotation, nowRfc3339()}}}}},
        {"addressType", "IPv4"},
        {"ports", Json::array({{{"name", "http"}, {"port", kBackendPort}, {"protocol", "TCP"}}})},
        {"endpoints", sliceEndpoints(pods)}};
    auto r = api().create(kEndpointSlices, "default", slice);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }

  void updateSlice(const std::string& service, const std::vector<std::string>& pods,
                   bool ready = true) {
    Json patch = {{"metadata", {{"annotations", {{kLastChangeTriggerTimeAnnotation, nowRfc3339()}}}}},
                  {"endpoints", sliceEndpoints(pods, ready)}};
    auto r = api().patch(kEndpointSlices, "default", service + "-manual", patch);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }

  // Polls until `count` requests all answer and the set of backends seen
  // is exactly `want`.
  static bool answeredBy(const Placement& where, const std::string& addr, uint16_t port,
                         const std::set<std::string>& want, int count = 30,
                         Transport t = Transport::kTcp) {
    std::set<std::string> seen;
    const bool ok = ControlPlane::eventually(
        [&] {
          seen.clear();
          for (const Answer& a : request(where, t, addr, port, count)) {
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

  static std::string scrape(uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string out;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
      const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
      (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
      char buf[8192];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
  }

  // The value of the sample line starting with `prefix` ("name " or
  // "name{labels} "), or -1.
  static double sample(const std::string& text, const std::string& prefix) {
    size_t at = text.rfind("\n" + prefix);
    if (at == std::string::npos) return -1;
    return std::atof(text.c_str() + at + 1 + prefix.size());
  }
};

// A ClusterIP from the host (socket hooks) and from a pod (bpf_lxc) reaches
// exactly the slice's endpoints.
TEST_F(ProxyAgentTest, ClusterIpFromHostAndPodReachesTheSliceEndpoints) {
  const Json svc = createService("web-cip");
  const std::string vip = svc["spec"]["clusterIP"];
  createSlice("web-cip", {"web-a", "web-b"});
  answeredBy(host(), vip, 80, {"web-a", "web-b"});
  answeredBy(pod(), vip, 80, {"web-a", "web-b"});
}

// Changes through the API reach the datapath: a new endpoint set, then
// terminating-only endpoints (the fallback), then no slice: refused.
TEST_F(ProxyAgentTest, EndpointChangesBecomeVisibleAndNoSliceMeansRefused) {
  const Json svc = createService("web-chg");
  const std::string vip = svc["spec"]["clusterIP"];
  createSlice("web-chg", {"web-a"});
  ASSERT_TRUE(answeredBy(host(), vip, 80, {"web-a"}, 5));
  updateSlice("web-chg", {"web-c"});
  ASSERT_TRUE(answeredBy(host(), vip, 80, {"web-c"}, 10));
  updateSlice("web-chg", {"web-b"}, /*ready=*/false);
  ASSERT_TRUE(answeredBy(host(), vip, 80, {"web-b"}, 5));

  auto r = api().remove(kEndpointSlices, "default", "web-chg-manual");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const bool refused = ControlPlane::eventually(
      [&] {
        const Answer a = request(host(), Transport::kTcp, vip, 80).front();
        return a.err == ECONNREFUSED;
      },
      kDeadline);
  EXPECT_TRUE(refused) << request(host(), Transport::kTcp, vip, 80).front().describe();
  // ... and from a pod: the per-packet path answers with a RST too.
  EXPECT_EQ(request(pod(), Transport::kTcp, vip, 80).front().err, ECONNREFUSED);
}

// Deleting the Service removes its frontends: nothing of it is left in the
// maps the agent owns.
TEST_F(ProxyAgentTest, DeletingTheServiceRemovesItsFrontends) {
  const Json svc = createService("web-del");
  const std::string vip = svc["spec"]["clusterIP"];
  createSlice("web-del", {"web-a"});
  ASSERT_TRUE(answeredBy(host(), vip, 80, {"web-a"}, 3));
  ASSERT_TRUE(api().remove(kServices, "default", "web-del").ok());
  EXPECT_TRUE(ControlPlane::eventually(
      [&] { return node->agent->sync().table().find(ServiceKey{"default", "web-del", "http"}) == nullptr; },
      kDeadline));
  auto list = fetchServices(node->options.debugSocket);
  ASSERT_TRUE(list.ok()) << list.error().message;
  for (const auto& f : list->frontends()) EXPECT_NE(f.address(), vip + ":80");
}

// kube-proxy's programming latency: the slice's trigger time to applied.
TEST_F(ProxyAgentTest, MetricsShowNetworkProgrammingLatency) {
  const Json svc = createService("web-met");
  const std::string vip = svc["spec"]["clusterIP"];
  createSlice("web-met", {"web-a"});
  ASSERT_TRUE(answeredBy(host(), vip, 80, {"web-a"}, 3));
  std::string text;
  EXPECT_TRUE(ControlPlane::eventually([&] {
    text = scrape(node->agent->metricsPort());
    return sample(text, "sluice_network_programming_duration_seconds_count ") >= 1;
  }, kDeadline)) << text;
  EXPECT_GE(sample(text, "kubeproxy_network_programming_duration_seconds_count "), 1) << text;
  // A local apply takes well under the 30 s of the deadline above.
  EXPECT_GE(sample(text, "sluice_network_programming_duration_seconds_bucket{le=\"+Inf\"} "), 1);
  EXPECT_GE(sample(text, "sluice_sync_proxy_rules_duration_seconds_count "), 1) << text;
  EXPECT_GE(sample(text, "sluice_proxy_services "), 1) << text;
  EXPECT_GE(sample(text, "sluice_proxy_backends "), 1) << text;
  EXPECT_NE(text.find("sluice_datapath_drops_total{mode=\"ebpf\",reason="), std::string::npos) << text;
}

// `sluice debug lb list` and `ct list` over the agent's gRPC socket show
// the service's frontend, its backends and the connections made to it.
TEST_F(ProxyAgentTest, DebugApiListsFrontendsBackendsConntrackAndMaglev) {
  const Json svc = createService("web-dbg", "ClusterIP", {{kLbAlgorithmAnnotation, "maglev"},
                                                          {kMaglevTableSizeAnnotation, "251"}});
  const std::string vip = svc["spec"]["clusterIP"];
  createSlice("web-dbg", {"web-a", "web-b"});
  ASSERT_TRUE(answeredBy(pod(), vip, 80, {"web-a", "web-b"}));

  auto lb = runDebugCommand(node->options.debugSocket, {"lb", "list"});
  ASSERT_TRUE(lb.ok()) << lb.error().message;
  // This frontend's block: its line and the backend lines under it.
  const size_t at = lb->find("\n" + vip + ":80/TCP ");
  ASSERT_NE(at, std::string::npos) << *lb;
  size_t end = at + 1;
  do {
    end = lb->find('\n', end) + 1;
  } while (end < lb->size() && (*lb)[end] == ' ');
  const std::string block = lb->substr(at + 1, end - at - 1);
  EXPECT_NE(block.find("default/web-dbg:http"), std::string::npos) << block;
  EXPECT_NE(block.find("maglev=251"), std::string::npos) << block;
  EXPECT_NE(block.find(node->topo->pod("web-a").ip4 + ":8080"), std::string::npos) << block;
  EXPECT_NE(block.find(node->topo->pod("web-b").ip4 + ":8080"), std::string::npos) << block;
  EXPECT_EQ(block.find(node->topo->pod("web-c").ip4 + ":8080"), std::string::npos) << block;

  auto mg = fetchMaglev(node->options.debugSocket, "default/web-dbg:http");
  ASSERT_TRUE(mg.ok()) << mg.error().message;
  ASSERT_GE(mg->tables_size(), 1);
  EXPECT_EQ(mg->tables(0).size(), 251u);
  std::set<uint32_t> ids(mg->tables(0).slots().begin(), mg->tables(0).slots().end());
  EXPECT_EQ(ids.size(), 2u) << "two backends share the table";
  auto mgText = runDebugCommand(node->options.debugSocket, {"maglev", "default/web-dbg"});
  ASSERT_TRUE(mgText.ok()) << mgText.error().message;
  EXPECT_NE(mgText->find("251 slots"), std::string::npos) << *mgText;

  auto ct = fetchConntrack(node->options.debugSocket);
  ASSERT_TRUE(ct.ok()) << ct.error().message;
  bool found = false;
  for (const auto& e : ct->entries()) {
    if (e.direction() == "service" && e.destination() == vip + ":80" &&
        e.source().rfind(node->topo->pod("client").ip4 + ":", 0) == 0) {
      found = true;
    }
  }
  EXPECT_TRUE(found) << runDebugCommand(node->options.debugSocket, {"ct", "list"}).value();

  auto bad = runDebugCommand(node->options.debugSocket, {"maglev", "default/nope"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kNotFound);
}

// What this node's kernel lacks, as its probes found it (on Debian 12's 6.1:
// bpf_sock_destroy, so udp-stale-flow-cleanup), is what `sluice debug mode`
// lists beside the kernel release, and what /metrics counts: no more, no
// less (SCTP, DSR and LoadBalancer source ranges are missing on every
// kernel).
TEST_F(ProxyAgentTest, DebugModeListsExactlyWhatThisKernelsProbesFoundMissing) {
  std::set<std::string> want = {"sctp", "dsr", "load-balancer-source-ranges"};
  for (const auto& [feature, effect] : bpf::KernelFeatures::probe().degradations()) {
    want.insert(std::string(toString(feature)));
  }
  auto mode = fetchMode(node->options.debugSocket);
  ASSERT_TRUE(mode.ok()) << mode.error().message;
  std::set<std::string> listed;
  for (const auto& m : mode->missing()) listed.insert(m.feature());
  EXPECT_EQ(listed, want);
  utsname u{};
  ASSERT_EQ(::uname(&u), 0);
  EXPECT_EQ(mode->kernel(), u.release);

  auto text = runDebugCommand(node->options.debugSocket, {"mode"});
  ASSERT_TRUE(text.ok()) << text.error().message;
  EXPECT_NE(text->find(std::string("Kernel: ") + u.release + "\n"), std::string::npos) << *text;
  const std::string metrics = scrape(node->agent->metricsPort());
  for (const std::string& f : want) {
    EXPECT_NE(text->find("  " + f + "  "), std::string::npos) << f << " in\n" << *text;
    EXPECT_EQ(sample(metrics, "sluice_proxy_mode_missing_features{feature=\"" + f + "\",mode=\"ebpf\"} "), 1)
        << metrics;
  }
}

// A LoadBalancer Service: its ingress IP appears on the uplink (the node
// answers ARP for it), outside clients reach it and its NodePort, and the
// address goes when the Service does.
TEST_F(ProxyAgentTest, LoadBalancerIpIsAnnouncedOnTheUplinkAndServed) {
  const Json svc = createService("web-lb", "LoadBalancer");
  ASSERT_TRUE(svc["status"]["loadBalancer"]["ingress"].is_array()) << svc.dump();
  const std::string lbIp = svc["status"]["loadBalancer"]["ingress"][0]["ip"];
  const int nodePort = svc["spec"]["ports"][0]["nodePort"];
  createSlice("web-lb", {"web-c"});
  const IpAddress lbAddr = IpAddress::parse(lbIp).value();
  const int uplink = static_cast<int>(::if_nametoindex(node->uplink.c_str()));
  ASSERT_GT(uplink, 0);
  EXPECT_TRUE(ControlPlane::eventually([&] {
    auto on = bpf::UplinkAddresses::listAddresses(uplink, bpf::kAddressProto);
    return on.ok() && on->count(lbAddr) == 1;
  }, kDeadline));
  answeredBy(outside(), lbIp, 80, {"web-c"}, 5);
  answeredBy(outside(), kUplinkIp, static_cast<uint16_t>(nodePort), {"web-c"}, 5);

  ASSERT_TRUE(api().remove(kServices, "default", "web-lb").ok());
  EXPECT_TRUE(ControlPlane::eventually([&] {
    auto on = bpf::UplinkAddresses::listAddresses(uplink, bpf::kAddressProto);
    return on.ok() && on->count(lbAddr) == 0;
  }, kDeadline));
  EXPECT_EQ(node->agent->lbAddresses().count(lbAddr), 0u);
}

// 20 agent restarts (stop, a new ProxyAgent adopting the pinned maps)
// while the service scales 3 -> 1 -> 3, some changes made while the agent is
// down, some while it runs. A TCP stream from a pod (bpf_lxc: per-packet
// NAT through the pinned conntrack) answers from its backend throughout;
// that backend stays, the other two turn terminating (ready=false,
// serving=true, terminating=true) and are then removed; a second stream,
// from the host (socket hooks), joins once only the held backend takes new
// connections. New connections see exactly the current ready set.
TEST_F(ProxyAgentTest, StreamSurvivesTwentyAgentRestartsAndAScaleDownAndUp) {
  const Json svc = createService("web-rst");
  const std::string vip = svc["spec"]["clusterIP"];
  const ServiceKey key{"default", "web-rst", "http"};
  createSlice("web-rst", kWebPods);
  const std::set<std::string> all(kWebPods.begin(), kWebPods.end());
  ASSERT_TRUE(answeredBy(pod(), vip, 80, all));

  StreamClient stream(pod(), vip, 80);
  ASSERT_EQ(stream.first().err, 0) << stream.first().describe();
  const std::string held = stream.first().backend;
  std::vector<std::string> others;
  for (const std::string& p : kWebPods) {
    if (p != held) others.push_back(p);
  }
  ASSERT_EQ(others.size(), 2u) << "held backend " << held;
  std::unique_ptr<StreamClient> hostStream;

  // Both streams answer, from the backend each connected to.
  auto pingAll = [&](const std::string& when) {
    Answer a = stream.ping();
    EXPECT_EQ(a.err, 0) << when << ": pod stream: " << a.describe();
    EXPECT_EQ(a.backend, held) << when << ": pod stream";
    if (hostStream) {
      a = hostStream->ping();
      EXPECT_EQ(a.err, 0) << when << ": host stream: " << a.describe();
      EXPECT_EQ(a.backend, held) << when << ": host stream";
    }
    return !::testing::Test::HasFailure();
  };
  // The backends the running agent has programmed for the service.
  auto programmed = [&] {
    const ServiceTable t = node->agent->sync().table();
    const Service* s = t.find(key);
    return s ? s->backends.size() : size_t{0};
  };

  constexpr int kRestarts = 20;
  constexpr int kTerminatingAt = 4;  // while the agent is down
  constexpr int kRemovedAt = 8;      // while it runs
  constexpr int kScaledUpAt = 13;    // while it is down
  for (int i = 0; i < kRestarts; ++i) {
    const std::string when = "restart " + std::to_string(i);
    ASSERT_TRUE(pingAll(when + ", before stop"));
    node->agent->stop();
    node->agent.reset();
    ASSERT_TRUE(pingAll(when + ", agent down"));
    if (i == kTerminatingAt) {
      // Scale-down begins: the other two pods are being deleted.
      Json patch = {
          {"metadata", {{"annotations", {{kLastChangeTriggerTimeAnnotation, nowRfc3339()}}}}},
          {"endpoints", sliceEndpoints({held})}};
      for (const Json& e : sliceEndpoints(others, /*ready=*/false)) patch["endpoints"].push_back(e);
      auto r = api().patch(kEndpointSlices, "default", "web-rst-manual", patch);
      ASSERT_TRUE(r.ok()) << r.error().message;
    }
    if (i == kScaledUpAt) updateSlice("web-rst", kWebPods);
    auto r = node->startAgent();
    ASSERT_TRUE(r.ok()) << when << ": " << r.error().message;
    ASSERT_TRUE(pingAll(when + ", agent back"));

    if (i == kTerminatingAt) {
      // Programmed at start-up: terminating endpoints get no new connections.
      EXPECT_EQ(programmed(), 3u) << "terminating endpoints stay programmed";
      ASSERT_TRUE(answeredBy(pod(), vip, 80, {held}, 10)) << when;
      ASSERT_TRUE(answeredBy(host(), vip, 80, {held}, 10)) << when;
      hostStream = std::make_unique<StreamClient>(host(), vip, 80);
      ASSERT_EQ(hostStream->first().err, 0) << hostStream->first().describe();
      ASSERT_EQ(hostStream->first().backend, held);
    }
    if (i == kRemovedAt) {
      updateSlice("web-rst", {held});
      ASSERT_TRUE(ControlPlane::eventually([&] { return programmed() == 1; }, kDeadline))
          << when << ": the two terminating endpoints were not removed";
      ASSERT_TRUE(answeredBy(pod(), vip, 80, {held}, 10)) << when;
      ASSERT_TRUE(answeredBy(host(), vip, 80, {held}, 10)) << when;
    }
    if (i == kScaledUpAt) {
      // Applied by the restarted agent's full sync.
      ASSERT_TRUE(answeredBy(pod(), vip, 80, all)) << when;
      ASSERT_TRUE(answeredBy(host(), vip, 80, all)) << when;
    }
  }
  ASSERT_TRUE(hostStream);
  EXPECT_TRUE(pingAll("after the last restart"));
  EXPECT_TRUE(answeredBy(pod(), vip, 80, all));
}

}  // namespace
}  // namespace sluice::agent
