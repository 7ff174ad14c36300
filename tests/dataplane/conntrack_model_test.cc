// Conntrack against a reference model: random operation sequences on both,
// compared after every step.
#include <gtest/gtest.h>

#include <algorithm>
#include <list>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "dataplane/conntrack.h"
#include "tests/dataplane/conntrack_fixture.h"

namespace sluice {
namespace {

using namespace conntrack_testing;  // NOLINT

// --- randomized, against a reference model ----------------------------------

// The model: a std::map index over an explicit std::list evicted by second
// chance (conntrack.h: entries join the front when inserted, a use sets a
// flag, an eviction moves up to Conntrack::kMaxSecondChances flagged
// entries from the back to the front, clearing their flags, then takes the
// back), UDP-only state (30 s unreplied, 120 s replied), written without
// any of Conntrack's code.
class ReferenceModel {
 public:
  struct Entry {
    FlowTuple original;
    FlowTuple reply;
    uint32_t backendId;
    uint64_t lastSeen;
    bool replied = false;
    std::array<uint64_t, 2> packets{};
    bool used = false;
  };
  using Lru = std::list<Entry>;  // front: the newest

  explicit ReferenceModel(size_t capacity) : capacity_(capacity) {}

  using Key = std::tuple<IpAddress, IpAddress, uint16_t, uint16_t, Protocol>;
  static Key key(const FlowTuple& t) { return {t.src, t.dst, t.srcPort, t.dstPort, t.protocol}; }
  static FlowTuple replyOf(const ConntrackFlow& f) { return expectedReply(f); }
  static bool expired(const Entry& e, uint64_t now) {
    return now - e.lastSeen >= (e.replied ? 120 : 30) * kS;
  }

  // Returns (status, entry, direction).
  std::tuple<ConntrackInsertStatus, const Entry*, ConntrackDirection> insert(
      const ConntrackFlow& f, uint64_t now) {
    const FlowTuple reply = replyOf(f);
    if (reply == f.original) return {ConntrackInsertStatus::kReplyCollision, nullptr, {}};
    if (auto it = index_.find(key(f.original)); it != index_.end()) {
      auto [entry, dir] = it->second;
      if (!expired(*entry, now)) {
        touch(entry);
        return {ConntrackInsertStatus::kExists, &*entry, dir};
      }
      remove(entry);
      ++expirations;
    }
    if (auto it = index_.find(key(reply)); it != index_.end()) {
      if (!expired(*it->second.first, now)) {
        return {ConntrackInsertStatus::kReplyCollision, nullptr, {}};
      }
      remove(it->second.first);
      ++expirations;
    }
    if (lru_.size() == capacity_) {
      uint32_t chances = 0;
      for (; chances < Conntrack::kMaxSecondChances; ++chances) {
        Entry& back = lru_.back();
        if (!back.used || expired(back, now)) break;
        back.used = false;
        lru_.splice(lru_.begin(), lru_, std::prev(lru_.end()));
      }
      if (chances == Conntrack::kMaxSecondChances && lru_.back().used) ++usedVictims;
      ++(expired(lru_.back(), now) ? expirations : evictions);
      remove(std::prev(lru_.end()));
    }
    lru_.push_front({f.original, reply, f.backendId, now, false, {1, 0}, false});
    index_[key(f.original)] = {lru_.begin(), ConntrackDirection::kOriginal};
    index_[key(reply)] = {lru_.begin(), ConntrackDirection::kReply};
    return {ConntrackInsertStatus::kInserted, &lru_.front(), ConntrackDirection::kOriginal};
  }

  std::pair<Entry*, ConntrackDirection> lookup(const FlowTuple& t, uint64_t now) {
    auto it = index_.find(key(t));
    if (it == index_.end()) return {nullptr, {}};
    auto [entry, dir] = it->second;
    if (expired(*entry, now)) {
      remove(entry);
      ++expirations;
      return {nullptr, {}};
    }
    touch(entry);
    return {&*entry, dir};
  }

  static void update(Entry& e, ConntrackDirection dir, uint64_t now) {
    e.lastSeen = std::max(e.lastSeen, now);
    if (dir == ConntrackDirection::kReply) e.replied = true;
    ++e.packets[static_cast<size_t>(dir)];
  }

  bool erase(const FlowTuple& t) {
    auto it = index_.find(key(t));
    if (it == index_.end()) return false;
    remove(it->second.first);
    return true;
  }

  size_t eraseByBackend(uint32_t backendId) {
    return eraseIf([&](const Entry& e) { return e.backendId == backendId; });
  }

  size_t expireAll(uint64_t now) {
    size_t n = eraseIf([&](const Entry& e) { return expired(e, now); });
    expirations += n;
    return n;
  }

  const Lru& lru() const { return lru_; }
  uint64_t evictions = 0;
  uint64_t expirations = 0;
  uint64_t usedVictims = 0;  // evictions that ran out of second chances

 private:
  static void touch(Lru::iterator it) { it->used = true; }
  void remove(Lru::iterator it) {
    index_.erase(key(it->original));
    index_.erase(key(it->reply));
    lru_.erase(it);
  }
  template <typename Pred>
  size_t eraseIf(Pred pred) {
    size_t n = 0;
    for (auto it = lru_.begin(); it != lru_.end();) {
      auto next = std::next(it);
      if (pred(*it)) {
        remove(it);
        ++n;
      }
      it = next;
    }
    return n;
  }

