// control/util/rfc3339.h: the one RFC 3339 parser (trigger times carry
// nanoseconds, leases microseconds, metav1.Time seconds) and its formatters.
#include "control/util/rfc3339.h"

#include <gtest/gtest.h>

namespace sluice::util {
namespace {

using std::chrono::system_clock;

TEST(ParseRfc3339Test, ReadsTheFormatsKubernetesWrites) {
  const auto base = system_clock::from_time_t(1795316901);  // 2026-11-22T03:08:21Z
  EXPECT_EQ(parseRfc3339("2026-11-22T03:08:21Z"), base);
  EXPECT_EQ(parseRfc3339("2026-11-22T03:08:21.5Z"), base + std::chrono::milliseconds(500));
  EXPECT_EQ(parseRfc3339("2026-11-22T03:08:21.000000123Z"),
            base + std::chrono::duration_cast<system_clock::duration>(std::chrono::nanoseconds(123)));
  EXPECT_EQ(parseRfc3339("2026-11-22T04:08:21+01:00"), base);
  EXPECT_EQ(parseRfc3339("2026-11-22T02:38:21-00:30"), base);
}

TEST(ParseRfc3339Test, RejectsWhatIsNotRfc3339) {
  EXPECT_FALSE(parseRfc3339(""));
  EXPECT_FALSE(parseRfc3339("2026-11-22 03:08:21Z"));
  EXPECT_FALSE(parseRfc3339("2026-11-22T03:08:21"));
  EXPECT_FALSE(parseRfc3339("2026-11-22T03:08:21Zjunk"));
}

TEST(FormatRfc3339Test, SecondsMicrosAndGoNanos) {
  const auto t = system_clock::from_time_t(1795316901) +
                 std::chrono::duration_cast<system_clock::duration>(std::chrono::nanoseconds(123456700));
  EXPECT_EQ(formatRfc3339(t), "2026-11-22T03:08:21Z");
  EXPECT_EQ(formatRfc3339Micro(t), "2026-11-22T03:08:21.123456Z");
  EXPECT_EQ(formatRfc3339Nano(t), "2026-11-22T03:08:21.1234567Z");
  EXPECT_EQ(formatRfc3339Nano(system_clock::from_time_t(1795316901)), "2026-11-22T03:08:21Z");
  EXPECT_EQ(parseRfc3339(formatRfc3339Nano(t)), t);
}

TEST(ParseRfc3339Test, RejectsAnEmptyFractionAndABadOffset) {
  EXPECT_FALSE(parseRfc3339("2026-11-22T03:08:21.Z"));
  EXPECT_FALSE(parseRfc3339("2026-11-22T03:08:21+1:00"));
}

// Issue 18 (the same overflow the k8s_protobuf fuzzer found in protobuf
// Times): years past what a nanosecond TimePoint holds (1678-2262) are not
// parsed into a wrapped-around time; the range's ends are.
TEST(ParseRfc3339Test, YearsPastTheTimePointRangeAreRefused) {
  EXPECT_FALSE(parseRfc3339("9999-12-31T23:59:59Z"));
  EXPECT_FALSE(parseRfc3339("2474-09-14T00:00:00Z"));
  EXPECT_FALSE(parseRfc3339("0001-01-01T00:00:00Z"));
  auto late = parseRfc3339("2262-04-11T23:47:15Z");
  ASSERT_TRUE(late);
  EXPECT_EQ(formatRfc3339(*late), "2262-04-11T23:47:15Z");
  auto early = parseRfc3339("1677-09-21T00:12:45Z");
  ASSERT_TRUE(early);
  EXPECT_EQ(formatRfc3339(*early), "1677-09-21T00:12:45Z");
}

}  // namespace
}  // namespace sluice::util
