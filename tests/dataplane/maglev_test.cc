#include "dataplane/maglev.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace sluice {
namespace {

class MaglevTest : public ::testing::Test {
 protected:
  // "10.0.<i/256>.<i%256>:8080", the shape of keys the service layer passes.
  static std::string keyOf(uint32_t i) {
    return "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ":8080";
  }

  static std::vector<MaglevBackend> makeBackends(uint32_t n, uint32_t weight = 1) {
    std::vector<MaglevBackend> backends;
    for (uint32_t i = 0; i < n; ++i) {
      backends.push_back({keyOf(i), weight});
    }
    return backends;
  }

  static MaglevBuilder builderOf(uint32_t tableSize, uint64_t seed = 0) {
    Result<MaglevBuilder> builder = MaglevBuilder::create(tableSize, seed);
    EXPECT_TRUE(builder.ok()) << builder.error().message;
    return std::move(builder).value();
  }

  static MaglevTable buildOrDie(const MaglevBuilder& builder,
                                const std::vector<MaglevBackend>& backends) {
    Result<MaglevTable> table = builder.build(backends);
    EXPECT_TRUE(table.ok()) << table.error().message;
    return std::move(table).value();
  }

  // Slots owned by each backend index; slots()[s] == kNoBackend counts nowhere.
  static std::vector<uint32_t> ownerCounts(const MaglevTable& table, size_t backends) {
    std::vector<uint32_t> counts(backends, 0);
    for (uint32_t backend : table.slots()) {
      if (backend != MaglevTable::kNoBackend) {
        ++counts.at(backend);
      }
    }
    return counts;
  }

  // The slots whose owning key differs, computed independently of
  // changedSlots() by comparing keys slot by slot.
  static std::vector<uint32_t> diffByKey(const MaglevTable& before, const MaglevTable& after) {
    std::vector<uint32_t> changed;
    for (uint32_t s = 0; s < before.size(); ++s) {
      const std::string* was = before.keyAt(s);
      const std::string* now = after.keyAt(s);
      bool same =
          (was == nullptr && now == nullptr) || (was != nullptr && now != nullptr && *was == *now);
      if (!same) {
        changed.push_back(s);
      }
    }
    return changed;
  }

  // Runs SLUICE_MAGLEV_DUMP in a fresh process; returns its stdout line and
  // fails the test on a non-zero exit.
  static std::string runDump(const std::string& args) {
    const char* dump = std::getenv("SLUICE_MAGLEV_DUMP");
    std::string command = std::string("'") + dump + "' " + args;
    FILE* pipe = popen(command.c_str(), "r");
    EXPECT_NE(pipe, nullptr) << command;
    if (pipe == nullptr) {
      return "";
    }
    char line[64] = {};
    std::string out = std::fgets(line, sizeof(line), pipe) != nullptr ? line : "";
    int status = pclose(pipe);
    EXPECT_EQ(status, 0) << command;
    if (!out.empty() && out.back() == '\n') {
      out.pop_back();
    }
    return out;
  }