  size_t capacity_;
  Lru lru_;
  std::map<Key, std::pair<Lru::iterator, ConntrackDirection>> index_;
};

// 30,000 mixed inserts, lookups (both directions), updates, erases, backend
// removals, sweeps and clock jumps over a crowded v4+v6 tuple space agree
// with the model on every result, on the stats and on the list order.
TEST_F(ConntrackTest, RandomOpsMatchReferenceModel) {
  constexpr uint32_t kCapacity = 24;
  Conntrack ct = make(kCapacity);
  ReferenceModel model(kCapacity);
  std::mt19937_64 rng(20240601);
  auto pick = [&](uint64_t n) { return rng() % n; };

  // Six clients x six ports per family; two frontends; four backends; SNAT to
  // one node address with eight ports so reply tuples collide now and then.
  auto addr = [](bool v6, std::string_view v4Prefix, std::string_view v6Prefix, uint64_t i) {
    return ip((v6 ? std::string(v6Prefix) : std::string(v4Prefix)) + std::to_string(i));
  };
  auto randomFlow = [&] {
    const bool v6 = pick(2);
    ConntrackFlow f;
    f.original.src = addr(v6, "10.0.0.", "fd00::", 1 + pick(6));
    f.original.srcPort = static_cast<uint16_t>(1000 + pick(6));
    f.original.dst = addr(v6, "10.96.0.", "fd00:96::", 1 + pick(2));
    f.original.dstPort = 53;
    f.original.protocol = Protocol::kUdp;
    f.backendId = static_cast<uint32_t>(pick(4));
    f.nat.backend = {addr(v6, "10.244.0.", "fd00:244::", 1 + f.backendId), 5353};
    if (pick(3) == 0) {
      f.nat.snat = NatEndpoint{addr(v6, "192.168.0.", "fd00:ff::", 1),
                               static_cast<uint16_t>(1000 + pick(8))};
    }
    return f;
  };
  // Half the time a tuple of a tracked flow, so lookups and erases mostly hit.
  auto randomTuple = [&] {
    const auto& lru = model.lru();
    if (!lru.empty() && pick(2)) {
      const auto& e = *std::next(lru.begin(), static_cast<ptrdiff_t>(pick(lru.size())));
      return pick(2) ? e.original : e.reply;
    }
    ConntrackFlow f = randomFlow();
    return pick(2) ? f.original : ReferenceModel::replyOf(f);
  };
  auto sameEntry = [](const ConntrackEntry* e, const ReferenceModel::Entry* m) {
    return e->original == m->original && e->reply == m->reply && e->backendId == m->backendId &&
           e->lastSeenNs == m->lastSeen && e->seenReply == m->replied &&
           e->packets == m->packets;
  };

  uint64_t now = kT0;
  uint64_t erased = 0;
  for (int op = 0; op < 30'000; ++op) {
    SCOPED_TRACE("op " + std::to_string(op));
    now += pick(kS / 2);
    const uint64_t kind = pick(1000);
    if (kind < 450) {
      const ConntrackFlow f = randomFlow();
      auto got = ct.insert(f, 0, 60, now);
      auto [status, entry, dir] = model.insert(f, now);
      ASSERT_EQ(got.status, status);
      ASSERT_EQ(static_cast<bool>(got.match()), entry != nullptr);
      if (entry) {
        ASSERT_TRUE(sameEntry(got.match().entry, entry));
        ASSERT_EQ(got.match().direction, dir);
      }
    } else if (kind < 900) {
      const FlowTuple t = randomTuple();
      auto got = ct.lookup(t, now);
      auto [entry, dir] = model.lookup(t, now);
      ASSERT_EQ(static_cast<bool>(got), entry != nullptr);
      if (entry) {
        ASSERT_TRUE(sameEntry(got.entry, entry));
        ASSERT_EQ(got.direction, dir);
        if (pick(4) != 0) {
          ct.update(got, 0, 100, now);
          ReferenceModel::update(*entry, dir, now);
          ASSERT_TRUE(sameEntry(got.entry, entry));
        }
      }
    } else if (kind < 960) {
      const FlowTuple t = randomTuple();
      const bool got = ct.erase(t);
      ASSERT_EQ(got, model.erase(t));
      erased += got;
    } else if (kind < 965) {
      const auto backendId = static_cast<uint32_t>(pick(4));
      const size_t got = ct.eraseByBackend(backendId);
      ASSERT_EQ(got, model.eraseByBackend(backendId));
      erased += got;
    } else if (kind < 985) {
      ASSERT_EQ(ct.expire(now, kCapacity), model.expireAll(now));
    } else {
      now += pick(150) * kS;  // a quiet period long enough to expire things
    }

    ASSERT_EQ(ct.indexFault(), "");
    const ConntrackStats s = ct.stats();
    ASSERT_EQ(s.entries, model.lru().size());
    ASSERT_EQ(s.evictions, model.evictions);
    ASSERT_EQ(s.expirations, model.expirations);
    ASSERT_EQ(s.erased, erased);
    if (op % 50 == 0) {
      std::vector<FlowTuple> got;
      ct.forEach(now, [&](const ConntrackEntry& e) { got.push_back(e.original); });
      std::vector<FlowTuple> want;
      for (const auto& e : model.lru()) {
        if (!ReferenceModel::expired(e, now)) want.push_back(e.original);
      }
      ASSERT_EQ(got, want);
    }
  }
  // The run must have exercised every path, or it proves little.
  const ConntrackStats s = ct.stats();
  EXPECT_GT(s.inserts, 1000u);
  EXPECT_GT(s.insertExisting, 100u);
  EXPECT_GT(s.insertCollisions, 100u);
  EXPECT_GT(s.evictions, 100u);
  EXPECT_GT(model.usedVictims, 10u);
  EXPECT_GT(s.expirations, 100u);
  EXPECT_GT(s.lookupHits, 1000u);
  EXPECT_GT(erased, 100u);
}

}  // namespace
}  // namespace sluice
