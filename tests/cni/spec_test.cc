// The CNI protocol's data, without namespaces: versions, result encoding per
// version, decoding errors, CNI_ARGS, name rules, the skeleton's dispatch.
#include "cni/spec.h"

#include <gtest/gtest.h>

#include "cni/invoke.h"
#include "cni/ip_prefix.h"
#include "cni/skel.h"
#include "cni/veth_plugin.h"

namespace sluice::cni {
namespace {

AddResult sampleResult() {
  AddResult r;
  r.interfaces = {{"slabc", "aa:bb:cc:dd:ee:01", std::nullopt, ""},
                  {"eth0", "aa:bb:cc:dd:ee:02", 1450, "/run/netns/p"}};
  r.ips = {{*IpPrefix::parse("10.244.1.5/24"), IpAddress::parse("10.244.1.1").value(), 1},
           {*IpPrefix::parse("fd00::5/64"), std::nullopt, 1}};
  r.routes = {{*IpPrefix::parse("0.0.0.0/0"), IpAddress::parse("10.244.1.1").value()}};
  r.dns.nameservers = {"10.96.0.10"};
  return r;
}

// 1.1.0 carries interface mtu; 1.0.0 does not; neither has ips[].version.
TEST(SpecTest, ResultEncodingFollowsVersion) {
  const Json v11 = toJson(sampleResult(), "1.1.0");
  EXPECT_EQ(v11["cniVersion"], "1.1.0");
  EXPECT_EQ(v11["interfaces"][1]["mtu"], 1450);
  EXPECT_FALSE(v11["ips"][0].contains("version"));
  const Json v10 = toJson(sampleResult(), "1.0.0");
  EXPECT_FALSE(v10["interfaces"][1].contains("mtu"));
  const Json v04 = toJson(sampleResult(), "0.4.0");
  EXPECT_EQ(v04["ips"][0]["version"], "4");
  EXPECT_EQ(v04["ips"][1]["version"], "6");
  EXPECT_FALSE(v11["ips"][1].contains("gateway"));
  EXPECT_EQ(v11["dns"]["nameservers"][0], "10.96.0.10");
}

// Encoding then decoding gives the same result, in every supported version
// that keeps all fields.
TEST(SpecTest, ResultRoundTrips) {
  const AddResult in = sampleResult();
  auto out = parseResult(toJson(in, "1.1.0"), "r", kCodeDecodeFailure);
  ASSERT_TRUE(out.ok()) << out.error().msg;
  EXPECT_EQ(out->interfaces, in.interfaces);
  EXPECT_EQ(out->ips, in.ips);
  EXPECT_EQ(out->routes, in.routes);
  EXPECT_EQ(out->dns, in.dns);
  auto legacy = parseResult(toJson(in, "0.4.0"), "r", kCodeDecodeFailure);
  ASSERT_TRUE(legacy.ok());
  EXPECT_EQ(legacy->ips, in.ips);
}

// Decoding errors name the exact field and carry the caller's code.
TEST(SpecTest, ResultDecodingNamesTheField) {
  struct Case {
    const char* scenario;
    const char* json;
    const char* msgHas;
  };
  const Case cases[] = {
      {"ip address not CIDR", R"({"ips":[{"address":"10.0.0.1"}]})", "prev.ips[0].address"},
      {"interface index out of range", R"({"ips":[{"address":"10.0.0.1/24","interface":3}]})",
       "prev.ips[0].interface: 3"},
      {"route gw family mismatch", R"({"routes":[{"dst":"0.0.0.0/0","gw":"fd00::1"}]})",
       "prev.routes[0].gw"},
      {"interfaces not an array", R"({"interfaces":{}})", "prev.interfaces: must be an array"},
      {"dns nameservers not strings", R"({"dns":{"nameservers":[1]}})", "prev.dns.nameservers"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.scenario);
    auto r = parseResult(Json::parse(c.json), "prev", kCodeInvalidConfig);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, kCodeInvalidConfig);
    EXPECT_NE(r.error().msg.find(c.msgHas), std::string::npos) << r.error().msg;
  }
}

// Versions compare numerically, not as text.
TEST(SpecTest, VersionsCompareNumerically) {
  EXPECT_TRUE(versionAtLeast("1.1.0", "1.0.0"));
  EXPECT_TRUE(versionAtLeast("0.10.0", "0.4.0"));
  EXPECT_FALSE(versionAtLeast("0.3.1", "0.4.0"));
  EXPECT_FALSE(versionAtLeast("1.1", "1.0.0"));
  EXPECT_FALSE(SpecVersion::parse("1.0.0-rc1").ok());
  EXPECT_TRUE(isSupportedVersion("1.1.0"));
  EXPECT_FALSE(isSupportedVersion("0.2.0"));
}

// A delegate is spoken to in our caller's version when it has it, else the
// newest older version sluice decodes (reference plugins 1.1 stop at 1.0.0).
TEST(SpecTest, NegotiatesDelegateVersion) {
  const std::vector<std::string> reference = {"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"};
  EXPECT_EQ(negotiateVersion("1.1.0", reference), "1.0.0");
  EXPECT_EQ(negotiateVersion("1.0.0", reference), "1.0.0");
  EXPECT_EQ(negotiateVersion("0.4.0", reference), "0.4.0");
  EXPECT_EQ(negotiateVersion("1.0.0", {"0.1.0", "0.2.0"}), std::nullopt);
  EXPECT_EQ(negotiateVersion("0.4.0", {"1.0.0", "1.1.0"}), std::nullopt);
}

TEST(SpecTest, ParsesCniArgs) {
  auto args = parseCniArgs("IgnoreUnknown=1;K8S_POD_NAME=web-1;;K8S_POD_NAMESPACE=default");
  ASSERT_TRUE(args.ok());
  ASSERT_EQ(args->size(), 3u);
  EXPECT_EQ((*args)[1].first, "K8S_POD_NAME");
  EXPECT_EQ((*args)[1].second, "web-1");
  EXPECT_EQ(parseCniArgs("A=1;=2").error().code, kCodeInvalidEnvironment);
}

// GC reads the 1.1.0 key and falls back to the spec text's first spelling.
TEST(SpecTest, ReadsValidAttachmentsUnderEitherKey) {
  auto a = parseValidAttachments(
      Json::parse(R"({"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]})"));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a, (std::vector<Attachment>{{"c1", "eth0"}}));
  auto b = parseValidAttachments(
      Json::parse(R"({"cni.dev/attachments":[{"containerID":"c2","ifname":"net1"}]})"));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, (std::vector<Attachment>{{"c2", "net1"}}));
  auto bad = parseValidAttachments(Json::parse(R"({"cni.dev/valid-attachments":[{"ifname":"x"}]})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().msg.find("cni.dev/valid-attachments[0].containerID"), std::string::npos);
}

// Node veth names fit IFNAMSIZ, are stable and differ per attachment.
TEST(SpecTest, HostVethNameIsStableAndShort) {
  const std::string a = hostVethName("3f6940ab5ab43bc522569d15b23f8c1bbde1d7678b080398506924fc01d72755", "eth0");
  EXPECT_EQ(a.size(), 15u);
  EXPECT_EQ(a.substr(0, 2), "sl");
  EXPECT_EQ(a, hostVethName("3f6940ab5ab43bc522569d15b23f8c1bbde1d7678b080398506924fc01d72755", "eth0"));
  EXPECT_NE(a, hostVethName("3f6940ab5ab43bc522569d15b23f8c1bbde1d7678b080398506924fc01d72755", "net1"));
  EXPECT_NE(hostVethName("ab", "c"), hostVethName("a", "bc"));
}

TEST(SpecTest, IpPrefixArithmetic) {
  auto p = IpPrefix::parse("10.244.1.77/24");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->network().toString(), "10.244.1.0/24");
  EXPECT_EQ(p->last().toString(), "10.244.1.255");
  EXPECT_TRUE(p->contains(IpAddress::parse("10.244.1.9").value()));
  EXPECT_FALSE(p->contains(IpAddress::parse("10.244.2.9").value()));
  EXPECT_EQ(nextAddress(IpAddress::parse("10.0.0.255").value()).toString(), "10.0.1.0");
  EXPECT_EQ(previousAddress(IpAddress::parse("fd00::1:0").value()).toString(), "fd00::ffff");
  EXPECT_EQ(rangeSize(IpAddress::parse("10.0.0.1").value(), IpAddress::parse("10.0.0.254").value()),
            254u);
  EXPECT_EQ(rangeSize(IpAddress::parse("fd00::").value(), IpAddress::parse("fd01::").value()),
            UINT64_MAX);
  EXPECT_FALSE(IpPrefix::parse("10.0.0.0/33").ok());
  EXPECT_FALSE(IpPrefix::parse("10.0.0.0/").ok());
}

