// sluice-cni and sluice-ipam exec'd as a runtime execs them (env + stdin),
// from inside a simulated node namespace, against real pod namespaces.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <thread>

#include "cni/netlink.h"
#include "cni/veth_plugin.h"
#include "tests/cni/cni_test_util.h"

namespace sluice::cni {
namespace {

using testing::PluginRun;
using testing::ScopedDir;
using testing::ScopedNetns;

class SluicePluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(node_.ok()) << node_.error();
    ASSERT_FALSE(data_.path().empty());
  }

  Json config(std::string_view version, const std::string& subnet = "10.244.1.0/24") const {
    return {{"cniVersion", version},
            {"name", "podnet"},
            {"type", "sluice-cni"},
            {"ipam", {{"type", "sluice-ipam"}, {"subnet", subnet}, {"dataDir", data_.path()}}}};
  }
  PluginRun call(std::string_view command, std::string_view containerId, const std::string& netns,
                 const Json& conf, std::string_view ifName = "eth0") const {
    return testing::runPlugin("sluice-cni", testing::cniEnv(command, containerId, netns, ifName),
                              conf.dump(), &node_.netns());
  }
  std::string ipamDir() const { return data_.path() + "/podnet"; }
  // Node interfaces besides lo: the veths sluice-cni left.
  std::vector<std::string> nodeVeths() const {
    auto names = testing::linkNames(node_.netns());
    names.erase(std::remove(names.begin(), names.end(), "lo"), names.end());
    return names;
  }
  // The pod's address from an ADD result (ips[0]).
  static IpAddress podIp(const PluginRun& add) {
    auto parsed = parseResult(add.output, "result", kCodeDecodeFailure);
    return parsed && !parsed->ips.empty() ? parsed->ips[0].address.address() : IpAddress();
  }

  ScopedNetns node_{"slnode"};
  ScopedDir data_;
};

class SluicePluginVersionTest : public SluicePluginTest,
                                public ::testing::WithParamInterface<const char*> {};