  static std::string hex(uint64_t v) {
    char buf[17];
    std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
    return buf;
  }
};

// Equal weights: every backend owns floor(M/N) or ceil(M/N) slots, none empty.
TEST_F(MaglevTest, UnweightedBackendsOwnFloorOrCeilOfTheSlots) {
  for (uint32_t m : {2u, 7u, 13u, 251u, 65537u}) {
    for (uint32_t n : {1u, 2u, 3u, 7u, 10u, 100u, 1000u}) {
      if (n > m) {
        continue;
      }
      SCOPED_TRACE("M=" + std::to_string(m) + " N=" + std::to_string(n));
      MaglevTable table = buildOrDie(builderOf(m), makeBackends(n));
      ASSERT_EQ(table.size(), m);
      EXPECT_EQ(std::count(table.slots().begin(), table.slots().end(), MaglevTable::kNoBackend), 0);
      for (uint32_t count : ownerCounts(table, n)) {
        EXPECT_GE(count, m / n);
        EXPECT_LE(count, (m + n - 1) / n);
      }
    }
  }
}

// Weight 7 on everyone means the same as weight 1: identical table.
TEST_F(MaglevTest, EqualWeightsOtherThanOneGiveTheUnweightedTable) {
  MaglevBuilder builder = builderOf(65537);
  MaglevTable ones = buildOrDie(builder, makeBackends(100, 1));
  MaglevTable sevens = buildOrDie(builder, makeBackends(100, 7));
  EXPECT_TRUE(std::ranges::equal(ones.slots(), sevens.slots()));
}

// Weights 1:2:3:4 give shares 10/20/30/40% of the table, each within 1% of M.
TEST_F(MaglevTest, WeightedSharesFollowWeightsWithinOnePercent) {
  std::vector<MaglevBackend> backends = {
      {"10.0.0.1:80", 1}, {"10.0.0.2:80", 2}, {"10.0.0.3:80", 3}, {"10.0.0.4:80", 4}};
  for (uint32_t m : {409u, 65537u}) {  // both >= 100 * N
    SCOPED_TRACE("M=" + std::to_string(m));
    MaglevTable table = buildOrDie(builderOf(m), backends);
    std::vector<uint32_t> counts = ownerCounts(table, backends.size());
    for (size_t i = 0; i < backends.size(); ++i) {
      double expected = m * backends[i].weight / 10.0;
      EXPECT_NEAR(counts[i], expected, 0.01 * m) << backends[i].key;
    }
  }
}

// Random weights (fixed RNG seed), small and uint16-wide: shares within 1% of M.
TEST_F(MaglevTest, RandomWeightsFollowWeightsWithinOnePercent) {
  struct Case {
    uint32_t m;
    uint32_t n;
    uint32_t maxWeight;
  };
  std::mt19937 rng(42);  // std::mt19937 is fully specified: same weights everywhere
  for (Case c : {Case{65537, 100, 100}, Case{65537, 300, 65535}, Case{655373, 1000, 1000}}) {
    SCOPED_TRACE("M=" + std::to_string(c.m) + " N=" + std::to_string(c.n));
    std::uniform_int_distribution<uint32_t> weightDist(1, c.maxWeight);
    std::vector<MaglevBackend> backends = makeBackends(c.n);
    double sum = 0;
    for (MaglevBackend& backend : backends) {
      backend.weight = weightDist(rng);
      sum += backend.weight;
    }
    MaglevTable table = buildOrDie(builderOf(c.m), backends);
    std::vector<uint32_t> counts = ownerCounts(table, c.n);
    double worst = 0;
    for (uint32_t i = 0; i < c.n; ++i) {
      double expected = c.m * backends[i].weight / sum;
      worst = std::max(worst, std::abs(counts[i] - expected));
      EXPECT_NEAR(counts[i], expected, 0.01 * c.m) << backends[i].key;
    }
    std::printf("M=%u N=%u weights 1..%u: worst share error %.1f slots (%.4f%% of M)\n", c.m, c.n,
                c.maxWeight, worst, 100 * worst / c.m);
  }
}

// One heavy backend among many light ones: each share stays within the
// documented 1 + N * w_i / sum(w) slots, even where that exceeds 1% (M < 100 N).
TEST_F(MaglevTest, SkewedWeightsStayWithinTheDocumentedBound) {
  const uint32_t m = 65537;
  std::vector<MaglevBackend> backends = makeBackends(1000, 1);
  backends[0].weight = 65535;
  double sum = 65535 + 999;
  MaglevTable table = buildOrDie(builderOf(m), backends);
  std::vector<uint32_t> counts = ownerCounts(table, backends.size());
  for (size_t i = 0; i < backends.size(); ++i) {
    double share = backends[i].weight / sum;
    EXPECT_NEAR(counts[i], m * share, 1 + backends.size() * share) << backends[i].key;
  }
}

// Weights up to UINT32_MAX neither overflow the schedule nor break shares.
TEST_F(MaglevTest, ExtremeWeightsDoNotOverflow) {
  const uint32_t m = 65537;
  std::vector<MaglevBackend> backends = {{"a:1", 4294967295u}, {"b:1", 2147483648u}, {"c:1", 1}};
  double sum = 4294967295.0 + 2147483648.0 + 1;
  MaglevTable table = buildOrDie(builderOf(m), backends);
  std::vector<uint32_t> counts = ownerCounts(table, backends.size());
  for (size_t i = 0; i < backends.size(); ++i) {
    double share = backends[i].weight / sum;
    EXPECT_NEAR(counts[i], m * share, 1 + backends.size() * share) << backends[i].key;
  }
}

// Zero backends (a Service whose endpoints all went away): every slot is
// kNoBackend, and lookups return it rather than dividing by zero.
TEST_F(MaglevTest, ZeroBackendsGiveATableOfNoBackend) {
  MaglevTable table = buildOrDie(builderOf(251), {});
  ASSERT_EQ(table.size(), 251u);
  EXPECT_TRUE(
      std::ranges::all_of(table.slots(), [](uint32_t b) { return b == MaglevTable::kNoBackend; }));
  EXPECT_EQ(table.backendFor(12345), MaglevTable::kNoBackend);
  EXPECT_EQ(table.keyAt(0), nullptr);
}

// A lookup is slots()[hash % M], including for hashes above 2^32.
TEST_F(MaglevTest, LookupIsTheSlotAtHashModuloTableSize) {
  MaglevTable table = buildOrDie(builderOf(65537), makeBackends(10));
  for (uint64_t hash : {0ull, 1ull, 65536ull, 65537ull, 0xdeadbeefcafef00dull, ~0ull}) {
    EXPECT_EQ(table.backendFor(hash), table.slots()[hash % 65537]) << hash;
  }
  EXPECT_GE(table.memoryBytes(), 65537 * sizeof(uint32_t));
}

// The same backend set in another order (as a watch may deliver it) puts
// every slot on the same key.
TEST_F(MaglevTest, ReorderingBackendsKeepsEverySlotOnTheSameKey) {
  MaglevBuilder builder = builderOf(65537);
  std::vector<MaglevBackend> backends = makeBackends(100);
  backends[17].weight = 3;
  MaglevTable before = buildOrDie(builder, backends);
  std::mt19937 rng(7);
  std::shuffle(backends.begin(), backends.end(), rng);
  MaglevTable after = buildOrDie(builder, backends);
  EXPECT_TRUE(diffByKey(before, after).empty());
  Result<MaglevUpdate> update = builder.rebuild(before, backends);
  ASSERT_TRUE(update.ok()) << update.error().message;
  EXPECT_TRUE(update->changedSlots.empty());
}

// Disruption cases for removal and addition, with the bound each must meet.
// Maglev (NSDI 2016, section 3.4) proves no bound; the paper measures, and
// the rule of thumb is M >= 100 N for ~1% of other slots moving. Measured
// here over 5 seeds x 10 victims, worst case: M=65537 moves <= 0.67% for
// N=10, 100 and 1000 (N=1000 is only M = 65 N), M=655373 N=1000 0.34%.
// But the rule does not hold for small tables: at M = 100 N the worst case
// is 3.7% for M=1009 N=10, 1.9% for M=10007 N=100, 0.62% for M=100003
// N=1000. Disruption shrinks with M itself (about M^-0.6 at N=10), not with
// M/N, so those cases assert the measured figure plus margin, not 1%.
struct DisruptionCase {
  uint32_t m;
  uint32_t n;
  double maxOthersMoved;  // fraction of other backends' slots
};
constexpr DisruptionCase kDisruptionCases[] = {
    {65537, 10, 0.01},    {65537, 100, 0.01}, {65537, 1000, 0.01}, {655373, 1000, 0.01},
    {100003, 1000, 0.01}, {10007, 100, 0.03}, {1009, 10, 0.05},
};

// Removing one of N backends: all of its slots move, and only a small
// fraction of the other backends' slots (bounds above).
TEST_F(MaglevTest, RemovingOneBackendMovesItsSlotsAndAboutOnePercentOfOthers) {
  for (DisruptionCase c : kDisruptionCases) {
    SCOPED_TRACE("M=" + std::to_string(c.m) + " N=" + std::to_string(c.n));
    MaglevBuilder builder = builderOf(c.m);
    std::vector<MaglevBackend> all = makeBackends(c.n);
    MaglevTable before = buildOrDie(builder, all);
    double worst = 0;
    double sum = 0;
    const uint32_t trials = std::min(c.n, 10u);
    for (uint32_t t = 0; t < trials; ++t) {
      uint32_t victim = t * (c.n / trials);  // spread over key order
      std::vector<MaglevBackend> rest = all;
      rest.erase(rest.begin() + victim);
      Result<MaglevUpdate> update = builder.rebuild(before, rest);
      ASSERT_TRUE(update.ok()) << update.error().message;
      uint32_t victimSlots = 0;
      uint32_t othersMoved = 0;
      for (uint32_t s = 0; s < c.m; ++s) {
        if (before.slots()[s] == victim) {
          ++victimSlots;
          EXPECT_NE(update->table.keyAt(s), nullptr);
        } else if (*before.keyAt(s) != *update->table.keyAt(s)) {
          ++othersMoved;
        }
      }
      // Every victim slot changed, plus the moved others, and nothing else.
      EXPECT_EQ(update->changedSlots.size(), victimSlots + othersMoved);
      double fraction = static_cast<double>(othersMoved) / (c.m - victimSlots);
      worst = std::max(worst, fraction);
      sum += fraction;
    }
    std::printf("remove 1 of N=%u at M=%u: other slots moved mean %.3f%% worst %.3f%%\n", c.n, c.m,
                100 * sum / trials, 100 * worst);
    RecordProperty("remove_M" + std::to_string(c.m) + "_N" + std::to_string(c.n) + "_worst_pct",
                   std::to_string(100 * worst));
    EXPECT_LE(worst, c.maxOthersMoved);
  }
}

// Adding one backend to N: it takes floor/ceil of M/(N+1) slots, and only a
// small fraction of the other slots change between existing backends (same
// bounds as removal, which this mirrors).
TEST_F(MaglevTest, AddingOneBackendTakesItsShareAndMovesAboutOnePercentOfOthers) {
  for (DisruptionCase c : kDisruptionCases) {
    SCOPED_TRACE("M=" + std::to_string(c.m) + " N=" + std::to_string(c.n));
    MaglevBuilder builder = builderOf(c.m);
    std::vector<MaglevBackend> backends = makeBackends(c.n);
    MaglevTable before = buildOrDie(builder, backends);
    backends.push_back({"10.99.0.1:8080", 1});
    Result<MaglevUpdate> update = builder.rebuild(before, backends);
    ASSERT_TRUE(update.ok()) << update.error().message;
    uint32_t newcomerSlots = 0;
    uint32_t othersMoved = 0;
    for (uint32_t s = 0; s < c.m; ++s) {
      if (update->table.slots()[s] == c.n) {
        ++newcomerSlots;
      } else if (*before.keyAt(s) != *update->table.keyAt(s)) {
        ++othersMoved;
      }
    }
    EXPECT_GE(newcomerSlots, c.m / (c.n + 1));
    EXPECT_LE(newcomerSlots, (c.m + c.n) / (c.n + 1));
    EXPECT_EQ(update->changedSlots.size(), newcomerSlots + othersMoved);
    double fraction = static_cast<double>(othersMoved) / (c.m - newcomerSlots);
    std::printf("add 1 to N=%u at M=%u: other slots moved %.3f%%\n", c.n, c.m, 100 * fraction);
    RecordProperty("add_M" + std::to_string(c.m) + "_N" + std::to_string(c.n) + "_pct",
                   std::to_string(100 * fraction));
    EXPECT_LE(fraction, c.maxOthersMoved);
  }
}

// A mixed change (remove from the middle so later indices shift, add one,
// reweight one): changedSlots is exactly the slots whose key differs, not
// the slots whose raw index differs.
TEST_F(MaglevTest, RebuildReportsExactlyTheSlotsWhoseBackendKeyChanged) {
  MaglevBuilder builder = builderOf(65537);
  std::vector<MaglevBackend> backends = makeBackends(50);
  MaglevTable before = buildOrDie(builder, backends);
  backends.erase(backends.begin() + 20);
  backends.push_back({"10.1.0.1:9090", 1});
  backends[3].weight = 2;
  Result<MaglevUpdate> update = builder.rebuild(before, backends);
  ASSERT_TRUE(update.ok()) << update.error().message;
  std::vector<uint32_t> expected = diffByKey(before, update->table);
  EXPECT_EQ(update->changedSlots, expected);
  EXPECT_FALSE(expected.empty());
  // Indices above 20 shifted down, so far more slots differ by raw index:
  // those must not be reported.
  uint32_t rawDiffs = 0;
  for (uint32_t s = 0; s < before.size(); ++s) {
    rawDiffs += before.slots()[s] != update->table.slots()[s];
  }
  EXPECT_GT(rawDiffs, expected.size() * 2);
}

// Same backends, same order: nothing to rewrite.
TEST_F(MaglevTest, RebuildWithTheSameBackendsReportsNoSlots) {
  MaglevBuilder builder = builderOf(65537);
  std::vector<MaglevBackend> backends = makeBackends(100);
  Result<MaglevUpdate> update = builder.rebuild(buildOrDie(builder, backends), backends);
  ASSERT_TRUE(update.ok()) << update.error().message;
  EXPECT_TRUE(update->changedSlots.empty());
}

// First backend arrives, then the last one leaves: both rewrite every slot.
TEST_F(MaglevTest, RebuildToOrFromZeroBackendsReportsEverySlot) {
  MaglevBuilder builder = builderOf(251);
  MaglevTable empty = buildOrDie(builder, {});
  Result<MaglevUpdate> up = builder.rebuild(empty, makeBackends(1));
  ASSERT_TRUE(up.ok()) << up.error().message;
  EXPECT_EQ(up->changedSlots.size(), 251u);
  Result<MaglevUpdate> down = builder.rebuild(up->table, {});
  ASSERT_TRUE(down.ok()) << down.error().message;
  EXPECT_EQ(down->changedSlots.size(), 251u);
}

// A table of another size cannot be patched slot by slot.
TEST_F(MaglevTest, RebuildFromATableOfAnotherSizeFails) {
  MaglevTable small = buildOrDie(builderOf(251), makeBackends(3));
  Result<MaglevUpdate> update = builderOf(65537).rebuild(small, makeBackends(3));
  ASSERT_FALSE(update.ok());
  EXPECT_EQ(update.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(update.error().message.find("251"), std::string::npos) << update.error().message;
  EXPECT_FALSE(changedSlots(small, buildOrDie(builderOf(65537), makeBackends(3))).ok());
}

// Fresh processes (other ASLR layout, allocator state) build the same table
// as this one, for built-in and explicit weighted inputs.
TEST_F(MaglevTest, TableIsIdenticalAcrossProcesses) {
  if (std::getenv("SLUICE_MAGLEV_DUMP") == nullptr) {
    GTEST_SKIP() << "SLUICE_MAGLEV_DUMP not set (run via meson test)";
  }
  // The dump's built-in input: 100 backends 10.0.0.<i>:8080, M=65537, seed 0.
  std::vector<MaglevBackend> builtIn;
  for (int i = 0; i < 100; ++i) {
    builtIn.push_back({"10.0.0." + std::to_string(i) + ":8080", 1});
  }
  std::string local = hex(buildOrDie(builderOf(65537), builtIn).digest());
  EXPECT_EQ(runDump(""), local);
  EXPECT_EQ(runDump(""), local);

  std::vector<MaglevBackend> weighted = {
      {"10.0.0.1:80", 1}, {"10.0.0.2:80", 5}, {"[fd00::3]:80", 2}};
  std::string args = "--size=251 --seed=99 10.0.0.1:80=1 10.0.0.2:80=5 '[fd00::3]:80=2'";
  std::string localWeighted = hex(buildOrDie(builderOf(251, 99), weighted).digest());
  EXPECT_EQ(runDump(args), localWeighted);
  EXPECT_EQ(runDump(args), localWeighted);
}

// The seed changes the table, in this process and in others.
TEST_F(MaglevTest, DifferentSeedGivesADifferentTable) {
  std::vector<MaglevBackend> backends = makeBackends(100);
  MaglevTable seed0 = buildOrDie(builderOf(65537, 0), backends);
  MaglevTable seed1 = buildOrDie(builderOf(65537, 1), backends);
  EXPECT_NE(seed0.digest(), seed1.digest());
  EXPECT_GT(diffByKey(seed0, seed1).size(), 65537u / 2);
  if (std::getenv("SLUICE_MAGLEV_DUMP") == nullptr) {
    GTEST_SKIP() << "SLUICE_MAGLEV_DUMP not set (run via meson test)";
  }
  EXPECT_NE(runDump("--seed=0"), runDump("--seed=1"));
}

// Pinned digest: nodes running old and new sluice during a rolling upgrade
// must place flows alike, so any change to hashing, key order or the weight
// schedule must show up here and be made on purpose (with a new seed or a
// migration note), never by accident.
// The second case has weights skewed enough (one 65535 among 999 of
// weight 1) that build() uses its heap schedule; its digest was taken from
// the plain round-scan schedule, so it also pins the two as equivalent.
TEST_F(MaglevTest, TableMatchesThePinnedDigest) {
  std::vector<MaglevBackend> backends = makeBackends(100);
  backends[5].weight = 3;
  EXPECT_EQ(hex(buildOrDie(builderOf(65537, 0), backends).digest()), "4d41af0a1c07b65a");

  std::vector<MaglevBackend> skewed = makeBackends(1000);
  skewed[0].weight = 65535;
  EXPECT_EQ(hex(buildOrDie(builderOf(65537, 0), skewed).digest()), "1a1bf682502b7f52");
}

// Non-prime sizes leave some slots unreachable by some permutations.
TEST_F(MaglevTest, NonPrimeTableSizeIsRejected) {
  Result<MaglevBuilder> builder = MaglevBuilder::create(65536);
  ASSERT_FALSE(builder.ok());
  EXPECT_EQ(builder.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(builder.error().message.find("tableSize: 65536 is not prime"), std::string::npos)
      << builder.error().message;
}

// Sizes 0 and 1, and primes above 2^24, are out of range.
TEST_F(MaglevTest, TableSizeOutOfRangeIsRejected) {
  for (uint32_t size : {0u, 1u, 16777259u /* prime > 2^24 */}) {
    Result<MaglevBuilder> builder = MaglevBuilder::create(size);
    ASSERT_FALSE(builder.ok()) << size;
    EXPECT_NE(builder.error().message.find("tableSize"), std::string::npos)
        << builder.error().message;
  }
  EXPECT_TRUE(MaglevBuilder::create(2).ok());
  EXPECT_TRUE(MaglevBuilder::create(16777213).ok());  // largest prime below 2^24
}

// Weight 0 would own no slots; reject it and name the field and key.
TEST_F(MaglevTest, ZeroWeightIsRejectedNamingTheField) {
  std::vector<MaglevBackend> backends = makeBackends(3);
  backends[1].weight = 0;
  Result<MaglevTable> table = builderOf(251).build(backends);
  ASSERT_FALSE(table.ok());
  EXPECT_EQ(table.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(table.error().message.find("backends[1].weight"), std::string::npos)
      << table.error().message;
  EXPECT_NE(table.error().message.find(keyOf(1)), std::string::npos) << table.error().message;
}

// Two entries with one key would split one backend's identity; name both.
TEST_F(MaglevTest, DuplicateKeyIsRejectedNamingBothEntries) {
  std::vector<MaglevBackend> backends = makeBackends(5);
  backends[4].key = backends[2].key;
  Result<MaglevTable> table = builderOf(251).build(backends);
  ASSERT_FALSE(table.ok());
  const std::string& msg = table.error().message;
  EXPECT_NE(msg.find(".key"), std::string::npos) << msg;
  EXPECT_NE(msg.find("backends[2]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("backends[4]"), std::string::npos) << msg;
}

// An empty key is no identity at all.
TEST_F(MaglevTest, EmptyKeyIsRejected) {
  std::vector<MaglevBackend> backends = makeBackends(2);
  backends[1].key.clear();
  Result<MaglevTable> table = builderOf(251).build(backends);
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.error().message.find("backends[1].key"), std::string::npos)
      << table.error().message;
}

// Eight backends cannot share seven slots.
TEST_F(MaglevTest, MoreBackendsThanSlotsIsRejected) {
  Result<MaglevTable> table = builderOf(7).build(makeBackends(8));
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.error().message.find("8 backends exceed tableSize 7"), std::string::npos)
      << table.error().message;
  EXPECT_TRUE(builderOf(7).build(makeBackends(7)).ok());
}

}  // namespace
}  // namespace sluice
