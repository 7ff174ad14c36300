// Conntrack in a caller's memory region (createIn) and re-attached from it
// (adopt): what the DPDK process relies on to keep flows across its own
// restart, where the region is a shared-memory file that outlives it.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <new>
#include <span>

#include "tests/dataplane/conntrack_fixture.h"

namespace sluice::conntrack_testing {
namespace {

// A kRegionAlignment-aligned buffer standing in for the mapped file.
struct Region {
  explicit Region(uint32_t capacity) : bytes(Conntrack::regionBytes(capacity)) {
    data.reset(static_cast<std::byte*>(
        ::operator new (bytes, std::align_val_t{Conntrack::kRegionAlignment})));
    std::memset(data.get(), 0xa5, bytes);  // garbage, as a fresh file would not be
  }
  std::span<std::byte> span() { return {data.get(), bytes}; }

  struct Free {
    void operator()(std::byte* p) const {
      ::operator delete (p, std::align_val_t{Conntrack::kRegionAlignment});
    }
  };
  size_t bytes;
  std::unique_ptr<std::byte, Free> data;
};

using ConntrackRegionTest = ConntrackTest;

// A table formatted in a region behaves as a heap table: insert, both
// directions found, the entry's index stable.
TEST_F(ConntrackRegionTest, TableInARegionTracksFlowsLikeAHeapTable) {
  Region region(64);
  auto ct = Conntrack::createIn(region.span(), {64, {}});
  ASSERT_TRUE(ct.ok()) << ct.error().message;
  const ConntrackFlow f = webFlow();
  const ConntrackEntry& e = add(*ct, f, kT0);
  EXPECT_LT(ct->indexOf(e), 64u);
  auto back = ct->lookup(expectedReply(f), kT0);
  ASSERT_TRUE(back);
  EXPECT_EQ(back.direction, ConntrackDirection::kReply);
  EXPECT_EQ(ct->indexOf(*back.entry), ct->indexOf(e));
  EXPECT_EQ(ct->memoryBytes(), Conntrack::regionBytes(64));
}

// The restart: a second table adopts the region the first one filled and
// finds every flow in both directions, at the same pool index, with its NAT
// binding, state and counters; the most recently seen flow is evicted last.
TEST_F(ConntrackRegionTest, AdoptedRegionKeepsEveryFlowAndItsState) {
  Region region(8);
  uint32_t indexOfFirst = 0;
  {
    auto first = Conntrack::createIn(region.span(), {8, {}});
    ASSERT_TRUE(first.ok());
    for (uint16_t port = 40000; port < 40008; ++port) {
      add(*first, webFlow(port), kT0 + port);
    }
    // Flow 40000 sent more, flow 40001 answered: both seen after the rest.
    packet(*first, webFlow(40000).original, kTcpFlagAck, kT0 + 50000);
    indexOfFirst = first->indexOf(*first->peek(webFlow(40000).original, kT0 + 50000).entry);
    packet(*first, expectedReply(webFlow(40001)), kTcpFlagSyn | kTcpFlagAck, kT0 + 50001);
  }  // the process dies: the table object goes, the region stays
  auto second = Conntrack::adopt(region.span(), {8, {}});
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second->size(), 8u);
  for (uint16_t port = 40000; port < 40008; ++port) {
    const ConntrackFlow f = webFlow(port);
    auto m = second->peek(f.original, kT0 + 60000);
    ASSERT_TRUE(m) << port;
    EXPECT_EQ(m.entry->nat(), f.nat);
    EXPECT_TRUE(second->peek(expectedReply(f), kT0 + 60000)) << port;
  }
  auto established = second->peek(webFlow(40001).original, kT0 + 60000);
  EXPECT_EQ(established.entry->state, ConntrackState::kTcpEstablished);
  EXPECT_EQ(established.entry->packets[1], 1u);
  EXPECT_EQ(second->indexOf(*second->peek(webFlow(40000).original, kT0).entry), indexOfFirst);
  // LRU rebuilt by last-seen time: the oldest untouched flow (40002) goes
  // first, not 40000, the first inserted.
  add(*second, webFlow(41000), kT0 + 70000);
  EXPECT_FALSE(second->peek(webFlow(40002).original, kT0 + 70000));
  EXPECT_TRUE(second->peek(webFlow(40000).original, kT0 + 70000));
}

// adopt() rebuilds the index from the pool and reads nothing of it, so a
// region whose index another binary wrote in another format (linear
// probing before the bucketed index), or a torn one, keeps every flow.
// The index is the region's tail, after the 64 B header, the pool (136 B
// an entry) and the links (16 B an entry), each 64 B aligned.
TEST_F(ConntrackRegionTest, AdoptTrustsNothingOfTheIndex) {
  constexpr uint32_t kCapacity = 8;
  Region region(kCapacity);
  {
    auto first = Conntrack::createIn(region.span(), {kCapacity, {}});
    ASSERT_TRUE(first.ok());
    for (uint16_t port = 40000; port < 40008; ++port) add(*first, webFlow(port), kT0 + port);
  }
  auto alignUp = [](size_t n) { return (n + 63) / 64 * 64; };
  const size_t links = alignUp(64 + kCapacity * sizeof(ConntrackEntry));
  const size_t index = alignUp(links + kCapacity * 16);
  ASSERT_LT(index, region.bytes);
  std::memset(region.data.get() + index, 0x5a, region.bytes - index);
  auto second = Conntrack::adopt(region.span(), {kCapacity, {}});
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second->size(), 8u);
  for (uint16_t port = 40000; port < 40008; ++port) {
    EXPECT_TRUE(second->peek(webFlow(port).original, kT0 + 9000)) << port;
    EXPECT_TRUE(second->peek(expectedReply(webFlow(port)), kT0 + 9000)) << port;
  }
  EXPECT_FALSE(second->peek(webFlow(41000).original, kT0 + 9000));
  EXPECT_EQ(second->indexFault(), "");
}

