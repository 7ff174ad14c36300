// The loader's pure mapping from the service model to map entries
// (bpf/loader/lb_layout.h): no kernel needed, so suite 'unit'.
#include "bpf/loader/lb_layout.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <vector>

namespace sluice::bpf {
namespace {

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

Backend backend(const char* addr, BackendState state = BackendState::kActive, bool local = false) {
  Backend b;
  b.address = ip(addr);
  b.port = 8080;
  b.state = state;
  b.nodeLocal = local;
  return b;
}

size_t moved(const std::vector<uint32_t>& before, const std::vector<uint32_t>& after) {
  size_t n = 0;
  for (size_t i = 0; i < std::min(before.size(), after.size()); ++i) n += before[i] != after[i];
  return n;
}

TEST(KeepPositionsTest, AddingABackendMovesNoOther) {
  const std::vector<uint32_t> before = {7, 3, 9, 4};
  const auto after = keepPositions(before, std::vector<uint32_t>{3, 4, 7, 9, 12});
  EXPECT_EQ(after, (std::vector<uint32_t>{7, 3, 9, 4, 12}));
}

TEST(KeepPositionsTest, RemovingOneOfNMovesAtMostOneOther) {
  const std::vector<uint32_t> before = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  for (uint32_t gone = 1; gone <= 10; ++gone) {
    std::vector<uint32_t> wanted;
    for (uint32_t id : before) {
      if (id != gone) wanted.push_back(id);
    }
    const auto after = keepPositions(before, wanted);
    ASSERT_EQ(after.size(), 9u);
    EXPECT_LE(moved(before, after), 1u) << "removing " << gone;
    EXPECT_EQ(std::count(after.begin(), after.end(), gone), 0);
  }
}

TEST(KeepPositionsTest, DuplicatesFromACorruptMapAreDropped) {
  const auto after = keepPositions(std::vector<uint32_t>{5, 5, 6}, std::vector<uint32_t>{5, 6});
  EXPECT_EQ(after.size(), 2u);
  EXPECT_EQ(std::count(after.begin(), after.end(), 5u), 1);
}

TEST(BackendSetTest, ActiveTerminatingAndLocalityAreSeparated) {
  Service s;
  s.backends = {backend("10.0.0.1"), backend("10.0.0.2", BackendState::kTerminating),
                backend("10.0.0.3", BackendState::kQuarantined), backend("10.0.0.4", {}, true),
                backend("fd00::1")};
  const Service::BackendSet cluster4 = s.backendSet(false, IpFamily::kV4);
  EXPECT_EQ(cluster4.active, (std::vector<size_t>{0, 3}));
  EXPECT_EQ(cluster4.terminating, (std::vector<size_t>{1}));
  const Service::BackendSet local4 = s.backendSet(true, IpFamily::kV4);
  EXPECT_EQ(local4.active, (std::vector<size_t>{3}));
  EXPECT_TRUE(local4.terminating.empty());
  EXPECT_EQ(s.backendSet(false, IpFamily::kV6).active, (std::vector<size_t>{4}));
}

TEST(FrontendFlagsTest, ScopePolicyAffinityAndAlgorithm) {
  Service s;
  s.internalPolicy = TrafficPolicy::kLocal;
  s.affinity.clientIp = true;
  s.algorithm = LbAlgorithm::kMaglev;
  Frontend cluster{ip("10.96.0.1"), 80, Protocol::kTcp, FrontendScope::kClusterIp};
  Frontend nodePort{ip("192.168.0.1"), 30080, Protocol::kTcp, FrontendScope::kNodePort};
  EXPECT_EQ(frontendFlags(s, cluster),
            SL_SVC_F_CLUSTER_IP | SL_SVC_F_LOCAL | SL_SVC_F_AFFINITY | SL_SVC_F_MAGLEV);
  EXPECT_EQ(frontendFlags(s, nodePort), SL_SVC_F_NODE_PORT | SL_SVC_F_AFFINITY | SL_SVC_F_MAGLEV);
}

TEST(KeysTest, AddressesAreStoredInNetworkOrderWithIpv4InTheFirstWord) {
  const sl_svc_key k = frontendKey({ip("10.96.0.1"), 443, Protocol::kUdp, {}});
  EXPECT_EQ(k.addr[0], htonl(0x0a600001));
  EXPECT_EQ(k.addr[1] | k.addr[2] | k.addr[3], 0u);
  EXPECT_EQ(k.port, htons(443));
  EXPECT_EQ(k.proto, 17);
  EXPECT_EQ(k.family, SL_FAMILY_V4);
  const sl_backend b = backendValue(backend("fd00::1"), 42);
  EXPECT_EQ(loadAddress(b.addr, b.family), ip("fd00::1"));
  EXPECT_EQ(b.svc_id, 42u);
  EXPECT_EQ(maglevBackendKey(backend("fd00::1")), "[fd00::1]:8080");
  EXPECT_EQ(maglevBackendKey(backend("10.0.0.1")), "10.0.0.1:8080");
}

TEST(KeysTest, SetIdsCarryFamilyAndLocality) {
  EXPECT_EQ(setId(5, IpFamily::kV4, false), 5u);
  EXPECT_EQ(setId(5, IpFamily::kV6, false), 5u | SL_SVC_ID_V6);
  EXPECT_EQ(setId(5, IpFamily::kV6, true), 5u | SL_SVC_ID_V6 | SL_SVC_ID_LOCAL);
}

}  // namespace
}  // namespace sluice::bpf