// ADD wires a routed veth: pod address without prefix route, gateway link
// route, default route; node veth with the gateway /32 and a /32 to the pod.
// DEL removes both ends and releases the address.
TEST_P(SluicePluginVersionTest, AddWiresPodAndDelRemovesEverything) {
  const std::string version = GetParam();
  ScopedNetns pod("slpod");
  ASSERT_TRUE(pod.ok()) << pod.error();
  auto add = call("ADD", "ctr1", pod.path(), config(version));
  ASSERT_EQ(add.exitCode, 0) << add.stdoutData << add.stderrData;

  const Json& r = add.output;
  EXPECT_EQ(r["cniVersion"], version);
  ASSERT_EQ(r["interfaces"].size(), 2u);
  const std::string hostName = hostVethName("ctr1", "eth0");
  EXPECT_EQ(r["interfaces"][0]["name"], hostName);
  EXPECT_FALSE(r["interfaces"][0].contains("sandbox"));
  EXPECT_EQ(r["interfaces"][1]["name"], "eth0");
  EXPECT_EQ(r["interfaces"][1]["sandbox"], pod.path());
  EXPECT_EQ(r["interfaces"][1].contains("mtu"), version == "1.1.0");  // mtu is new in 1.1.0
  ASSERT_EQ(r["ips"].size(), 1u);
  EXPECT_EQ(r["ips"][0]["address"], "10.244.1.2/24");
  EXPECT_EQ(r["ips"][0]["gateway"], "10.244.1.1");
  EXPECT_EQ(r["ips"][0]["interface"], 1);
  EXPECT_FALSE(r["ips"][0].contains("version"));  // 1.x dropped it
  ASSERT_EQ(r["routes"].size(), 1u);
  EXPECT_EQ(r["routes"][0]["dst"], "0.0.0.0/0");
  EXPECT_EQ(r["routes"][0]["gw"], "10.244.1.1");

  auto podSock = NetlinkSocket::createIn(pod.netns());
  ASSERT_TRUE(podSock.ok());
  auto eth0 = podSock->link("eth0");
  ASSERT_TRUE(eth0.ok());
  EXPECT_TRUE(eth0->up);
  EXPECT_EQ(eth0->mac, r["interfaces"][1]["mac"]);
  auto addrs = podSock->addresses(eth0->index);
  ASSERT_TRUE(addrs.ok());
  EXPECT_NE(std::find(addrs->begin(), addrs->end(), *IpPrefix::parse("10.244.1.2/24")), addrs->end());
  auto routes = podSock->routes(IpFamily::kV4);
  ASSERT_TRUE(routes.ok());
  bool sawDefault = false, sawGwLink = false, sawSubnet = false;
  for (const auto& rt : *routes) {
    sawDefault |= rt.dst.isDefault() && rt.gw == IpAddress::parse("10.244.1.1").value();
    sawGwLink |= rt.dst == *IpPrefix::parse("10.244.1.1/32") && !rt.gw;
    sawSubnet |= rt.dst == *IpPrefix::parse("10.244.1.0/24");
  }
  EXPECT_TRUE(sawDefault);
  EXPECT_TRUE(sawGwLink);
  EXPECT_FALSE(sawSubnet) << "no prefix route: same-subnet pods are behind other veths";

  auto nodeSock = NetlinkSocket::createIn(node_.netns());
  ASSERT_TRUE(nodeSock.ok());
  auto host = nodeSock->link(hostName);
  ASSERT_TRUE(host.ok());
  EXPECT_TRUE(host->up);
  EXPECT_EQ(host->kind, "veth");
  EXPECT_EQ(host->alias, hostVethAlias("podnet", "ctr1", "eth0"));
  auto nodeRoutes = nodeSock->routes(IpFamily::kV4);
  ASSERT_TRUE(nodeRoutes.ok());
  EXPECT_TRUE(std::any_of(nodeRoutes->begin(), nodeRoutes->end(), [&](const RouteInfo& rt) {
    return rt.dst == *IpPrefix::parse("10.244.1.2/32") && rt.ifIndex == host->index;
  }));
  EXPECT_EQ(testing::allocatedIps(ipamDir()), std::vector<std::string>{"10.244.1.2"});

  auto del = call("DEL", "ctr1", pod.path(), config(version));
  EXPECT_EQ(del.exitCode, 0) << del.stdoutData;
  EXPECT_EQ(del.stdoutData, "");
  EXPECT_TRUE(nodeVeths().empty());
  EXPECT_EQ(testing::linkNames(pod.netns()), std::vector<std::string>{"lo"});
  EXPECT_TRUE(testing::allocatedIps(ipamDir()).empty());
}

// CHECK passes on a freshly added pod, then fails naming the address once it
// is removed behind the plugin's back.
TEST_P(SluicePluginVersionTest, CheckPassesThenDetectsRemovedAddress) {
  const std::string version = GetParam();
  ScopedNetns pod("slpod");
  ASSERT_TRUE(pod.ok()) << pod.error();
  auto add = call("ADD", "ctr1", pod.path(), config(version));
  ASSERT_EQ(add.exitCode, 0) << add.stdoutData;
  Json conf = config(version);
  conf["prevResult"] = add.output;

  auto check = call("CHECK", "ctr1", pod.path(), conf);
  EXPECT_EQ(check.exitCode, 0) << check.stdoutData;
  EXPECT_EQ(check.stdoutData, "");

  auto podSock = NetlinkSocket::createIn(pod.netns());
  ASSERT_TRUE(podSock.ok());
  auto eth0 = podSock->link("eth0");
  ASSERT_TRUE(eth0.ok());
  ASSERT_TRUE(podSock->deleteAddress(eth0->index, *IpPrefix::parse("10.244.1.2/24")).ok());
  check = call("CHECK", "ctr1", pod.path(), conf);
  EXPECT_NE(check.exitCode, 0);
  EXPECT_EQ(check.output["code"], kCodeCheckFailed);
  EXPECT_EQ(check.output["cniVersion"], version);
  EXPECT_NE(check.output["msg"].get<std::string>().find("10.244.1.2/24 missing on eth0"),
            std::string::npos)
      << check.stdoutData;
  EXPECT_EQ(call("DEL", "ctr1", pod.path(), config(version)).exitCode, 0);
}