// A region from another capacity (another configuration, or another
// binary's layout) is refused untouched: the caller formats a new one.
TEST_F(ConntrackRegionTest, AdoptRefusesARegionOfAnotherCapacityOrNoTableAtAll) {
  Region region(16);
  auto none = Conntrack::adopt(region.span(), {16, {}});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code, ErrorCode::kFailedPrecondition);
  {
    auto t = Conntrack::createIn(region.span(), {16, {}});
    ASSERT_TRUE(t.ok());
    add(*t, webFlow(), kT0);
  }
  auto other = Conntrack::adopt(region.span(), {8, {}});
  ASSERT_FALSE(other.ok());
  auto same = Conntrack::adopt(region.span(), {16, {}});
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->size(), 1u);
}

// A process killed between writing an entry and its index (or with two
// entries claiming one tuple) leaves a pool that adopt() repairs: the more
// recently seen of two duplicates stays, an entry in an impossible state goes.
TEST_F(ConntrackRegionTest, AdoptRepairsATornPool) {
  Region region(8);
  {
    auto t = Conntrack::createIn(region.span(), {8, {}});
    ASSERT_TRUE(t.ok());
    add(*t, webFlow(40000), kT0);
    add(*t, webFlow(40001), kT0 + 1);
    add(*t, webFlow(40002), kT0 + 2);
  }
  // Forge the torn state directly in the pool: entry 1 becomes a copy of
  // entry 0's flow seen later (a half-finished move), entry 2 gets a state
  // byte no release ever wrote.
  auto* entries = reinterpret_cast<ConntrackEntry*>(region.data.get() + 64);
  const ConntrackEntry original0 = entries[0];
  entries[1] = original0;
  entries[1].lastSeenNs = kT0 + 5;
  entries[1].backendId = 99;
  std::memset(&entries[2].state, 0x7f, 1);

  auto adopted = Conntrack::adopt(region.span(), {8, {}});
  ASSERT_TRUE(adopted.ok());
  EXPECT_EQ(adopted->size(), 1u);
  auto m = adopted->peek(webFlow(40000).original, kT0 + 10);
  ASSERT_TRUE(m);
  EXPECT_EQ(m.entry->backendId, 99u) << "the more recent duplicate wins";
  EXPECT_FALSE(adopted->peek(webFlow(40002).original, kT0 + 10));
  // Freed slots are reusable: the table fills to capacity again.
  for (uint16_t port = 42000; port < 42007; ++port) add(*adopted, webFlow(port), kT0 + 20);
  EXPECT_EQ(adopted->size(), 8u);
}

}  // namespace
}  // namespace sluice::conntrack_testing
