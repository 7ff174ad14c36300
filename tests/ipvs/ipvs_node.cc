#include "tests/ipvs/ipvs_node.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <set>

namespace sluice::ipvs::testing {

using netns::sh;

bool IpvsNode::start() {
  auto fail = [this](std::string why) {
    error = std::move(why);
    return false;
  };
  std::vector<std::string> pods = {"client"};
  pods.insert(pods.end(), kWebPods.begin(), kWebPods.end());
  topo = netns::Topology::create(pods, &error);
  if (!topo) return false;
  const char* exe = std::getenv("SLUICE_ECHO_SERVER");
  if (exe == nullptr) return fail("SLUICE_ECHO_SERVER is not set (run through meson test)");
  for (const std::string& name : kWebPods) {
    auto p = netns::startEchoServer(topo->pod(name).netnsFd, exe, name, kBackendPort, &error);
    if (p.pid() < 0) return false;
    servers.push_back(std::move(p));
  }
  const std::string suffix = std::to_string(::getpid());
  outsideNetns = "sluice-" + suffix + "-outside";
  uplink = "slipv" + suffix;
  const std::string n = "ip -n " + topo->nodeNetns() + " ";
  const std::string o = "ip -n " + outsideNetns + " ";
  if (!sh("ip netns add " + outsideNetns) ||
      !sh(n + "link add " + uplink + " type veth peer name eth0 netns " + outsideNetns) ||
      !sh(n + "addr add " + std::string(kUplinkIp) + "/24 dev " + uplink) ||
      !sh(n + "link set " + uplink + " up") ||
      !sh("ip netns exec " + topo->nodeNetns() + " sysctl -qw net.ipv4.conf." + uplink +
          ".forwarding=1 net.ipv4.conf." + uplink + ".rp_filter=0") ||
      !sh(o + "link set lo up") ||
      !sh(o + "addr add " + std::string(kOutsideIp) + "/24 dev eth0") ||
      !sh(o + "link set eth0 up") ||
      !sh(o + "route add 198.51.100.0/24 via " + std::string(kUplinkIp))) {
    return fail("outside link (see the failed command above)");
  }
  outsideFd = ::open(("/var/run/netns/" + outsideNetns).c_str(), O_RDONLY | O_CLOEXEC);
  if (outsideFd < 0) return fail("open the outside netns");

  inNode = std::make_unique<netns::ScopedSetns>(topo->nodeNetnsFd());
  if (!inNode->ok()) return fail("setns into the node namespace failed");
  config.nodeName = "node-a";
  config.nodeAddresses = {ip(kUplinkIp), ip(netns::Topology::kNodeIp4)};
  config.uplink = uplink;
  config.instance = "t" + suffix;
  ModeFlagValues flags = {{"drain-check-ms", "200"}, {"drain-timeout", "60"}};
  auto o2 = IpvsDatapathOptions::fromFlags(flags);
  if (!o2) return fail(o2.error().message);
  options = *o2;
  if (auto r = startAgent(); !r) return fail(r.error().message);
  return true;
}

Result<void> IpvsNode::startAgent() {
  auto d = IpvsDatapath::create(config, options);
  if (!d) return d.error();
  dp = std::move(*d);
  if (auto r = dp->mode().sync(table); !r) return r;
  return dp->claimServiceAddresses(ServiceDiff::fullSync(table), true);
}

void IpvsNode::stopAgent() {
  if (dp) dp->stop();
  dp.reset();
}

Result<void> IpvsNode::put(const sluice::Service& svc) {
  ServiceTable next = table;
  if (auto u = next.upsert(svc); !u) return u;
  const ServiceDiff diff = ServiceDiff::between(table, next);
  if (auto r = dp->mode().apply(diff); !r) return r;
  table = next;
  return dp->claimServiceAddresses(diff, false);
}

Result<void> IpvsNode::remove(const sluice::ServiceKey& key) {
  ServiceTable next = table;
  next.erase(key);
  const ServiceDiff diff = ServiceDiff::between(table, next);
  if (auto r = dp->mode().apply(diff); !r) return r;
  table = next;
  return dp->claimServiceAddresses(diff, false);
}

uint64_t IpvsNode::counter(const std::string& name) const {
  const auto stats = dp->mode().stats();
  auto it = stats.counters.find(name);
  EXPECT_NE(it, stats.counters.end()) << "no counter " << name;
  return it == stats.counters.end() ? 0 : it->second;
}

IpvsNode::~IpvsNode() {
  if (dp) (void)dp->cleanup();
  dp.reset();
  servers.clear();
  inNode.reset();
  if (outsideFd >= 0) ::close(outsideFd);
  if (!outsideNetns.empty()) sh("ip netns del " + outsideNetns + " 2>/dev/null");
  topo.reset();
}

namespace {

IpvsNode* theNode = nullptr;

class NodeEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    theNode = new IpvsNode();
    theNode->start();
  }
  void TearDown() override {
    delete theNode;
    theNode = nullptr;
  }
};
[[maybe_unused]] ::testing::Environment* const kNodeEnvironment =
    ::testing::AddGlobalTestEnvironment(new NodeEnvironment);

}  // namespace

IpvsNode& node() { return *theNode; }

IpAddress ip(const std::string& text) {
  auto a = IpAddress::parse(text);
  EXPECT_TRUE(a.ok()) << text;
  return a.ok() ? *a : IpAddress();
}

Frontend frontend(const std::string& addr, uint16_t port, Protocol proto, FrontendScope scope) {
  return Frontend{ip(addr), port, proto, scope};
}

std::vector<Backend> podBackends(const std::vector<std::string>& pods, bool v6,
                                 BackendState state) {
  std::vector<Backend> out;
  for (const std::string& name : pods) {
    const netns::Pod& p = node().topo->pod(name);
    Backend b;
    b.address = ip(v6 ? p.ip6 : p.ip4);
    b.port = kBackendPort;
    b.state = state;
    b.nodeLocal = true;
    out.push_back(b);
  }
  return out;
}

sluice::Service service(const std::string& name, Protocol proto, std::vector<Frontend> frontends,
                        std::vector<Backend> backends) {
  sluice::Service s;
  s.key = sluice::ServiceKey{"default", name, ""};
  s.protocol = proto;
  s.frontends = std::move(frontends);
  s.backends = std::move(backends);
  return s;
}

netns::Placement pod(const std::string& name) { return {node().topo->pod(name).netnsFd, {}}; }
netns::Placement host() { return {node().topo->nodeNetnsFd(), {}}; }
netns::Placement outside() { return {node().outsideFd, {}}; }

std::set<std::string> answeredBy(const std::vector<netns::Answer>& answers) {
  std::set<std::string> out;
  for (const netns::Answer& a : answers) {
    EXPECT_EQ(a.err, 0) << a.describe();
    if (a.err == 0) out.insert(a.backend);
  }
  return out;
}

std::string join(const std::vector<netns::Answer>& answers) {
  std::string s;
  for (const netns::Answer& a : answers) s += "\n  " + a.describe();
  return s;
}

std::string hostPort(const std::string& addr, uint16_t port) {
  return (addr.find(':') != std::string::npos ? "[" + addr + "]" : addr) + ":" +
         std::to_string(port);
}

}  // namespace sluice::ipvs::testing
