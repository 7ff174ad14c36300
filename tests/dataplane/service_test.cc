#include "dataplane/service.h"

#include <gtest/gtest.h>

#include "tests/dataplane/service_fixtures.h"

namespace sluice {
namespace {

using testing::backend;
using testing::clusterIpService;
using testing::ip;

TEST(IpAddressTest, ParsesAndPrintsBothFamilies) {
  // Text round-trips, and the family is what the text says.
  EXPECT_EQ(ip("10.96.0.1").toString(), "10.96.0.1");
  EXPECT_TRUE(ip("10.96.0.1").isV4());
  EXPECT_EQ(ip("fd00::a:1").toString(), "fd00::a:1");
  EXPECT_TRUE(ip("fd00::a:1").isV6());
  EXPECT_EQ(ip("10.0.0.1").v4Host(), 0x0a000001u);
  EXPECT_EQ(IpAddress::v4FromHost(0x0a000001u), ip("10.0.0.1"));
}

TEST(IpAddressTest, RejectsWhatIsNotAnAddress) {
  // Prefixes, zones, garbage and empty strings are refused with the input quoted.
  for (const char* bad : {"", "10.0.0.1/24", "10.0.0", "fe80::1%eth0", "example.com", "1.2.3.256"}) {
    auto r = IpAddress::parse(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.error().message.find(std::string("'") + bad + "'"), std::string::npos);
  }
}

TEST(ServiceTest, ValidServicePasses) {
  // A ClusterIP service with two backends is accepted.
  EXPECT_TRUE(validate(clusterIpService("web", "10.96.0.10",
                                        {backend("10.244.0.5", 8080), backend("10.244.1.5", 8080)}))
                  .ok());
}

struct BadServiceCase {
  const char* scenario;
  void (*mutate)(Service&);
  const char* expectedField;
};

class ServiceValidationTest : public ::testing::TestWithParam<BadServiceCase> {};

TEST_P(ServiceValidationTest, ErrorNamesTheField) {
  Service s = clusterIpService("web", "10.96.0.10", {backend("10.244.0.5", 8080)});
  GetParam().mutate(s);
  auto r = validate(s);
  ASSERT_FALSE(r.ok()) << GetParam().scenario;
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message.find(GetParam().expectedField), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("service " + s.key.toString()), std::string::npos)
      << r.error().message;
}

void PrintTo(const BadServiceCase& c, std::ostream* os) { *os << c.scenario; }

const BadServiceCase kBadServices[] = {
    {"frontend port 0", [](Service& s) { s.frontends[0].port = 0; }, "frontends[0].port"},
    {"backend port 0", [](Service& s) { s.backends[0].port = 0; }, "backends[0].port"},
    {"backend weight 0", [](Service& s) { s.backends[0].weight = 0; }, "backends[0].weight"},
    {"duplicate backend",
     [](Service& s) { s.backends.push_back(s.backends[0]); }, "backends[1]"},
    {"duplicate frontend",
     [](Service& s) { s.frontends.push_back(s.frontends[0]); }, "frontends[1]"},
    {"frontend protocol differs from service",
     [](Service& s) { s.frontends[0].protocol = Protocol::kUdp; }, "frontends[0].protocol"},
    {"ICMP is not a service protocol",
     [](Service& s) { s.protocol = Protocol::kIcmp; }, "protocol"},
    {"upper-case namespace", [](Service& s) { s.key.ns = "Default"; }, "namespace"},
    {"affinity timeout above a day",
     [](Service& s) {
       s.affinity.clientIp = true;
       s.affinity.timeoutSeconds = 86401;
     },
     "affinity.timeoutSeconds"},
    {"maglev size not prime",
     [](Service& s) {
       s.algorithm = LbAlgorithm::kMaglev;
       s.maglevTableSize = 65536;
     },
     "maglevTableSize"},
};

INSTANTIATE_TEST_SUITE_P(BadInput, ServiceValidationTest, ::testing::ValuesIn(kBadServices));

TEST(ServiceTest, LocalPolicyKeepsNodeLocalBackendsOnly) {
  // externalTrafficPolicy=Local: NodePort traffic goes only to this node's pods,
  // ClusterIP traffic (internalTrafficPolicy=Cluster) still goes anywhere.
  Service s = clusterIpService("web", "10.96.0.10",
                               {backend("10.244.0.5", 80, BackendState::kActive, true),
                                backend("10.244.1.5", 80, BackendState::kActive, false)});
  s.externalPolicy = TrafficPolicy::kLocal;
  ASSERT_EQ(s.eligibleBackends(FrontendScope::kNodePort).size(), 1u);
  EXPECT_EQ(s.eligibleBackends(FrontendScope::kNodePort)[0].address, ip("10.244.0.5"));
  EXPECT_EQ(s.eligibleBackends(FrontendScope::kClusterIp).size(), 2u);
}

TEST(ServiceTest, TerminatingBackendsAreFallbackOnly) {
  // One active and one terminating: new flows see only the active one; when it
  // goes, the terminating one is used rather than refusing.
  Service s = clusterIpService("web", "10.96.0.10",
                               {backend("10.244.0.5", 80, BackendState::kTerminating),
                                backend("10.244.0.6", 80, BackendState::kActive)});
  auto eligible = s.eligibleBackends(FrontendScope::kClusterIp);
  ASSERT_EQ(eligible.size(), 1u);
  EXPECT_EQ(eligible[0].address, ip("10.244.0.6"));
  s.backends.pop_back();
  eligible = s.eligibleBackends(FrontendScope::kClusterIp);
  ASSERT_EQ(eligible.size(), 1u);
  EXPECT_EQ(eligible[0].address, ip("10.244.0.5"));
}

TEST(ServiceTest, QuarantinedBackendsAreNeverEligible) {
  // A quarantined backend is not even a fallback: no backend means refuse.
  Service s = clusterIpService("web", "10.96.0.10",
                               {backend("10.244.0.5", 80, BackendState::kQuarantined)});
  EXPECT_TRUE(s.eligibleBackends(FrontendScope::kClusterIp).empty());
}

TEST(ServiceTableTest, FrontendBelongsToOneService) {
  // A second service claiming a taken ClusterIP:port is refused and the table is unchanged.
  ServiceTable t;
  ASSERT_TRUE(t.upsert(clusterIpService("a", "10.96.0.10")).ok());
  auto r = t.upsert(clusterIpService("b", "10.96.0.10"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kAlreadyExists);
  EXPECT_NE(r.error().message.find("default/a:http"), std::string::npos) << r.error().message;
  EXPECT_EQ(t.size(), 1u);
  EXPECT_EQ(t.findByFrontend(ip("10.96.0.10"), 80, Protocol::kTcp)->key.name, "a");
}

TEST(ServiceTableTest, SamePortOtherProtocolIsAnotherFrontend) {
  // DNS-style: 53/TCP and 53/UDP on one ClusterIP are two services' frontends.
  ServiceTable t;
  Service tcp = clusterIpService("dns", "10.96.0.10");
  tcp.key.port = "dns-tcp";
  Service udp = tcp;
  udp.key.port = "dns";
  udp.protocol = Protocol::kUdp;
  udp.frontends[0].protocol = Protocol::kUdp;
  ASSERT_TRUE(t.upsert(tcp).ok());
  ASSERT_TRUE(t.upsert(udp).ok());
  EXPECT_EQ(t.findByFrontend(ip("10.96.0.10"), 80, Protocol::kUdp)->key.port, "dns");
}

TEST(ServiceTableTest, ReplacingAServiceReleasesItsOldFrontends) {
  // Changing a service's ClusterIP frees the old address for another service.
  ServiceTable t;
  ASSERT_TRUE(t.upsert(clusterIpService("a", "10.96.0.10")).ok());
  ASSERT_TRUE(t.upsert(clusterIpService("a", "10.96.0.11")).ok());
  EXPECT_EQ(t.findByFrontend(ip("10.96.0.10"), 80, Protocol::kTcp), nullptr);
  EXPECT_TRUE(t.upsert(clusterIpService("b", "10.96.0.10")).ok());
  EXPECT_TRUE(t.erase({"default", "a", "http"}));
  EXPECT_FALSE(t.erase({"default", "a", "http"}));
  EXPECT_EQ(t.findByFrontend(ip("10.96.0.11"), 80, Protocol::kTcp), nullptr);
}

TEST(ServiceTableTest, InvalidServiceLeavesTableUnchanged) {
  // A bad update of an existing service keeps the previous version in place.
  ServiceTable t;
  Service good = clusterIpService("a", "10.96.0.10", {backend("10.244.0.5", 80)});
  ASSERT_TRUE(t.upsert(good).ok());
  Service bad = good;
  bad.backends[0].port = 0;
  ASSERT_FALSE(t.upsert(bad).ok());
  EXPECT_EQ(*t.find(good.key), good);
}

}  // namespace
}  // namespace sluice
