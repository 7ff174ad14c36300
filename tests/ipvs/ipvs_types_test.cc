// The IPVS value types (unit suite, no kernel): the names errors use and the comparison the
// mode's sync relies on to skip unchanged services.
#include "ipvs/ipvs_types.h"

#include <gtest/gtest.h>

#include "ipvs/netlink_client.h"

namespace sluice::ipvs {
namespace {

IpAddress ip(const char* text) { return IpAddress::parse(text).value(); }

// Keys print as address:port/PROTO, IPv6 bracketed, fwmark services by mark and family.
TEST(IpvsTypesTest, KeysPrintAsErrorsNameThem) {
  EXPECT_EQ(ServiceKey::tuple(ip("10.96.0.10"), 53, Protocol::kUdp).toString(),
            "10.96.0.10:53/UDP");
  EXPECT_EQ(ServiceKey::tuple(ip("fd00::a"), 443, Protocol::kTcp).toString(), "[fd00::a]:443/TCP");
  EXPECT_EQ(ServiceKey::mark(IpFamily::kV6, 0x4000).toString(), "fwmark 0x4000/IPv6");
}

// A batch names each change by its service and, for destination changes, the destination.
TEST(IpvsTypesTest, BatchDescribesEachChange) {
  const auto key = ServiceKey::tuple(ip("10.96.0.10"), 53, Protocol::kUdp);
  Batch b;
  Service s;
  s.key = key;
  b.addService(s);
  b.deleteDestination(key, ip("10.244.1.7"), 53);
  EXPECT_EQ(b.describe(0), "service 10.96.0.10:53/UDP");
  EXPECT_EQ(b.describe(1), "service 10.96.0.10:53/UDP: destination 10.244.1.7:53");
}

// sameConfig ignores what only the kernel sets (hashed flag, counters) and treats an unset
// persistence prefix as the full address length.
TEST(IpvsTypesTest, SameConfigIgnoresKernelOwnedFields) {
  Service want;
  want.key = ServiceKey::tuple(ip("10.96.0.1"), 80, Protocol::kTcp);
  want.flags = ServiceFlags::kMhPort;
  Service dumped = want;
  dumped.flags |= ServiceFlags::kHashed;
  dumped.persistencePrefix = 32;
  dumped.stats.connections = 7;
  EXPECT_TRUE(want.sameConfig(dumped));
  dumped.scheduler = "mh";
  EXPECT_FALSE(want.sameConfig(dumped));

  Destination d;
  d.address = ip("10.244.0.1");
  d.port = 80;
  Destination e = d;
  e.activeConnections = 3;
  e.tunnelPort = 9;  // not a tunnel: encapsulation fields do not count
  EXPECT_TRUE(d.sameConfig(e));
  e.weight = 0;
  EXPECT_FALSE(d.sameConfig(e));
}

// Info prints the kernel's version code as dotted numbers.
TEST(IpvsTypesTest, InfoVersionString) {
  EXPECT_EQ((Info{0x010201, 4096}).versionString(), "1.2.1");
}

}  // namespace
}  // namespace sluice::ipvs