// A handler double: the skeleton's validation runs before any handler.
class RecordingHandlers final : public PluginHandlers {
 public:
  int calls = 0;
  CniResult<Json> add(const CmdArgs&) override {
    ++calls;
    return Json{{"cniVersion", "1.1.0"}, {"ips", Json::array()}};
  }
  CniResult<void> del(const CmdArgs&) override { ++calls; return {}; }
  CniResult<void> check(const CmdArgs&) override { ++calls; return {}; }
  CniResult<void> gc(const CmdArgs&) override { ++calls; return {}; }
  CniResult<void> status(const CmdArgs&) override {
    ++calls;
    return CniError::make(kCodePluginNotAvailable, "not ready");
  }
};

// Errors answer in the config's version; handler errors keep their code.
TEST(SkelTest, ErrorsAnswerInTheConfigVersion) {
  RecordingHandlers h;
  const std::string conf = R"({"cniVersion":"1.0.0","name":"n","type":"t","ipam":{}})";
  auto out = runPlugin(h, {{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", "c"}, {"CNI_IFNAME", "eth0"}},
                       conf);
  EXPECT_EQ(out.exitCode, 1);
  auto err = Json::parse(out.stdoutData);
  EXPECT_EQ(err["code"], kCodeInvalidEnvironment);
  EXPECT_EQ(err["msg"], "CNI_NETNS: required for ADD");
  EXPECT_EQ(h.calls, 0);

  const std::string v11 = R"({"cniVersion":"1.1.0","name":"n","type":"t"})";
  out = runPlugin(h, {{"CNI_COMMAND", "STATUS"}}, v11);
  err = Json::parse(out.stdoutData);
  EXPECT_EQ(err["cniVersion"], "1.1.0");
  EXPECT_EQ(err["code"], kCodePluginNotAvailable);
  EXPECT_EQ(h.calls, 1);
}

// VERSION needs no config and answers even to garbage on stdin.
TEST(SkelTest, VersionAlwaysAnswers) {
  RecordingHandlers h;
  auto out = runPlugin(h, {{"CNI_COMMAND", "VERSION"}}, "not json");
  EXPECT_EQ(out.exitCode, 0);
  auto doc = Json::parse(out.stdoutData);
  EXPECT_EQ(doc["cniVersion"], "1.1.0");
  EXPECT_EQ(doc["supportedVersions"].size(), kSupportedVersions.size());
  out = runPlugin(h, {{"CNI_COMMAND", "VERSION"}}, R"({"cniVersion":"0.4.0"})");
  EXPECT_EQ(Json::parse(out.stdoutData)["cniVersion"], "0.4.0");
}

}  // namespace
}  // namespace sluice::cni
