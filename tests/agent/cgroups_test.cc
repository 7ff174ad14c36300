// The cgroup layer's pure parts: the kubelet's millicore mappings, parsing
// a container's resources, and hierarchy detection from /proc text (the
// cgroup v2 layout runs nowhere here, so its placement is checked this way;
// the real-cgroup behaviour is in pod_resources_test.cc).
#include "control/agent/runtime/cgroups.h"

#include <gtest/gtest.h>

namespace sluice::agent {
namespace {

using Json = nlohmann::json;

// The kubelet's mappings: shares = m*1024/1000 (min 2), quota = m*100 us per
// 100 ms period (min 1 ms), weight from shares as runc converts it.
TEST(CgroupMappingTest, MillicoresMapLikeTheKubelet) {
  EXPECT_EQ(cpuSharesForMilli(0), 2u);
  EXPECT_EQ(cpuSharesForMilli(1), 2u);
  EXPECT_EQ(cpuSharesForMilli(100), 102u);
  EXPECT_EQ(cpuSharesForMilli(250), 256u);
  EXPECT_EQ(cpuSharesForMilli(1000), 1024u);
  EXPECT_EQ(cpuSharesForMilli(1000000), 262144u);
  EXPECT_EQ(cfsQuotaForMilli(100), 10000);
  EXPECT_EQ(cfsQuotaForMilli(1500), 150000);
  EXPECT_EQ(cfsQuotaForMilli(5), 1000);
  EXPECT_EQ(cpuWeightForShares(2), 1u);
  EXPECT_EQ(cpuWeightForShares(1024), 39u);
  EXPECT_EQ(cpuWeightForShares(262144), 10000u);
}

// Quantities parse as the API writes them; requests.cpu defaults to
// limits.cpu; a bad value names its field.
TEST(CgroupMappingTest, ResourcesParseAndBadValuesNameTheField) {
  auto r = parseResourceLimits(Json{{"limits", {{"memory", "32Mi"}, {"cpu", "0.5"}}}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->memoryLimitBytes, 32 * 1024 * 1024);
  EXPECT_EQ(r->cpuLimitMilli, 500);
  EXPECT_EQ(r->cpuRequestMilli, 500);
  r = parseResourceLimits(Json{{"requests", {{"cpu", "250m"}}}});
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->memoryLimitBytes.has_value());
  EXPECT_FALSE(r->cpuLimitMilli.has_value());
  EXPECT_EQ(r->cpuRequestMilli, 250);
  r = parseResourceLimits(Json{{"limits", {{"memory", "lots"}}}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("resources.limits.memory"), std::string::npos)
      << r.error().message;
  r = parseResourceLimits(Json{{"limits", {{"memory", "-5"}}}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("resources.limits.memory"), std::string::npos);
  // Zero limits mean "none", as runc and the kubelet read them.
  r = parseResourceLimits(Json{{"limits", {{"memory", "0"}, {"cpu", "0"}}}});
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->memoryLimitBytes.has_value());
  EXPECT_FALSE(r->cpuLimitMilli.has_value());
  r = parseResourceLimits(Json{{"requests", {{"cpu", "1x"}}}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("resources.requests.cpu"), std::string::npos);
}

// Detection from /proc text: v1 with cpu and cpuacct co-mounted, a relative
// parent placed under our own cgroup, an absolute one at the root; v2 only
// when its root offers the controllers.
TEST(CgroupMappingTest, DetectionPicksVersionAndPlacesParent) {
  const std::string mountinfo =
      "30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
      "31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
      "32 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
  const std::string self = "4:memory:/jail/a\n2:cpu,cpuacct:/\n0::/\n";
  auto m = CgroupManager::fromProc(mountinfo, self, false, "sluice");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->version(), CgroupVersion::kV1);
  EXPECT_EQ(m->parentDirs().cpu, "/sys/fs/cgroup/cpu,cpuacct/sluice");
  EXPECT_EQ(m->parentDirs().cpuacct, "/sys/fs/cgroup/cpu,cpuacct/sluice");
  EXPECT_EQ(m->parentDirs().memory, "/sys/fs/cgroup/memory/jail/a/sluice");
  EXPECT_EQ(m->podDirs("u1").child("c").unique().size(), 2u);
  m = CgroupManager::fromProc(mountinfo, self, false, "/kubepods");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->parentDirs().memory, "/sys/fs/cgroup/memory/kubepods");
  m = CgroupManager::fromProc(mountinfo, "0::/user.slice\n", true, "/kubepods");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->version(), CgroupVersion::kV2);
  EXPECT_EQ(m->parentDirs().memory, "/sys/fs/cgroup/unified/kubepods");
  auto none = CgroupManager::fromProc(
      "30 25 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n", "0::/\n", false, "sluice");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("cgroup"), std::string::npos);
}

}  // namespace
}  // namespace sluice::agent
