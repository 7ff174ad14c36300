#include "dataplane/conntrack.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "tests/dataplane/conntrack_fixture.h"

namespace sluice {
namespace {

using namespace conntrack_testing;  // NOLINT

// --- create ---------------------------------------------------------------

// A table of zero entries could never track anything: refused with the field named.
TEST_F(ConntrackTest, CreateRejectsZeroCapacity) {
  auto ct = Conntrack::create({0, {}});
  ASSERT_FALSE(ct.ok());
  EXPECT_EQ(ct.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(ct.error().message.find("capacity"), std::string::npos);
}

// Past kMaxCapacity the 32-bit slot references would overflow.
TEST_F(ConntrackTest, CreateRejectsCapacityPastLimit) {
  EXPECT_FALSE(Conntrack::create({Conntrack::kMaxCapacity + 1, {}}).ok());
}

// A zero timeout would expire every entry at birth; the message names which.
TEST_F(ConntrackTest, CreateRejectsZeroTimeout) {
  ConntrackTimeouts t;
  t.udpRepliedNs = 0;
  auto ct = Conntrack::create({16, t});
  ASSERT_FALSE(ct.ok());
  EXPECT_NE(ct.error().message.find("udpRepliedNs"), std::string::npos);
}

// --- lookup by both directions ----------------------------------------------

// The client's packet and the backend's answer find the one entry, each with its direction.
TEST_F(ConntrackTest, ForwardAndReplyLookupFindTheSameEntry) {
  Conntrack ct = make(16);
  const ConntrackEntry& e = add(ct, webFlow(), kT0);
  EXPECT_EQ(e.reply, tuple("10.244.1.5", 8080, "10.0.0.1", 40000));

  auto fwd = ct.lookup(tuple("10.0.0.1", 40000, "10.96.0.10", 80), kT0);
  auto rev = ct.lookup(tuple("10.244.1.5", 8080, "10.0.0.1", 40000), kT0);
  ASSERT_TRUE(fwd);
  ASSERT_TRUE(rev);
  EXPECT_EQ(fwd.entry, rev.entry);
  EXPECT_EQ(fwd.direction, ConntrackDirection::kOriginal);
  EXPECT_EQ(rev.direction, ConntrackDirection::kReply);
  EXPECT_EQ(ct.size(), 1u);
}

// The pre-NAT reversed tuple (frontend -> client) is not what backends send: no match.
TEST_F(ConntrackTest, ReversedPreNatTupleDoesNotMatch) {
  Conntrack ct = make(16);
  add(ct, webFlow(), kT0);
  EXPECT_FALSE(ct.lookup(webFlow().original.reversed(), kT0));
  EXPECT_FALSE(ct.lookup(tuple("10.0.0.1", 40001, "10.96.0.10", 80), kT0));
  EXPECT_EQ(ct.stats().lookupMisses, 2u);
}

// IPv6 flows index and NAT exactly as IPv4 ones, and never alias them.
TEST_F(ConntrackTest, V6TuplesLookUpInBothDirections) {
  Conntrack ct = make(16);
  ConntrackFlow f;
  f.original = tuple("fd00::1", 50000, "fd00:96::a", 443);
  f.nat.backend = {ip("fd00:244::5"), 8443};
  f.nat.snat = NatEndpoint{ip("fd00::100"), 61000};
  add(ct, f, kT0);
  add(ct, webFlow(), kT0);

  auto rev = ct.lookup(tuple("fd00:244::5", 8443, "fd00::100", 61000), kT0);
  ASSERT_TRUE(rev);
  EXPECT_EQ(rev.direction, ConntrackDirection::kReply);
  EXPECT_EQ(rev.entry->original, f.original);
  EXPECT_EQ(rev.entry->frontend(), (NatEndpoint{ip("fd00:96::a"), 443}));
  // Same bytes in v4-mapped form are a different address.
  EXPECT_FALSE(ct.lookup(tuple("::ffff:10.0.0.1", 40000, "::ffff:10.96.0.10", 80), kT0));
}

// A burst (longer than one 64-tuple chunk, with misses, expired entries and
// repeats) has exactly the results and effects of lookups one by one.
TEST_F(ConntrackTest, LookupBurstMatchesSequentialLookups) {
  Conntrack burst = make(64);
  Conntrack single = make(64);
  std::vector<FlowTuple> tuples;
  for (uint16_t port = 1; port <= 80; ++port) {
    // Every fourth flow is UDP and will have expired at lookup time.
    const Protocol proto = port % 4 == 0 ? Protocol::kUdp : Protocol::kTcp;
    for (Conntrack* ct : {&burst, &single}) (void)ct->insert(webFlow(port, 7, proto), 0, 60, kT0);
    const ConntrackFlow f = webFlow(port, 7, proto);
    tuples.push_back(port % 2 ? f.original : expectedReply(f));
  }
  tuples.push_back(tuples[70]);  // a repeat, after the first chunk
  tuples.push_back(tuple("10.9.9.9", 1, "10.96.0.10", 80));  // never tracked

  const uint64_t now = kT0 + 40 * kS;
  std::vector<ConntrackMatch> got(tuples.size());
  const size_t hits = burst.lookupBurst(tuples, got, now);
  size_t wantHits = 0;
  for (size_t i = 0; i < tuples.size(); ++i) {
    auto want = single.lookup(tuples[i], now);
    wantHits += static_cast<bool>(want);
    ASSERT_EQ(static_cast<bool>(got[i]), static_cast<bool>(want)) << i;
    if (want) {
      EXPECT_EQ(got[i].entry->original, want.entry->original) << i;
      EXPECT_EQ(got[i].direction, want.direction) << i;
    }
  }
  EXPECT_EQ(hits, wantHits);
  EXPECT_GT(hits, 20u);
  EXPECT_LT(hits, tuples.size() - 10);
  EXPECT_EQ(burst.stats().lookupHits, single.stats().lookupHits);
  EXPECT_EQ(burst.stats().lookupMisses, single.stats().lookupMisses);
  EXPECT_EQ(burst.stats().expirations, single.stats().expirations);
  std::vector<FlowTuple> orderBurst, orderSingle;
  burst.forEach(now, [&](const ConntrackEntry& e) { orderBurst.push_back(e.original); });
  single.forEach(now, [&](const ConntrackEntry& e) { orderSingle.push_back(e.original); });
  EXPECT_EQ(orderBurst, orderSingle);
}

// insertAbsent() with the hash a missed lookup reported is insert() for a
// flow known to be untracked: over a full table with eviction, expired
// victims and reply collisions, both tables end with the same entries, LRU
// order and counters; each miss reported the hash the later hit reports.
TEST_F(ConntrackTest, InsertAbsentAfterAMissIsInsert) {
  Conntrack plain = make(32);
  Conntrack absent = make(32);
  std::mt19937 rng(11);
  for (int i = 0; i < 2'000; ++i) {
    const auto port = static_cast<uint16_t>(1 + rng() % 200);
    // Every fifth flow is UDP (expires after 30 s); time runs 1 s a step.
    const Protocol proto = port % 5 == 0 ? Protocol::kUdp : Protocol::kTcp;
    ConntrackFlow f = webFlow(port, 7, proto);
    // Reply collisions: some flows share another's SNAT binding.
    if (port % 7 == 0) f.nat.snat = NatEndpoint{ip("10.0.0.100"), uint16_t(61000 + port % 3)};
    const uint64_t now = kT0 + uint64_t(i) * kS;
    auto a = plain.lookup(f.original, now);
    auto b = absent.lookup(f.original, now);
    ASSERT_EQ(static_cast<bool>(a), static_cast<bool>(b)) << i;
    ASSERT_EQ(a.hash, b.hash) << i;
    if (a) continue;
    absent.prefetchVictims(1);
    auto x = plain.insert(f, kTcpFlagSyn, 60, now);
    auto y = absent.insertAbsent(f, b.hash, kTcpFlagSyn, 60, now);
    ASSERT_EQ(x.status, y.status) << i;
    if (x.status == ConntrackInsertStatus::kInserted) {
      ASSERT_EQ(absent.lookup(f.original, now).hash, b.hash) << "a hit reports the miss's hash";
      (void)plain.lookup(f.original, now);
    }
  }
  const uint64_t end = kT0 + 2'000 * kS;
  std::vector<FlowTuple> orderPlain, orderAbsent;
  plain.forEach(end, [&](const ConntrackEntry& e) { orderPlain.push_back(e.reply); });
  absent.forEach(end, [&](const ConntrackEntry& e) { orderAbsent.push_back(e.reply); });
  EXPECT_EQ(orderPlain, orderAbsent);
  EXPECT_EQ(plain.stats().evictions, absent.stats().evictions);
  EXPECT_EQ(plain.stats().insertCollisions, absent.stats().insertCollisions);
  EXPECT_GT(plain.stats().evictions, 100u);
  EXPECT_GT(plain.stats().insertCollisions, 10u);
  EXPECT_EQ(plain.stats().inserts, absent.stats().inserts);
}

// --- NAT ------------------------------------------------------------------

// DNAT + SNAT given at insert come back unchanged, with the frontend to restore on replies.
TEST_F(ConntrackTest, NatFieldsRoundTrip) {
  Conntrack ct = make(16);
  ConntrackFlow f = webFlow();
  f.nat.snat = NatEndpoint{ip("192.168.1.10"), 61001};
  const ConntrackEntry& e = add(ct, f, kT0);

  EXPECT_EQ(e.nat(), f.nat);
  EXPECT_EQ(e.client(), (NatEndpoint{ip("10.0.0.1"), 40000}));
  EXPECT_EQ(e.frontend(), (NatEndpoint{ip("10.96.0.10"), 80}));
  EXPECT_EQ(e.backend(), (NatEndpoint{ip("10.244.1.5"), 8080}));
  EXPECT_EQ(e.reply, tuple("10.244.1.5", 8080, "192.168.1.10", 61001));
  EXPECT_EQ(e.backendId, 7u);
  // Without SNAT there is nothing to undo on the destination side.
  const ConntrackEntry& plain = add(ct, webFlow(40001), kT0);
  EXPECT_EQ(plain.snat(), std::nullopt);
  EXPECT_EQ(plain.nat(), webFlow(40001).nat);
}

// Packets and bytes are counted per direction, the first packet included.
TEST_F(ConntrackTest, CountersArePerDirection) {
  Conntrack ct = make(16);
  ConntrackFlow f = webFlow();
  ASSERT_EQ(ct.insert(f, kTcpFlagSyn, 60, kT0).status, ConntrackInsertStatus::kInserted);
  auto rev = ct.lookup(f.original.reversed(), kT0);  // pre-NAT reverse: miss
  EXPECT_FALSE(rev);
  rev = ct.lookup(tuple("10.244.1.5", 8080, "10.0.0.1", 40000), kT0);
  ct.update(rev, kTcpFlagSyn | kTcpFlagAck, 60, kT0 + 1);
  auto fwd = ct.lookup(f.original, kT0 + 2);
  ct.update(fwd, kTcpFlagAck, 52, kT0 + 2);
  ct.update(fwd, kTcpFlagAck, 1500, kT0 + 3);

  EXPECT_EQ(fwd.entry->packets, (std::array<uint64_t, 2>{3, 1}));
  EXPECT_EQ(fwd.entry->bytes, (std::array<uint64_t, 2>{60 + 52 + 1500, 60}));
  EXPECT_EQ(fwd.entry->lastSeenNs, kT0 + 3);
  EXPECT_TRUE(fwd.entry->seenReply);
}

// --- insert conflicts -----------------------------------------------------

// A second SYN of a tracked flow, or a backend packet offered as a new flow, finds the existing entry.
TEST_F(ConntrackTest, DuplicateInsertReturnsExistingEntry) {
  Conntrack ct = make(16);
  const ConntrackEntry& e = add(ct, webFlow(), kT0);

  ConntrackFlow again = webFlow(40000, /*backendId=*/9);  // a different backend choice
  again.nat.backend = {ip("10.244.2.9"), 8080};
  auto r = ct.insert(again, kTcpFlagSyn, 60, kT0 + 1);
  EXPECT_EQ(r.status, ConntrackInsertStatus::kExists);
  EXPECT_EQ(r.match().entry, &e);
  EXPECT_EQ(r.match().direction, ConntrackDirection::kOriginal);
  EXPECT_EQ(e.backendId, 7u);  // the first binding stands
  EXPECT_EQ(e.backend().address, ip("10.244.1.5"));

  ConntrackFlow fromBackend;
  fromBackend.original = e.reply;
  fromBackend.nat.backend = {ip("10.0.0.1"), 40000};
  r = ct.insert(fromBackend, kTcpFlagAck, 60, kT0 + 1);
  EXPECT_EQ(r.status, ConntrackInsertStatus::kExists);
  EXPECT_EQ(r.match().entry, &e);
  EXPECT_EQ(r.match().direction, ConntrackDirection::kReply);

  EXPECT_EQ(ct.size(), 1u);
  EXPECT_EQ(ct.stats().inserts, 1u);
  EXPECT_EQ(ct.stats().insertExisting, 2u);
}

// Two clients SNATed to the same port towards the same backend: the second is refused, whole.
TEST_F(ConntrackTest, ReplyTupleCollisionLeavesNoState) {
  Conntrack ct = make(16);
  ConntrackFlow a = webFlow(40000);
  a.nat.snat = NatEndpoint{ip("192.168.1.10"), 61001};
  add(ct, a, kT0);

  ConntrackFlow b;
  b.original = tuple("10.0.0.2", 40000, "10.96.0.10", 80);
  b.nat = a.nat;
  auto r = ct.insert(b, kTcpFlagSyn, 60, kT0);
  EXPECT_EQ(r.status, ConntrackInsertStatus::kReplyCollision);
  EXPECT_FALSE(r.match());
  EXPECT_EQ(ct.size(), 1u);
  EXPECT_FALSE(ct.peek(b.original, kT0));  // no half-inserted forward key
  auto rev = ct.peek(tuple("10.244.1.5", 8080, "192.168.1.10", 61001), kT0);
  ASSERT_TRUE(rev);
  EXPECT_EQ(rev.entry->original, a.original);
  EXPECT_EQ(ct.stats().insertCollisions, 1u);

  // The caller's retry with another SNAT port goes through.
  b.nat.snat->port = 61002;
  EXPECT_EQ(ct.insert(b, kTcpFlagSyn, 60, kT0).status, ConntrackInsertStatus::kInserted);
}

// A new flow whose reply tuple equals another live flow's *forward* tuple is refused too.
TEST_F(ConntrackTest, ReplyTupleCollidingWithForwardTupleIsRefused) {
  Conntrack ct = make(16);
  ConntrackFlow a;
  a.original = tuple("10.244.1.5", 8080, "10.0.0.1", 40000);
  a.nat.backend = {ip("10.0.0.1"), 40000};
  add(ct, a, kT0);  // its reply tuple is 10.0.0.1:40000 -> 10.244.1.5:8080

  EXPECT_EQ(ct.insert(webFlow(), kTcpFlagSyn, 60, kT0).status,
            ConntrackInsertStatus::kReplyCollision);
  EXPECT_EQ(ct.size(), 1u);
}

// A client reaching itself without NAT has reply == original: one tuple cannot key two directions.
TEST_F(ConntrackTest, ReplyEqualToForwardIsRefused) {
  Conntrack ct = make(16);
  ConntrackFlow self;
  self.original = tuple("10.0.0.1", 5000, "10.0.0.1", 5000, Protocol::kUdp);
  self.nat.backend = {ip("10.0.0.1"), 5000};
  EXPECT_EQ(ct.insert(self, 0, 60, kT0).status, ConntrackInsertStatus::kReplyCollision);
  EXPECT_EQ(ct.size(), 0u);
}

// An expired entry holding the tuples is no obstacle: the new flow replaces it.
TEST_F(ConntrackTest, InsertOverExpiredEntryReplacesIt) {
  Conntrack ct = make(16);
  add(ct, webFlow(40000, 7), kT0);
  const ConntrackEntry& e = add(ct, webFlow(40000, 8), kT0 + 120 * kS);
  EXPECT_EQ(e.backendId, 8u);
  EXPECT_EQ(ct.size(), 1u);
  EXPECT_EQ(ct.stats().expirations, 1u);
}

// --- eviction (second chance over the LRU list) -----------------------------

std::vector<uint16_t> clientPorts(const Conntrack& ct, uint64_t now) {
  std::vector<uint16_t> ports;
  ct.forEach(now, [&](const ConntrackEntry& e) { ports.push_back(e.original.srcPort); });
  return ports;
}

// Capacity 3, four flows: the oldest one not looked up since is evicted,
// not the oldest inserted, which a second chance moved to the front.
TEST_F(ConntrackTest, LookupRefreshesLruSoLeastRecentlyUsedIsEvicted) {
  Conntrack ct = make(3);
  add(ct, webFlow(1), kT0);
  add(ct, webFlow(2), kT0 + 1);
  add(ct, webFlow(3), kT0 + 2);
  ASSERT_TRUE(ct.lookup(webFlow(1).original, kT0 + 3));
  EXPECT_EQ(clientPorts(ct, kT0 + 3), (std::vector<uint16_t>{3, 2, 1})) << "a lookup moves nothing";
  add(ct, webFlow(4), kT0 + 4);

  EXPECT_TRUE(ct.peek(webFlow(1).original, kT0 + 4));
  EXPECT_FALSE(ct.peek(webFlow(2).original, kT0 + 4));
  EXPECT_TRUE(ct.peek(webFlow(3).original, kT0 + 4));
  EXPECT_TRUE(ct.peek(webFlow(4).original, kT0 + 4));
  EXPECT_EQ(ct.stats().evictions, 1u);
  EXPECT_EQ(ct.size(), 3u);
  EXPECT_EQ(clientPorts(ct, kT0 + 4), (std::vector<uint16_t>{4, 1, 3}));
}

// A table wholly in use: one insert gives kMaxSecondChances entries of the
// tail a second chance, then takes the next one although it was used; the
// next insert finds the first of them, its mark cleared, at the tail.
TEST_F(ConntrackTest, EvictionGivesAtMostEightSecondChances) {
  constexpr uint16_t kFlows = 16;
  static_assert(Conntrack::kMaxSecondChances == 8);
  Conntrack ct = make(kFlows);
  for (uint16_t i = 0; i < kFlows; ++i) add(ct, webFlow(i), kT0);
  for (uint16_t i = 0; i < kFlows; ++i) ASSERT_TRUE(ct.lookup(webFlow(i).original, kT0));
  add(ct, webFlow(100), kT0);
  EXPECT_EQ(ct.stats().evictions, 1u);
  for (uint16_t i = 0; i < kFlows; ++i) {
    EXPECT_EQ(static_cast<bool>(ct.peek(webFlow(i).original, kT0)), i != 8) << "flow " << i;
  }
  EXPECT_EQ(clientPorts(ct, kT0), (std::vector<uint16_t>{100, 7, 6, 5, 4, 3, 2, 1, 0, 15, 14,
                                                         13, 12, 11, 10, 9}));
  // 9..15 are still used: they move; 0's mark was cleared: it goes.
  add(ct, webFlow(101), kT0);
  EXPECT_FALSE(ct.peek(webFlow(0).original, kT0));
  EXPECT_EQ(clientPorts(ct, kT0), (std::vector<uint16_t>{101, 15, 14, 13, 12, 11, 10, 9, 100, 7,
                                                         6, 5, 4, 3, 2, 1}));
  EXPECT_EQ(ct.stats().evictions, 2u);
}

// evictedFromBatch() is true once an insert evicted an entry the last
// lookupBurst found, and only then: the next batch starts clean, and
// evicting an entry of an earlier batch leaves it false.
TEST_F(ConntrackTest, EvictedFromBatchSaysWhenAnEntryOfTheBatchMayBeGone) {
  constexpr uint16_t kFlows = 16;
  Conntrack ct = make(kFlows);
  for (uint16_t i = 0; i < kFlows; ++i) add(ct, webFlow(i), kT0);
  std::vector<FlowTuple> tuples;
  for (uint16_t i = 0; i < kFlows; ++i) tuples.push_back(webFlow(i).original);
  std::vector<ConntrackMatch> out(kFlows);
  ASSERT_EQ(ct.lookupBurst(tuples, out, kT0), kFlows);
  EXPECT_FALSE(ct.evictedFromBatch());
  add(ct, webFlow(100), kT0);  // takes flow 8, found by this batch
  EXPECT_TRUE(ct.evictedFromBatch());

  ASSERT_EQ(ct.lookupBurst(std::span(tuples).first(1), out, kT0), 1u);
  EXPECT_FALSE(ct.evictedFromBatch());
  // 9..15 and flow 0 (found by this batch) move to the front: flow 1 goes.
  add(ct, webFlow(101), kT0);
  EXPECT_FALSE(ct.peek(webFlow(1).original, kT0));
  EXPECT_FALSE(ct.evictedFromBatch()) << "flow 1 was found by the batch before";
}

// A reply-direction lookup is a use as well; with no lookups the first inserted goes first.
TEST_F(ConntrackTest, ReplyLookupRefreshesLruAndInsertOrderRulesOtherwise) {
  Conntrack ct = make(2);
  const FlowTuple reply1 = add(ct, webFlow(1), kT0).reply;
  add(ct, webFlow(2), kT0);
  ASSERT_TRUE(ct.lookup(reply1, kT0));
  add(ct, webFlow(3), kT0);  // evicts 2
  EXPECT_TRUE(ct.peek(webFlow(1).original, kT0));
  EXPECT_FALSE(ct.peek(webFlow(2).original, kT0));
  add(ct, webFlow(4), kT0);  // evicts 1: inserted 3 is newer than 1's lookup
  EXPECT_FALSE(ct.peek(webFlow(1).original, kT0));
  EXPECT_FALSE(ct.peek(reply1, kT0));
  EXPECT_TRUE(ct.peek(webFlow(3).original, kT0));
}

// peek() is for introspection: it must not change which entry is evicted.
TEST_F(ConntrackTest, PeekDoesNotRefreshLru) {
  Conntrack ct = make(2);
  add(ct, webFlow(1), kT0);
  add(ct, webFlow(2), kT0);
  ASSERT_TRUE(ct.peek(webFlow(1).original, kT0));
  add(ct, webFlow(3), kT0);
  EXPECT_FALSE(ct.peek(webFlow(1).original, kT0));
}

// A full table whose LRU victim has already timed out counts an expiration, not an eviction.
TEST_F(ConntrackTest, FullTableReclaimingExpiredVictimIsAnExpiration) {
  Conntrack ct = make(1);
  add(ct, webFlow(1, 7, Protocol::kUdp), kT0, 0);
  add(ct, webFlow(2, 7, Protocol::kUdp), kT0 + 30 * kS, 0);
  add(ct, webFlow(3, 7, Protocol::kUdp), kT0 + 31 * kS, 0);
  EXPECT_EQ(ct.stats().expirations, 1u);
  EXPECT_EQ(ct.stats().evictions, 1u);
  EXPECT_EQ(ct.stats().inserts, 3u);
}

// --- TCP states and timeouts ---------------------------------------------

// A SYN nobody answers lives exactly 120 s (Linux syn_sent).
TEST_F(ConntrackTest, TcpSynSentExpiresAt120s) {
  Conntrack ct = make(16);
  const ConntrackEntry& e = add(ct, webFlow(), kT0);
  EXPECT_EQ(e.state, ConntrackState::kTcpSynSent);
  EXPECT_EQ(ct.expiresAtNs(e), kT0 + 120 * kS);
  EXPECT_TRUE(ct.lookup(webFlow().original, kT0 + 120 * kS - 1));
  EXPECT_FALSE(ct.lookup(webFlow().original, kT0 + 120 * kS));
  EXPECT_EQ(ct.size(), 0u);  // lookup removed it
  EXPECT_EQ(ct.stats().expirations, 1u);
}

// Once the backend's SYN-ACK is seen the flow is established and outlives 120 s, up to 24 h idle.
TEST_F(ConntrackTest, TcpEstablishedOutlivesSynTimeout) {
  Conntrack ct = make(16);
  const ConntrackEntry& e = add(ct, webFlow(), kT0);
  EXPECT_EQ(packet(ct, e.reply, kTcpFlagSyn | kTcpFlagAck, kT0 + kS),
            ConntrackState::kTcpEstablished);
  EXPECT_EQ(packet(ct, e.original, kTcpFlagAck, kT0 + 2 * kS), ConntrackState::kTcpEstablished);
  const uint64_t last = kT0 + 2 * kS;
  EXPECT_TRUE(ct.lookup(webFlow().original, last + 120 * kS));
  EXPECT_TRUE(ct.lookup(webFlow().original, last + 86'400 * kS - 1));
  EXPECT_FALSE(ct.lookup(webFlow().original, last + 86'400 * kS));
}

// Client ACKs without any answer do not promote: still SYN_SENT, still 120 s.
TEST_F(ConntrackTest, TcpClientAcksAloneDoNotEstablish) {
  Conntrack ct = make(16);
  const ConntrackEntry& e = add(ct, webFlow(), kT0);
  EXPECT_EQ(packet(ct, e.original, kTcpFlagAck, kT0 + kS), ConntrackState::kTcpSynSent);
  EXPECT_FALSE(ct.peek(webFlow().original, kT0 + 121 * kS));
}

// A FIN half-closes (1 h, kube-proxy's close-wait); FINs both ways leave 120 s of TIME_WAIT.
TEST_F(ConntrackTest, FinShortensEstablishedTimeout) {
  Conntrack ct = make(16);
  const ConntrackEntry& e = add(ct, webFlow(), kT0);
  packet(ct, e.reply, kTcpFlagSyn | kTcpFlagAck, kT0);
  EXPECT_EQ(packet(ct, e.original, kTcpFlagFin | kTcpFlagAck, kT0 + kS),
            ConntrackState::kTcpFinWait);
  EXPECT_EQ(ct.expiresAtNs(e), kT0 + kS + 3'600 * kS);
  EXPECT_EQ(packet(ct, e.reply, kTcpFlagAck, kT0 + 2 * kS), ConntrackState::kTcpFinWait);
  EXPECT_EQ(packet(ct, e.reply, kTcpFlagFin | kTcpFlagAck, kT0 + 3 * kS),
            ConntrackState::kTcpTimeWait);
  EXPECT_EQ(packet(ct, e.original, kTcpFlagAck, kT0 + 4 * kS), ConntrackState::kTcpTimeWait);
  EXPECT_TRUE(ct.peek(e.original, kT0 + 4 * kS + 120 * kS - 1));
  EXPECT_FALSE(ct.peek(e.original, kT0 + 4 * kS + 120 * kS));
}

// An RST from either side closes the flow: gone 10 s later.
TEST_F(ConntrackTest, RstClosesWithin10s) {
  Conntrack ct = make(16);
  const ConntrackEntry& e = add(ct, webFlow(), kT0);
  packet(ct, e.reply, kTcpFlagSyn | kTcpFlagAck, kT0);
  EXPECT_EQ(packet(ct, e.reply, kTcpFlagRst, kT0 + kS), ConntrackState::kTcpClose);
  // Stray ACKs after the RST keep it closed (and refresh the 10 s).
  EXPECT_EQ(packet(ct, e.original, kTcpFlagAck, kT0 + 2 * kS), ConntrackState::kTcpClose);
  EXPECT_TRUE(ct.peek(e.original, kT0 + 12 * kS - 1));
  EXPECT_FALSE(ct.peek(e.original, kT0 + 12 * kS));
}

// The client reusing its port after close: a bare SYN reopens the tuple as SYN_SENT, same backend.
TEST_F(ConntrackTest, SynReopensClosedTuple) {
  Conntrack ct = make(16);
  const ConntrackEntry& e = add(ct, webFlow(), kT0);
  packet(ct, e.reply, kTcpFlagSyn | kTcpFlagAck, kT0);
  packet(ct, e.original, kTcpFlagFin, kT0);
  packet(ct, e.reply, kTcpFlagFin, kT0);
  ASSERT_EQ(e.state, ConntrackState::kTcpTimeWait);
  // A SYN from the backend's side is not a reopen.
  EXPECT_EQ(packet(ct, e.reply, kTcpFlagSyn, kT0 + kS), ConntrackState::kTcpTimeWait);
  EXPECT_EQ(packet(ct, e.original, kTcpFlagSyn, kT0 + 2 * kS), ConntrackState::kTcpSynSent);
  EXPECT_FALSE(e.seenReply);
  EXPECT_EQ(e.tcpFinSeen, 0);
  EXPECT_EQ(e.backendId, 7u);
  EXPECT_EQ(packet(ct, e.reply, kTcpFlagSyn | kTcpFlagAck, kT0 + 3 * kS),
            ConntrackState::kTcpEstablished);
}

// Picked up mid-stream (first packet a plain ACK): established, but 120 s until the backend answers.
TEST_F(ConntrackTest, MidStreamPickupNeedsReplyForEstablishedTimeout) {
  Conntrack ct = make(16);
  const ConntrackEntry& e = add(ct, webFlow(), kT0, kTcpFlagAck);
  EXPECT_EQ(e.state, ConntrackState::kTcpEstablished);
  EXPECT_EQ(ct.expiresAtNs(e), kT0 + 120 * kS);
  packet(ct, e.reply, kTcpFlagAck, kT0 + kS);
  EXPECT_EQ(ct.expiresAtNs(e), kT0 + kS + 86'400 * kS);
}

// A first packet carrying RST or FIN starts in the matching closing state.
TEST_F(ConntrackTest, FirstPacketRstOrFinStartsClosing) {
  Conntrack ct = make(16);
  EXPECT_EQ(add(ct, webFlow(1), kT0, kTcpFlagRst | kTcpFlagAck).state, ConntrackState::kTcpClose);
  EXPECT_EQ(add(ct, webFlow(2), kT0, kTcpFlagFin | kTcpFlagAck).state,
            ConntrackState::kTcpFinWait);
}

// --- other protocols ------------------------------------------------------

// UDP one-way lives 30 s; once the backend answers, 120 s (Linux udp_timeout / udp_timeout_stream).
TEST_F(ConntrackTest, UdpUnrepliedVersusReplied) {
  Conntrack ct = make(16);
  const ConntrackEntry& a = add(ct, webFlow(1, 7, Protocol::kUdp), kT0, 0);
  const ConntrackEntry& b = add(ct, webFlow(2, 7, Protocol::kUdp), kT0, 0);
  EXPECT_EQ(a.state, ConntrackState::kUdpUnreplied);
  EXPECT_EQ(packet(ct, a.original, 0, kT0 + kS), ConntrackState::kUdpUnreplied);
  EXPECT_EQ(packet(ct, b.reply, 0, kT0 + kS), ConntrackState::kUdpReplied);
  // Further client datagrams do not demote a replied flow.
  EXPECT_EQ(packet(ct, b.original, 0, kT0 + kS), ConntrackState::kUdpReplied);

  EXPECT_TRUE(ct.peek(webFlow(1, 7, Protocol::kUdp).original, kT0 + 31 * kS - 1));
  EXPECT_FALSE(ct.peek(webFlow(1, 7, Protocol::kUdp).original, kT0 + 31 * kS));
  EXPECT_TRUE(ct.peek(webFlow(2, 7, Protocol::kUdp).original, kT0 + 121 * kS - 1));
  EXPECT_FALSE(ct.peek(webFlow(2, 7, Protocol::kUdp).original, kT0 + 121 * kS));
}

// ICMP echo (identifier in the port fields) lives 30 s whether answered or not.
TEST_F(ConntrackTest, IcmpEchoExpiresAt30s) {
  Conntrack ct = make(16);
  ConntrackFlow ping;
  ping.original = tuple("fd00::1", 0x1234, "fd00:96::a", 0x1234, Protocol::kIcmpV6);
  ping.nat.backend = {ip("fd00:244::5"), 0x1234};
  const ConntrackEntry& e = add(ct, ping, kT0, 0);
  EXPECT_EQ(e.state, ConntrackState::kIcmp);
  EXPECT_EQ(packet(ct, e.reply, 0, kT0), ConntrackState::kIcmp);
  EXPECT_TRUE(e.seenReply);
  EXPECT_TRUE(ct.peek(ping.original, kT0 + 30 * kS - 1));
  EXPECT_FALSE(ct.peek(ping.original, kT0 + 30 * kS));
}

// SCTP has no state machine here: the generic 600 s applies.
TEST_F(ConntrackTest, OtherProtocolsUseGenericTimeout) {
  Conntrack ct = make(16);
  const ConntrackEntry& e = add(ct, webFlow(1, 7, Protocol::kSctp), kT0, 0);
  EXPECT_EQ(e.state, ConntrackState::kOther);
  EXPECT_EQ(ct.expiresAtNs(e), kT0 + 600 * kS);
}

// Timeouts from the config replace the defaults.
TEST_F(ConntrackTest, ConfiguredTimeoutsApply) {
  ConntrackTimeouts t;
  t.tcpSynSentNs = 5 * kS;
  t.udpUnrepliedNs = 2 * kS;
  Conntrack ct = make(16, t);
  EXPECT_EQ(ct.expiresAtNs(add(ct, webFlow(1), kT0)), kT0 + 5 * kS);
  EXPECT_EQ(ct.expiresAtNs(add(ct, webFlow(2, 7, Protocol::kUdp), kT0, 0)), kT0 + 2 * kS);
}

// A packet stamped earlier than the last one (skewed caller clock) never shortens an entry's life.
TEST_F(ConntrackTest, UpdateNeverMovesLastSeenBackwards) {
  Conntrack ct = make(16);
  const ConntrackEntry& e = add(ct, webFlow(), kT0 + 10 * kS);
  ct.update(ct.lookup(e.original, kT0), kTcpFlagAck, 60, kT0);
  EXPECT_EQ(e.lastSeenNs, kT0 + 10 * kS);
}

// --- removal ---------------------------------------------------------------

// Removing a backend drops exactly its flows, both tuples of each, and nothing else.
TEST_F(ConntrackTest, EraseByBackendRemovesOnlyThatBackendsFlows) {
  Conntrack ct = make(64);
  for (uint16_t port = 1; port <= 30; ++port) add(ct, webFlow(port, port % 3), kT0);
  const FlowTuple someReply = ct.peek(webFlow(3, 0).original, kT0).entry->reply;

  EXPECT_EQ(ct.eraseByBackend(0), 10u);
  EXPECT_EQ(ct.size(), 20u);
  EXPECT_FALSE(ct.peek(someReply, kT0));
  for (uint16_t port = 1; port <= 30; ++port) {
    EXPECT_EQ(static_cast<bool>(ct.peek(webFlow(port).original, kT0)), port % 3 != 0) << port;
  }
  EXPECT_EQ(ct.eraseByBackend(0), 0u);
  EXPECT_EQ(ct.eraseByBackend(99), 0u);
  EXPECT_EQ(ct.stats().erased, 10u);
}

// erase() by either tuple removes the whole entry and frees its slot for reuse.
TEST_F(ConntrackTest, EraseByEitherTupleRemovesEntry) {
  Conntrack ct = make(1);
  const FlowTuple reply = add(ct, webFlow(1), kT0).reply;
  EXPECT_TRUE(ct.erase(reply));
  EXPECT_FALSE(ct.erase(reply));
  EXPECT_FALSE(ct.peek(webFlow(1).original, kT0));
  add(ct, webFlow(2), kT0);
  EXPECT_EQ(ct.stats().evictions, 0u);
}

// expire() visits at most maxToScan pool slots per call, resumes where it stopped, and covers all.
TEST_F(ConntrackTest, ExpireSweepIsBoundedAndResumes) {
  Conntrack ct = make(100);
  for (uint16_t port = 1; port <= 100; ++port) {
    // Odd ports UDP (30 s), even ports TCP SYN (120 s).
    add(ct, webFlow(port, 7, port % 2 ? Protocol::kUdp : Protocol::kTcp), kT0,
        port % 2 ? 0 : kTcpFlagSyn);
  }
  const uint64_t now = kT0 + 60 * kS;  // the 50 UDP entries are expired
  EXPECT_EQ(ct.expire(now, 10), 5u);  // pool slots 0-9: ports 1-10
  EXPECT_EQ(ct.size(), 95u);
  EXPECT_EQ(ct.expire(now, 10), 5u);  // slots 10-19
  EXPECT_EQ(ct.expire(now, 80), 40u);  // the rest
  EXPECT_EQ(ct.expire(now, 1000), 0u);
  EXPECT_EQ(ct.size(), 50u);
  EXPECT_EQ(ct.stats().expirations, 50u);
  EXPECT_EQ(ct.expire(kT0 + 120 * kS, 1000), 50u);  // scan clamped to one pass
  EXPECT_EQ(ct.size(), 0u);
}

// A sweep with nothing expired removes nothing and scanning zero slots is a no-op.
TEST_F(ConntrackTest, ExpireKeepsLiveEntries) {
  Conntrack ct = make(8);
  add(ct, webFlow(1), kT0);
  EXPECT_EQ(ct.expire(kT0 + kS, 0), 0u);
  EXPECT_EQ(ct.expire(kT0 + kS, 8), 0u);
  EXPECT_EQ(ct.size(), 1u);
}

// --- introspection ---------------------------------------------------------

// forEach lists live entries newest first (a lookup moves nothing) and
// skips expired ones.
TEST_F(ConntrackTest, ForEachListsLiveEntriesNewestFirst) {
  Conntrack ct = make(8);
  add(ct, webFlow(1, 7, Protocol::kUdp), kT0, 0);  // expires at kT0 + 30 s
  add(ct, webFlow(2), kT0);
  add(ct, webFlow(3), kT0);
  ct.lookup(webFlow(2).original, kT0);
  EXPECT_EQ(clientPorts(ct, kT0 + 40 * kS), (std::vector<uint16_t>{3, 2}));
  EXPECT_EQ(toString(ConntrackState::kTcpEstablished), "ESTABLISHED");
}

// Memory is all allocated up front: about 176 B per entry at 1M capacity, independent of use.
TEST_F(ConntrackTest, MemoryIsFixedAtCreate) {
  Conntrack ct = make(1024);
  const size_t before = ct.memoryBytes();
  EXPECT_GE(before, 1024 * sizeof(ConntrackEntry));
  EXPECT_LE(before / 1024, 200u);
  for (uint16_t port = 1; port <= 2000; ++port) add(ct, webFlow(port), kT0);
  EXPECT_EQ(ct.memoryBytes(), before);
  EXPECT_EQ(ct.size(), 1024u);
}

// Heavy churn in a small, crowded index loses no entry.
TEST_F(ConntrackTest, IndexSurvivesChurn) {
  Conntrack ct = make(97);
  std::mt19937 rng(7);
  for (int i = 0; i < 50'000; ++i) {
    const auto port = static_cast<uint16_t>(1 + rng() % 400);
    if (ct.peek(webFlow(port).original, kT0)) {
      ASSERT_TRUE(ct.erase(rng() % 2 ? webFlow(port).original : ct.peek(webFlow(port).original,
                                                                       kT0).entry->reply));
    } else {
      ct.insert(webFlow(port), kTcpFlagSyn, 60, kT0);
    }
  }
  size_t found = 0;
  for (uint16_t port = 1; port <= 400; ++port) {
    auto m = ct.peek(webFlow(port).original, kT0);
    if (!m) continue;
    ++found;
    auto r = ct.peek(m.entry->reply, kT0);
    ASSERT_TRUE(r);
    EXPECT_EQ(r.entry, m.entry);
  }
  EXPECT_EQ(found, ct.size());
}

// Tuples crowded into one pair of index buckets (two-choice buckets of 8):
// past 16 refs no resident can move, and the index evicts an entry of the
// crowded bucket, counted as an eviction, while the table is far from full.
// Everything still tracked is found in both directions; the evicted flow in
// neither.
TEST_F(ConntrackTest, CrowdedBucketPairEvictsAndKeepsTheRestFindable) {
  constexpr uint32_t kCapacity = 100;
  Conntrack ct = make(kCapacity);
  auto bucketSet = [&](const FlowTuple& t) {
    auto b = Conntrack::indexBuckets(t, kCapacity);
    if (b[0] > b[1]) std::swap(b[0], b[1]);
    return b;
  };
  const auto crowded = bucketSet(webFlow(1).original);
  ASSERT_NE(crowded[0], crowded[1]);
  std::vector<ConntrackFlow> flows;
  for (uint32_t i = 0; flows.size() < 40 && i < 4'000'000; ++i) {
    ConntrackFlow f = webFlow(static_cast<uint16_t>(1 + i % 60000));
    f.original.src = IpAddress::v4FromHost(0x0a000000u + i / 60000);
    if (bucketSet(f.original) == crowded) flows.push_back(f);
  }
  ASSERT_EQ(flows.size(), 40u) << "not enough tuples for one bucket pair";

  size_t inserted = 0;
  for (const ConntrackFlow& f : flows) {
    ASSERT_EQ(ct.insert(f, kTcpFlagSyn, 60, kT0).status, ConntrackInsertStatus::kInserted);
    ++inserted;
    if (ct.stats().evictions > 0) break;
  }
  const ConntrackStats st = ct.stats();
  ASSERT_EQ(st.evictions, 1u) << "16 slots held " << inserted << " crowded tuples";
  EXPECT_GE(inserted, 9u);  // at least 17 refs in the pair before one overflowed
  EXPECT_LT(ct.size(), size_t{kCapacity});
  EXPECT_EQ(ct.size(), inserted - 1);
  size_t absent = 0;
  for (size_t i = 0; i < inserted; ++i) {
    auto m = ct.peek(flows[i].original, kT0);
    if (!m) {
      ++absent;
      EXPECT_FALSE(ct.peek(expectedReply(flows[i]), kT0)) << "reply of evicted flow " << i;
      continue;
    }
    auto r = ct.peek(expectedReply(flows[i]), kT0);
    ASSERT_TRUE(r) << "flow " << i;
    EXPECT_EQ(r.entry, m.entry);
  }
  EXPECT_EQ(absent, 1u);
  EXPECT_EQ(ct.indexFault(), "");
  // The newest flow is never the one evicted for its own room.
  EXPECT_TRUE(ct.peek(flows[inserted - 1].original, kT0));
}

}  // namespace
}  // namespace sluice