// VERSION answers in the asked version and lists both 1.x versions.
TEST_P(SluicePluginVersionTest, VersionListsSupportedVersions) {
  const std::string version = GetParam();
  for (const char* plugin : {"sluice-cni", "sluice-ipam"}) {
    auto run = testing::runPlugin(plugin, {{"CNI_COMMAND", "VERSION"}},
                                  Json{{"cniVersion", version}}.dump(), nullptr);
    ASSERT_EQ(run.exitCode, 0) << plugin;
    EXPECT_EQ(run.output["cniVersion"], version);
    const auto& list = run.output["supportedVersions"];
    for (const char* v : {"0.4.0", "1.0.0", "1.1.0"}) {
      EXPECT_NE(std::find(list.begin(), list.end(), v), list.end()) << plugin << " lacks " << v;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Versions, SluicePluginVersionTest, ::testing::Values("1.0.0", "1.1.0"));

// A 0.4.0 runtime gets a 0.4.0 result: each ip carries "version".
TEST_F(SluicePluginTest, Version040ResultCarriesIpVersion) {
  ScopedNetns pod("slpod");
  ASSERT_TRUE(pod.ok()) << pod.error();
  auto add = call("ADD", "ctr1", pod.path(), config("0.4.0"));
  ASSERT_EQ(add.exitCode, 0) << add.stdoutData;
  EXPECT_EQ(add.output["cniVersion"], "0.4.0");
  EXPECT_EQ(add.output["ips"][0]["version"], "4");
  EXPECT_EQ(call("DEL", "ctr1", pod.path(), config("0.4.0")).exitCode, 0);
}

// Every malformed input is refused with the spec's code, a message naming
// the variable or field, an error object in a supported version, a non-zero
// exit, and nothing created in either namespace or the IPAM store.
TEST_F(SluicePluginTest, BadInputIsRefusedWithCodeAndLeavesNothing) {
  ScopedNetns pod("slpod");
  ASSERT_TRUE(pod.ok()) << pod.error();
  struct Case {
    std::string scenario;
    std::map<std::string, std::string> envChanges;  // "" value: unset
    std::string stdinData;
    uint32_t code;
    std::string msgHas;
  };
  const Json good = config("1.1.0");
  auto with = [&](const char* pointer, Json value) {
    Json c = good;
    c[Json::json_pointer(pointer)] = std::move(value);
    return c.dump();
  };
  auto without = [&](const char* key) {
    Json c = good;
    c.erase(key);
    return c.dump();
  };
  auto withoutIpam = [&](const char* key) {
    Json c = good;
    c["ipam"].erase(key);
    return c.dump();
  };
  // A path that exists but is no namespace (issue 18: setns() failed, code 100).
  const std::string regularFile = data_.path() + "/not-a-netns";
  { std::ofstream(regularFile) << "x"; }
  const std::vector<Case> cases = {
      {"stdin is not JSON", {}, "{\"cniVersion\": ", kCodeDecodeFailure, "not valid JSON"},
      {"stdin is empty", {}, "", kCodeDecodeFailure, "empty network configuration"},
      {"stdin is a JSON array", {}, "[1,2]", kCodeDecodeFailure, "not a JSON object"},
      {"cniVersion missing", {}, without("cniVersion"), kCodeInvalidConfig, "cniVersion: required"},
      {"cniVersion unknown", {}, with("/cniVersion", "2.0.0"), kCodeIncompatibleVersion,
       "cniVersion: '2.0.0' is not supported"},
      {"cniVersion predates results", {}, with("/cniVersion", "0.2.0"), kCodeIncompatibleVersion,
       "cniVersion: '0.2.0'"},
      {"cniVersion not a string", {}, with("/cniVersion", 1), kCodeInvalidConfig,
       "cniVersion: must be a string"},
      {"name missing", {}, without("name"), kCodeInvalidConfig, "name: required"},
      {"name with a slash", {}, with("/name", "a/b"), kCodeInvalidConfig, "name: 'a/b'"},
      {"type missing", {}, without("type"), kCodeInvalidConfig, "type: required"},
      {"ipam missing", {}, without("ipam"), kCodeInvalidConfig, "ipam: required"},
      {"ipam not an object", {}, with("/ipam", "x"), kCodeInvalidConfig, "ipam: must be an object"},
      {"ipam.type missing", {}, withoutIpam("type"), kCodeInvalidConfig, "ipam.type: required"},
      {"ipam.type not in CNI_PATH", {}, with("/ipam/type", "no-such-ipam"), kCodePluginNotFound,
       "ipam.type: plugin 'no-such-ipam' not found"},
      {"ipam.type with a path", {}, with("/ipam/type", "../bin/sh"), kCodePluginNotFound,
       "not a plain file name"},
      {"ipam.subnet missing", {}, withoutIpam("subnet"), kCodeInvalidConfig,
       "ipam.subnet: required"},
      {"ipam.subnet malformed", {}, with("/ipam/subnet", "10.244.1.0"), kCodeInvalidConfig,
       "ipam.subnet: '10.244.1.0' is not a CIDR"},
      {"ipam.rangeStart outside subnet", {}, with("/ipam/rangeStart", "10.9.9.9"),
       kCodeInvalidConfig, "ipam.rangeStart 10.9.9.9 is outside 10.244.1.0/24"},
      {"ipam.routes malformed", {}, with("/ipam/routes", Json::array({{{"dst", "x"}}})),
       kCodeInvalidConfig, "ipam.routes[0].dst"},
      {"mtu out of range", {}, with("/mtu", 70000), kCodeInvalidConfig, "mtu: 70000 is outside"},
      {"mtu not an integer", {}, with("/mtu", "1500"), kCodeInvalidConfig,
       "mtu: must be an integer"},
      {"ipMasq requested", {}, with("/ipMasq", true), kCodeUnsupportedField, "ipMasq: true"},
      {"prevResult malformed", {},
       with("/prevResult", Json{{"cniVersion", "1.1.0"}, {"ips", Json::array({{{"address", "bad"}}})}}),
       kCodeInvalidConfig, "prevResult.ips[0].address"},
      {"CNI_COMMAND missing", {{"CNI_COMMAND", ""}}, good.dump(), kCodeInvalidEnvironment,
       "CNI_COMMAND: required"},
      {"CNI_COMMAND unknown", {{"CNI_COMMAND", "ATTACH"}}, good.dump(), kCodeInvalidEnvironment,
       "CNI_COMMAND: unknown command 'ATTACH'"},
      {"CNI_CONTAINERID missing", {{"CNI_CONTAINERID", ""}}, good.dump(), kCodeInvalidEnvironment,
       "CNI_CONTAINERID: required"},
      {"CNI_CONTAINERID malformed", {{"CNI_CONTAINERID", "-ctr"}}, good.dump(),
       kCodeInvalidEnvironment, "CNI_CONTAINERID: '-ctr'"},
      {"CNI_CONTAINERID not UTF-8", {{"CNI_CONTAINERID", "c\xff"}}, good.dump(),
       kCodeInvalidEnvironment, "CNI_CONTAINERID: 'c"},
      {"CNI_NETNS missing", {{"CNI_NETNS", ""}}, good.dump(), kCodeInvalidEnvironment,
       "CNI_NETNS: required"},
      {"CNI_NETNS does not exist", {{"CNI_NETNS", "/run/netns/sluice-no-such-netns"}}, good.dump(),
       kCodeUnknownContainer, "CNI_NETNS: netns /run/netns/sluice-no-such-netns"},
      {"CNI_NETNS is the node's own", {{"CNI_NETNS", node_.path()}}, good.dump(),
       kCodeInvalidEnvironment, "is the node's own network namespace"},
      {"CNI_NETNS is a regular file", {{"CNI_NETNS", regularFile}}, good.dump(),
       kCodeInvalidEnvironment, "CNI_NETNS: " + regularFile + " is not a network namespace"},
      {"CNI_NETNS is a directory", {{"CNI_NETNS", data_.path()}}, good.dump(),
       kCodeInvalidEnvironment, "is not a network namespace"},
      // 250 characters are valid syntax, but the node veth's alias
      // (sluice-cni/<network>/<id>/<ifname>) holds at most 255 bytes.
      {"CNI_CONTAINERID too long for the node veth's alias",
       {{"CNI_CONTAINERID", std::string(250, 'c')}}, good.dump(), kCodeInvalidEnvironment,
       "CNI_CONTAINERID: 250 characters"},
      {"ipam.dataDir relative", {}, with("/ipam/dataDir", "var/lib/cni/networks"),
       kCodeInvalidConfig, "ipam.dataDir: 'var/lib/cni/networks' is not an absolute path"},
      {"ipam.dataDir empty", {}, with("/ipam/dataDir", ""), kCodeInvalidConfig,
       "ipam.dataDir: '' is not an absolute path"},
      {"CNI_IFNAME missing", {{"CNI_IFNAME", ""}}, good.dump(), kCodeInvalidEnvironment,
       "CNI_IFNAME: required"},
      {"CNI_IFNAME too long", {{"CNI_IFNAME", "eth0123456789abc"}}, good.dump(),
       kCodeInvalidEnvironment, "CNI_IFNAME: 'eth0123456789abc' is longer than 15"},
      {"CNI_IFNAME with a slash", {{"CNI_IFNAME", "eth/0"}}, good.dump(), kCodeInvalidEnvironment,
       "CNI_IFNAME: 'eth/0' contains"},
      {"CNI_ARGS malformed", {{"CNI_ARGS", "K8S_POD_NAME=a;junk"}}, good.dump(),
       kCodeInvalidEnvironment, "CNI_ARGS: 'junk' is not KEY=VALUE"},
      {"CNI_PATH missing", {{"CNI_PATH", ""}}, good.dump(), kCodeInvalidEnvironment,
       "CNI_PATH: required to find ipam plugin 'sluice-ipam'"},
      {"CHECK at 0.3.1", {{"CNI_COMMAND", "CHECK"}}, with("/cniVersion", "0.3.1"),
       kCodeIncompatibleVersion, "CHECK needs 0.4.0"},
      {"GC at 1.0.0", {{"CNI_COMMAND", "GC"}}, with("/cniVersion", "1.0.0"),
       kCodeIncompatibleVersion, "GC needs 1.1.0"},
      {"STATUS at 1.0.0", {{"CNI_COMMAND", "STATUS"}}, with("/cniVersion", "1.0.0"),
       kCodeIncompatibleVersion, "STATUS needs 1.1.0"},
      {"CHECK without prevResult", {{"CNI_COMMAND", "CHECK"}}, good.dump(), kCodeInvalidConfig,
       "prevResult: required for CHECK"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.scenario);
    auto env = testing::cniEnv("ADD", "ctr1", pod.path());
    for (const auto& [k, v] : c.envChanges) {
      if (v.empty()) {
        env.erase(k);
      } else {
        env[k] = v;
      }
    }
    auto run = testing::runPlugin("sluice-cni", env, c.stdinData, &node_.netns());
    EXPECT_NE(run.exitCode, 0);
    ASSERT_TRUE(run.output.is_object()) << run.stdoutData << run.stderrData;
    EXPECT_EQ(run.output["code"], c.code) << run.stdoutData;
    EXPECT_NE(run.output["msg"].get<std::string>().find(c.msgHas), std::string::npos)
        << run.output["msg"];
    ASSERT_TRUE(run.output.contains("cniVersion"));
    EXPECT_TRUE(isSupportedVersion(run.output["cniVersion"].get<std::string>()));
    EXPECT_TRUE(nodeVeths().empty());
    EXPECT_EQ(testing::linkNames(pod.netns()), std::vector<std::string>{"lo"});
    EXPECT_TRUE(testing::allocatedIps(ipamDir()).empty());
  }
}

// CNI_IFNAME already present in the pod: refused before IPAM runs.
TEST_F(SluicePluginTest, AddRefusesExistingInterfaceName) {
  ScopedNetns pod("slpod");
  ASSERT_TRUE(pod.ok()) << pod.error();
  auto podSock = NetlinkSocket::createIn(pod.netns());
  ASSERT_TRUE(podSock.ok());
  ASSERT_TRUE(podSock->createVeth({"eth0", "other0", -1, 0}).ok());
  auto add = call("ADD", "ctr1", pod.path(), config("1.1.0"));
  EXPECT_NE(add.exitCode, 0);
  EXPECT_EQ(add.output["code"], kCodeInterfaceExists);
  EXPECT_NE(add.output["msg"].get<std::string>().find("CNI_IFNAME: interface eth0 already exists"),
            std::string::npos);
  EXPECT_TRUE(nodeVeths().empty());
  EXPECT_TRUE(testing::allocatedIps(ipamDir()).empty());
}

// A failure after IPAM allocated (here an IPAM route whose gateway the pod
// cannot reach) releases the address and removes the veth.
TEST_F(SluicePluginTest, FailureAfterIpamLeavesNothingBehind) {
  ScopedNetns pod("slpod");
  ASSERT_TRUE(pod.ok()) << pod.error();
  Json conf = config("1.1.0");
  conf["ipam"]["routes"] = Json::array({{{"dst", "192.168.77.0/24"}, {"gw", "10.99.99.1"}}});
  auto add = call("ADD", "ctr1", pod.path(), conf);
  EXPECT_NE(add.exitCode, 0);
  EXPECT_EQ(add.output["code"], kCodeInternal) << add.stdoutData;
  EXPECT_NE(add.output["msg"].get<std::string>().find("ipam route"), std::string::npos);
  EXPECT_TRUE(nodeVeths().empty());
  EXPECT_EQ(testing::linkNames(pod.netns()), std::vector<std::string>{"lo"});
  EXPECT_TRUE(testing::allocatedIps(ipamDir()).empty());
}

// DEL succeeds when there is nothing to delete: never added, deleted twice,
// or the pod's netns already gone (the address is still released).
TEST_F(SluicePluginTest, DelIsIdempotent) {
  ScopedNetns pod("slpod");
  ASSERT_TRUE(pod.ok()) << pod.error();
  const Json conf = config("1.1.0");
  EXPECT_EQ(call("DEL", "never-added", pod.path(), conf).exitCode, 0);
  ASSERT_EQ(call("ADD", "ctr1", pod.path(), conf).exitCode, 0);
  EXPECT_EQ(call("DEL", "ctr1", pod.path(), conf).exitCode, 0);
  EXPECT_EQ(call("DEL", "ctr1", pod.path(), conf).exitCode, 0);

  ASSERT_EQ(call("ADD", "ctr2", pod.path(), conf).exitCode, 0);
  const std::string path = pod.path();
  pod.remove();
  auto del = call("DEL", "ctr2", path, conf);
  EXPECT_EQ(del.exitCode, 0) << del.stdoutData;
  EXPECT_TRUE(testing::allocatedIps(ipamDir()).empty());
  // Without CNI_NETNS at all (spec: optional for DEL).
  auto env = testing::cniEnv("DEL", "ctr3", "");
  EXPECT_EQ(testing::runPlugin("sluice-cni", env, conf.dump(), &node_.netns()).exitCode, 0);
}

// Chained after another plugin: its interfaces and ips stay first, ours are
// appended with interface indexes pointing at our entries.
TEST_F(SluicePluginTest, AddAppendsToPrevResult) {
  ScopedNetns pod("slpod");
  ASSERT_TRUE(pod.ok()) << pod.error();
  Json conf = config("1.1.0");
  conf["prevResult"] = {{"cniVersion", "1.1.0"},
                        {"interfaces", Json::array({{{"name", "net9"}, {"sandbox", pod.path()}}})},
                        {"ips", Json::array({{{"address", "192.0.2.5/24"}, {"interface", 0}}})},
                        {"dns", {{"nameservers", Json::array({"192.0.2.53"})}}}};
  auto add = call("ADD", "ctr1", pod.path(), conf);
  ASSERT_EQ(add.exitCode, 0) << add.stdoutData;
  const Json& r = add.output;
  ASSERT_EQ(r["interfaces"].size(), 3u);
  EXPECT_EQ(r["interfaces"][0]["name"], "net9");
  EXPECT_EQ(r["interfaces"][2]["name"], "eth0");
  ASSERT_EQ(r["ips"].size(), 2u);
  EXPECT_EQ(r["ips"][0]["address"], "192.0.2.5/24");
  EXPECT_EQ(r["ips"][0]["interface"], 0);
  EXPECT_EQ(r["ips"][1]["interface"], 2);
  EXPECT_EQ(r["dns"]["nameservers"][0], "192.0.2.53");
  EXPECT_EQ(call("DEL", "ctr1", pod.path(), config("1.1.0")).exitCode, 0);
}

// GC deletes the veth and releases the address of every attachment missing
// from cni.dev/valid-attachments, and keeps the listed ones.
TEST_F(SluicePluginTest, GcRemovesStaleAttachments) {
  ScopedNetns keep("slpod");
  ScopedNetns stale("slpod");
  ASSERT_TRUE(keep.ok() && stale.ok());
  const Json conf = config("1.1.0");
  ASSERT_EQ(call("ADD", "keep1", keep.path(), conf).exitCode, 0);
  ASSERT_EQ(call("ADD", "stale1", stale.path(), conf).exitCode, 0);
  ASSERT_EQ(testing::allocatedIps(ipamDir()).size(), 2u);

  Json gcConf = conf;
  gcConf["cni.dev/valid-attachments"] = Json::array({{{"containerID", "keep1"}, {"ifname", "eth0"}}});
  auto gc = testing::runPlugin("sluice-cni", testing::cniEnv("GC", "", "", ""), gcConf.dump(),
                               &node_.netns());
  EXPECT_EQ(gc.exitCode, 0) << gc.stdoutData;
  EXPECT_EQ(gc.stdoutData, "");
  EXPECT_EQ(nodeVeths(), std::vector<std::string>{hostVethName("keep1", "eth0")});
  EXPECT_EQ(testing::linkNames(stale.netns()), std::vector<std::string>{"lo"});
  EXPECT_EQ(testing::allocatedIps(ipamDir()), std::vector<std::string>{"10.244.1.2"});
  EXPECT_EQ(call("DEL", "keep1", keep.path(), conf).exitCode, 0);
}

// STATUS is ok while the pool has an address and code 50 once it is full;
// an ADD into the full pool fails cleanly.
TEST_F(SluicePluginTest, StatusReportsExhaustedPool) {
  // A /30: .1 is the gateway, .2 the only pod address, .3 broadcast.
  const Json conf = config("1.1.0", "10.244.9.0/30");
  auto env = testing::cniEnv("STATUS", "", "", "");
  auto status = testing::runPlugin("sluice-cni", env, conf.dump(), &node_.netns());
  EXPECT_EQ(status.exitCode, 0) << status.stdoutData;
  EXPECT_EQ(status.stdoutData, "");

  ScopedNetns pod1("slpod");
  ScopedNetns pod2("slpod");
  ASSERT_TRUE(pod1.ok() && pod2.ok());
  ASSERT_EQ(call("ADD", "ctr1", pod1.path(), conf).exitCode, 0);
  status = testing::runPlugin("sluice-cni", env, conf.dump(), &node_.netns());
  EXPECT_NE(status.exitCode, 0);
  EXPECT_EQ(status.output["code"], kCodePluginNotAvailable);
  EXPECT_NE(status.output["msg"].get<std::string>().find("no free address in 10.244.9.0/30"),
            std::string::npos);

  auto add = call("ADD", "ctr2", pod2.path(), conf);
  EXPECT_EQ(add.output["code"], kCodeAddressesExhausted) << add.stdoutData;
  EXPECT_EQ(testing::linkNames(pod2.netns()), std::vector<std::string>{"lo"});
  EXPECT_EQ(nodeVeths().size(), 1u);
  EXPECT_EQ(call("DEL", "ctr1", pod1.path(), conf).exitCode, 0);
}

// Two pods on one node reach each other by IP, each seeing the other's real
// address (no NAT), over IPv4 and IPv6.
TEST_F(SluicePluginTest, PodsOnOneNodeReachEachOtherDualStack) {
  ScopedNetns a("slpod");
  ScopedNetns b("slpod");
  ASSERT_TRUE(a.ok() && b.ok());
  Json conf = config("1.1.0");
  conf["ipam"]["ranges"] = Json::array({{{"subnet", "fd00:10:244:1::/64"}}});
  auto addA = call("ADD", "ctrA", a.path(), conf);
  auto addB = call("ADD", "ctrB", b.path(), conf);
  ASSERT_EQ(addA.exitCode, 0) << addA.stdoutData;
  ASSERT_EQ(addB.exitCode, 0) << addB.stdoutData;
  ASSERT_EQ(addB.output["ips"].size(), 2u);
  ASSERT_EQ(addB.output["routes"].size(), 2u);  // a default route per family
  auto ra = parseResult(addA.output, "a", kCodeDecodeFailure);
  auto rb = parseResult(addB.output, "b", kCodeDecodeFailure);
  ASSERT_TRUE(ra.ok() && rb.ok());
  for (size_t i = 0; i < 2; ++i) {
    const IpAddress from = ra->ips[i].address.address();
    const IpAddress to = rb->ips[i].address.address();
    SCOPED_TRACE(from.toString() + " -> " + to.toString());
    testing::Listener server;
    testing::listenTcp(b.netns(), to, 0, server);
    ASSERT_TRUE(server.error.empty()) << server.error;
    auto ex = testing::tcpExchange(a.netns(), to, server.port, server, "hello " + to.toString());
    EXPECT_TRUE(ex.ok) << ex.error;
    EXPECT_EQ(ex.peer, from.toString());
  }
  EXPECT_EQ(call("DEL", "ctrA", a.path(), conf).exitCode, 0);
  EXPECT_EQ(call("DEL", "ctrB", b.path(), conf).exitCode, 0);
  EXPECT_TRUE(testing::allocatedIps(ipamDir()).empty());
}

// 32 ADDs at once (separate processes, as a runtime starting many pods)
// hand out 32 distinct addresses; 32 parallel DELs release them all.
TEST_F(SluicePluginTest, ConcurrentAddsNeverShareAnAddress) {
  constexpr int kPods = 32;
  std::vector<std::unique_ptr<ScopedNetns>> pods;
  for (int i = 0; i < kPods; ++i) {
    pods.push_back(std::make_unique<ScopedNetns>("slpod"));
    ASSERT_TRUE(pods.back()->ok()) << pods.back()->error();
  }
  const Json conf = config("1.1.0");
  std::vector<PluginRun> adds(kPods);
  std::vector<std::thread> workers;
  for (int i = 0; i < kPods; ++i) {
    workers.emplace_back([&, i] { adds[i] = call("ADD", "ctr" + std::to_string(i), pods[i]->path(), conf); });
  }
  for (auto& w : workers) w.join();
  std::set<std::string> ips;
  for (int i = 0; i < kPods; ++i) {
    ASSERT_EQ(adds[i].exitCode, 0) << adds[i].stdoutData << adds[i].stderrData;
    ips.insert(adds[i].output["ips"][0]["address"].get<std::string>());
  }
  EXPECT_EQ(ips.size(), static_cast<size_t>(kPods));
  EXPECT_EQ(testing::allocatedIps(ipamDir()).size(), static_cast<size_t>(kPods));
  EXPECT_EQ(nodeVeths().size(), static_cast<size_t>(kPods));

  workers.clear();
  std::vector<int> dels(kPods, -1);
  for (int i = 0; i < kPods; ++i) {
    workers.emplace_back([&, i] {
      dels[i] = call("DEL", "ctr" + std::to_string(i), pods[i]->path(), conf).exitCode;
    });
  }
  for (auto& w : workers) w.join();
  for (int i = 0; i < kPods; ++i) EXPECT_EQ(dels[i], 0) << i;
  EXPECT_TRUE(testing::allocatedIps(ipamDir()).empty());
  EXPECT_TRUE(nodeVeths().empty());
}

}  // namespace
}  // namespace sluice::cni
