#include "dataplane/service_diff.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/dataplane/service_fixtures.h"

namespace sluice {
namespace {

using testing::backend;
using testing::clusterIpService;
using testing::ip;

// 1,000 services "svc-<i>" on 10.96.<i/256>.<i%256>:80, three backends each.
ServiceTable bigTable() {
  ServiceTable t;
  for (int i = 0; i < 1000; ++i) {
    std::string n = std::to_string(i);
    std::string vip = "10.96." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    std::string pod = "10.244." + std::to_string(i / 256) + ".";
    EXPECT_TRUE(t.upsert(clusterIpService("svc-" + n, vip,
                                          {backend(pod + "1", 8080), backend(pod + "2", 8080),
                                           backend(pod + "3", 8080)}))
                    .ok());
  }
  return t;
}

TEST(ServiceDiffTest, OneChangedEndpointIsAOneServiceDiff) {
  // In 1,000 services, a pod of one of them turning terminating touches that service only.
  ServiceTable before = bigTable();
  ServiceTable after = before;
  Service changed = *after.find({"default", "svc-417", "http"});
  changed.backends[1].state = BackendState::kTerminating;
  ASSERT_TRUE(after.upsert(changed).ok());

  ServiceDiff diff = ServiceDiff::between(before, after);
  ASSERT_EQ(diff.size(), 1u);
  EXPECT_TRUE(diff.changes[0].updated());
  EXPECT_EQ(diff.changes[0].key().name, "svc-417");

  BackendDelta delta = diffBackends(*diff.changes[0].before, *diff.changes[0].after);
  EXPECT_TRUE(delta.added.empty());
  EXPECT_TRUE(delta.removed.empty());
  ASSERT_EQ(delta.changed.size(), 1u);
  EXPECT_EQ(delta.changed[0].state, BackendState::kTerminating);
}

TEST(ServiceDiffTest, EqualTablesGiveAnEmptyDiff) {
  // Resyncing an unchanged table is a no-op for the modes.
  EXPECT_TRUE(ServiceDiff::between(bigTable(), bigTable()).empty());
}

TEST(ServiceDiffTest, AddedAndRemovedServicesAreReported) {
  // One service deleted, one created: a removal and an addition, nothing else.
  ServiceTable before = bigTable();
  ServiceTable after = before;
  ASSERT_TRUE(after.erase({"default", "svc-3", "http"}));
  ASSERT_TRUE(after.upsert(clusterIpService("new", "10.96.200.1")).ok());
  ServiceDiff diff = ServiceDiff::between(before, after);
  ASSERT_EQ(diff.size(), 2u);
  int added = 0, removed = 0;
  for (const auto& c : diff.changes) {
    added += c.added();
    removed += c.removed();
  }
  EXPECT_EQ(added, 1);
  EXPECT_EQ(removed, 1);
}

TEST(ServiceDiffTest, FullSyncAddsEveryService) {
  // Start-up: the full sync is every service as an addition, applied to an empty table.
  ServiceTable t = bigTable();
  ServiceDiff diff = ServiceDiff::fullSync(t);
  EXPECT_EQ(diff.size(), t.size());
  ServiceTable empty;
  ASSERT_TRUE(applyDiff(empty, diff).ok());
  EXPECT_EQ(empty, t);
}

TEST(ServiceDiffTest, FrontendMovingBetweenServicesApplies) {
  // A ClusterIP freed by one service and taken by another in the same diff
  // applies cleanly because removals go first.
  ServiceTable before;
  ASSERT_TRUE(before.upsert(clusterIpService("old", "10.96.0.10")).ok());
  ServiceTable after;
  ASSERT_TRUE(after.upsert(clusterIpService("new", "10.96.0.10")).ok());
  ServiceTable t = before;
  ASSERT_TRUE(applyDiff(t, ServiceDiff::between(before, after)).ok());
  EXPECT_EQ(t, after);
}

TEST(ServiceDiffTest, FailedApplyLeavesTableUntouched) {
  // A diff whose addition collides with an existing frontend changes nothing.
  ServiceTable t;
  ASSERT_TRUE(t.upsert(clusterIpService("a", "10.96.0.10")).ok());
  ServiceDiff diff;
  diff.changes.push_back({std::nullopt, clusterIpService("b", "10.96.0.11")});
  diff.changes.push_back({std::nullopt, clusterIpService("c", "10.96.0.10")});
  ServiceTable copy = t;
  auto r = applyDiff(t, diff);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(t, copy);
}

TEST(ServiceDiffTest, FailedApplyUndoesRemovalsUpdatesAndMovedFrontends) {
  // The failure comes last, after a removal, a frontend taken over from the
  // removed service and an update: all three are undone.
  ServiceTable t;
  ASSERT_TRUE(t.upsert(clusterIpService("a", "10.96.0.10")).ok());
  ASSERT_TRUE(t.upsert(clusterIpService("b", "10.96.0.11")).ok());
  ASSERT_TRUE(t.upsert(clusterIpService("c", "10.96.0.12")).ok());
  ServiceDiff diff;
  diff.changes.push_back({*t.find(clusterIpService("a", "10.96.0.10").key), std::nullopt});
  diff.changes.push_back({*t.find(clusterIpService("b", "10.96.0.11").key),
                          clusterIpService("b", "10.96.0.21")});
  diff.changes.push_back({std::nullopt, clusterIpService("d", "10.96.0.10")});
  diff.changes.push_back({std::nullopt, clusterIpService("e", "10.96.0.12")});  // c's: fails
  const ServiceTable copy = t;
  ASSERT_FALSE(applyDiff(t, diff).ok());
  EXPECT_EQ(t, copy);
  ASSERT_NE(t.findByFrontend(IpAddress::parse("10.96.0.10").value(), 80, Protocol::kTcp), nullptr);
  EXPECT_EQ(t.findByFrontend(IpAddress::parse("10.96.0.10").value(), 80, Protocol::kTcp)->key.name,
            "a");
}

TEST(ServiceDiffTest, RandomEditsRoundTrip) {
  // Property: for random edit sequences, applying between(a, b) to a gives b.
  std::mt19937 rng(20261121);
  ServiceTable a = bigTable();
  for (int round = 0; round < 50; ++round) {
    ServiceTable b = a;
    for (int edit = 0; edit < 20; ++edit) {
      int i = static_cast<int>(rng() % 1200);
      ServiceKey key{"default", "svc-" + std::to_string(i), "http"};
      std::string vip = "10.97." + std::to_string(i / 256) + "." + std::to_string(i % 256);
      switch (rng() % 3) {
        case 0:
          b.erase(key);
          break;
        case 1: {
          Service s = clusterIpService(key.name, vip);
          for (uint32_t k = 0; k < rng() % 5; ++k) {
            s.backends.push_back(backend("10.245.0." + std::to_string(k + 1), 80));
          }
          b.erase(key);
          ASSERT_TRUE(b.upsert(s).ok());
          break;
        }
        default:
          if (const Service* s = b.find(key)) {
            Service copy = *s;
            if (!copy.backends.empty()) copy.backends.pop_back();
            ASSERT_TRUE(b.upsert(copy).ok());
          }
      }
    }
    ServiceDiff diff = ServiceDiff::between(a, b);
    ServiceTable applied = a;
    ASSERT_TRUE(applyDiff(applied, diff).ok()) << "round " << round;
    ASSERT_EQ(applied, b) << "round " << round;
    a = b;
  }
}

TEST(ServiceDiffTest, BackendAndFrontendDeltas) {
  // Scale 3 -> 2 with one new pod, and a LoadBalancer IP added.
  Service before = clusterIpService("web", "10.96.0.10",
                                    {backend("10.244.0.1", 80), backend("10.244.0.2", 80),
                                     backend("10.244.0.3", 80)});
  Service after = clusterIpService("web", "10.96.0.10",
                                   {backend("10.244.0.2", 80), backend("10.244.0.4", 80)});
  after.frontends.push_back({ip("192.0.2.10"), 80, Protocol::kTcp, FrontendScope::kLoadBalancer});

  BackendDelta b = diffBackends(before, after);
  ASSERT_EQ(b.added.size(), 1u);
  EXPECT_EQ(b.added[0].address, ip("10.244.0.4"));
  ASSERT_EQ(b.removed.size(), 2u);
  EXPECT_EQ(b.removed[0].address, ip("10.244.0.1"));
  EXPECT_EQ(b.removed[1].address, ip("10.244.0.3"));
  EXPECT_TRUE(b.changed.empty());

  FrontendDelta f = diffFrontends(before, after);
  ASSERT_EQ(f.added.size(), 1u);
  EXPECT_EQ(f.added[0].scope, FrontendScope::kLoadBalancer);
  EXPECT_TRUE(f.removed.empty());
}

}  // namespace
}  // namespace sluice
