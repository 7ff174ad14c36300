// hashFlow: the conntrack's key hash. It must spread tuples that differ only
// in fields sharing bit positions before mixing (ports, address bytes).
#include "dataplane/flow.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <unordered_set>
#include <vector>

namespace sluice {
namespace {

// Calls `fn` with the reply tuple of every full-NAT flow from `backends`
// backends (10.244.1.1, .2, ...:8080) to SNAT ports 1024-65535 of one node
// address; returns how many.
template <typename Fn>
size_t forEachReplyTuple(int backends, Fn fn) {
  size_t n = 0;
  for (int b = 1; b <= backends; ++b) {
    for (uint32_t p = 1024; p < 65536; ++p, ++n) {
      fn(FlowTuple{IpAddress::v4({10, 244, 1, static_cast<uint8_t>(b)}),
                   IpAddress::v4({192, 168, 1, 10}), 8080, static_cast<uint16_t>(p),
                   Protocol::kTcp});
    }
  }
  return n;
}

// The reply tuples of full-NAT flows: 100 backends x 64,512 SNAT ports to
// one node address. Every one must get its own 32-bit hash (the
// conntrack's tag and home slot) but for chance collisions (~0.5% at this
// count for an ideal 32-bit hash).
TEST(FlowTest, ReplyTuplesOfManyBackendsAndPortsHashApart) {
  std::unordered_set<uint32_t> seen;
  const size_t n = forEachReplyTuple(100, [&](const FlowTuple& t) {
    seen.insert(static_cast<uint32_t>(hashFlow(t) >> 32));
  });
  EXPECT_GT(seen.size(), n * 99 / 100) << n - seen.size() << " collisions of " << n;
}

// The low bits pick the conntrack's bucket: reply tuples of 20 backends
// spread over 2^14 buckets with none holding more than twice the mean (an
// ideal hash's maximum at this count, ~79 a bucket, is about 1.5 times).
TEST(FlowTest, ReplyTuplesSpreadOverTheLowBits) {
  std::vector<uint32_t> perBucket(1u << 14);
  const size_t n = forEachReplyTuple(
      20, [&](const FlowTuple& t) { ++perBucket[(hashFlow(t) >> 32) & 0x3fff]; });
  const double mean = double(n) / double(perBucket.size());
  EXPECT_LT(*std::max_element(perBucket.begin(), perBucket.end()), 2 * mean);
  EXPECT_GT(*std::min_element(perBucket.begin(), perBucket.end()), mean / 3);
}

// An IPv4 address and the IPv6 address with the same leading bytes hash
// apart (the family is part of the key).
TEST(FlowTest, FamiliesHashApart) {
  std::array<uint8_t, 16> v6{};
  v6[0] = 10;
  v6[3] = 1;
  const FlowTuple t4{IpAddress::v4({10, 0, 0, 1}), IpAddress::v4({10, 0, 0, 1}), 1, 2,
                     Protocol::kUdp};
  const FlowTuple t6{IpAddress::v6(v6), IpAddress::v6(v6), 1, 2, Protocol::kUdp};
  EXPECT_NE(hashFlow(t4), hashFlow(t6));
}

// Reversed tuples hash differently (both directions index the same entry
// under two keys).
TEST(FlowTest, ATupleAndItsReverseHashApart) {
  const FlowTuple t{IpAddress::v4({10, 0, 0, 1}), IpAddress::v4({10, 96, 0, 10}), 40000, 80,
                    Protocol::kTcp};
  EXPECT_NE(hashFlow(t), hashFlow(t.reversed()));
}

}  // namespace
}  // namespace sluice
