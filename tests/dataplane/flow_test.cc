// hashFlow: the conntrack's key hash. It must spread tuples that differ only
// in fields sharing bit positions before mixing (ports, address bytes).
#include "dataplane/flow.h"

#include <gtest/gtest.h>

#include <unordered_set>

namespace sluice {
namespace {

// The reply tuples of full-NAT flows: 100 backends x 64,512 SNAT ports to
// one node address. Every one must get its own 32-bit hash (the
// conntrack's tag and home slot) but for chance collisions (~0.5% at this
// count for an ideal 32-bit hash).
TEST(FlowTest, ReplyTuplesOfManyBackendsAndPortsHashApart) {
  std::unordered_set<uint32_t> seen;
  size_t n = 0;
  for (int b = 1; b <= 100; ++b) {
    for (uint32_t p = 1024; p < 65536; ++p) {
      const FlowTuple t{IpAddress::v4({10, 244, 1, static_cast<uint8_t>(b)}),
                        IpAddress::v4({192, 168, 1, 10}), 8080, static_cast<uint16_t>(p),
                        Protocol::kTcp};
      seen.insert(static_cast<uint32_t>(hashFlow(t) >> 32));
      ++n;
    }
  }
  EXPECT_GT(seen.size(), n * 99 / 100) << n - seen.size() << " collisions of " << n;
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
