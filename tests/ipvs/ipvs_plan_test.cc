// The ipvs mode's translation and diff-to-batch rules (ipvs/ipvs_plan.h) and
// its nftables elements (ipvs/nft_table.h), without a kernel: what the vm
// suite then proves against real IPVS.
#include "ipvs/ipvs_plan.h"

#include <gtest/gtest.h>

#include "ipvs/nft_table.h"

namespace sluice::ipvs {
namespace {

IpAddress ip(const char* text) { return *IpAddress::parse(text); }

sluice::Service web(std::vector<Frontend> frontends, std::vector<Backend> backends,
                    Protocol proto = Protocol::kTcp) {
  sluice::Service s;
  s.key = sluice::ServiceKey{"default", "web", "http"};
  s.protocol = proto;
  s.frontends = std::move(frontends);
  s.backends = std::move(backends);
  return s;
}

Backend be(const char* addr, BackendState state = BackendState::kActive, bool local = true,
           uint16_t weight = 1) {
  Backend b;
  b.address = ip(addr);
  b.port = 8080;
  b.state = state;
  b.nodeLocal = local;
  b.weight = weight;
  return b;
}

Frontend fe(const char* addr, uint16_t port, FrontendScope scope = FrontendScope::kClusterIp,
            Protocol proto = Protocol::kTcp) {
  return Frontend{ip(addr), port, proto, scope};
}

std::vector<Batch::Op> ops(const Batch& b) {
  std::vector<Batch::Op> out;
  for (const auto& c : b.changes()) out.push_back(c.op);
  return out;
}

// One virtual server per frontend; NodePort/LB under eTP=Local get only the
// node-local backends while the ClusterIP keeps them all.
TEST(IpvsPlanTest, ExternalLocalFrontendsGetOnlyLocalDestinations) {
  sluice::Service s =
      web({fe("10.96.0.10", 80), fe("192.168.1.1", 30080, FrontendScope::kNodePort)},
          {be("10.244.0.2"), be("10.244.1.2", BackendState::kActive, false)});
  s.externalPolicy = TrafficPolicy::kLocal;
  const auto vs = virtualServersOf(s, PlanOptions{});
  ASSERT_EQ(vs.size(), 2u);
  EXPECT_EQ(vs[0].dests.size(), 2u);
  ASSERT_EQ(vs[1].dests.size(), 1u);
  EXPECT_EQ(vs[1].dests.begin()->first.first, ip("10.244.0.2"));
}

// internalTrafficPolicy Local: the ClusterIP gets only node-local backends,
// external frontends (eTP=Cluster here) keep them all.
TEST(IpvsPlanTest, InternalLocalClusterIpGetsOnlyLocalDestinations) {
  sluice::Service s =
      web({fe("10.96.0.10", 80), fe("192.168.1.1", 30080, FrontendScope::kNodePort)},
          {be("10.244.0.2"), be("10.244.1.2", BackendState::kActive, false)});
  s.internalPolicy = TrafficPolicy::kLocal;
  const auto vs = virtualServersOf(s, PlanOptions{});
  ASSERT_EQ(vs[0].dests.size(), 1u);
  EXPECT_EQ(vs[0].dests.begin()->first.first, ip("10.244.0.2"));
  EXPECT_EQ(vs[1].dests.size(), 2u);
}

// Terminating backends stay at weight 0 while an active one exists and take
// new flows (their weight) when none does.
TEST(IpvsPlanTest, TerminatingBackendsAreWeightZeroUnlessTheyAreTheFallback) {
  sluice::Service s =
      web({fe("10.96.0.10", 80)}, {be("10.244.0.2"), be("10.244.0.3", BackendState::kTerminating)});
  auto vs = virtualServersOf(s, PlanOptions{});
  EXPECT_EQ(vs[0].dests.at({ip("10.244.0.3"), 8080}).weight, 0u);
  EXPECT_EQ(vs[0].dests.at({ip("10.244.0.2"), 8080}).weight, 1u);
  s.backends = {be("10.244.0.3", BackendState::kTerminating, true, 5)};
  vs = virtualServersOf(s, PlanOptions{});
  EXPECT_EQ(vs[0].dests.at({ip("10.244.0.3"), 8080}).weight, 5u);
}

// Maglev maps to mh with the fallback and port flags; affinity to
// persistence with the Service's timeout; the annotation wins.
TEST(IpvsPlanTest, SchedulerFlagsAndPersistence) {
  sluice::Service s = web({fe("10.96.0.10", 80)}, {be("10.244.0.2")});
  s.algorithm = LbAlgorithm::kMaglev;
  s.affinity.clientIp = true;
  s.affinity.timeoutSeconds = 600;
  auto vs = virtualServersOf(s, PlanOptions{});
  EXPECT_EQ(vs[0].svc.scheduler, "mh");
  EXPECT_EQ(vs[0].svc.flags,
            ServiceFlags::kMhFallback | ServiceFlags::kMhPort | ServiceFlags::kPersistent);
  EXPECT_EQ(vs[0].svc.timeoutSeconds, 600u);
  s.modeOptions["ipvs-scheduler"] = "sh";
  vs = virtualServersOf(s, PlanOptions{});
  EXPECT_EQ(vs[0].svc.scheduler, "sh");
  EXPECT_EQ(vs[0].svc.flags, ServiceFlags::kShFallback | ServiceFlags::kPersistent);
  std::string warning;
  s.modeOptions["ipvs-scheduler"] = "fastest";
  vs = virtualServersOf(s, PlanOptions{}, &warning);
  EXPECT_EQ(vs[0].svc.scheduler, "mh");
  EXPECT_NE(warning.find("fastest"), std::string::npos) << warning;
}

// A new virtual server: the service first, then its destinations; one with
// nothing to send to is not created at all (nftables refuses instead).
TEST(IpvsPlanTest, NewVirtualServerIsAddedWithItsDestinationsAndAnEmptyOneIsNot) {
  const auto vs = virtualServersOf(
      web({fe("10.96.0.10", 80)}, {be("10.244.0.2"), be("10.244.0.3")}), PlanOptions{});
  Batch batch;
  std::vector<ConntrackFilter> flushes;
  auto next =
      reconcile(vs[0].svc.key, nullptr, &vs[0], Clock::now(), PlanOptions{}, batch, flushes);
  ASSERT_TRUE(next);
  EXPECT_EQ(ops(batch), (std::vector<Batch::Op>{Batch::Op::kAddService, Batch::Op::kAddDestination,
                                                Batch::Op::kAddDestination}));
  const auto empty = virtualServersOf(web({fe("10.96.0.11", 80)}, {}), PlanOptions{});
  Batch none;
  EXPECT_FALSE(
      reconcile(empty[0].svc.key, nullptr, &empty[0], Clock::now(), PlanOptions{}, none, flushes));
  EXPECT_TRUE(none.empty());
}

// An unchanged virtual server costs nothing; a removed TCP backend drains at
// weight 0 (one update) and is deleted only past its deadline.
TEST(IpvsPlanTest, RemovedTcpBackendDrainsThenGoesAtTheHardCap) {
  PlanOptions o;
  o.drainTimeout = std::chrono::seconds(10);
  const auto t0 = Clock::now();
  auto two = virtualServersOf(web({fe("10.96.0.10", 80)}, {be("10.244.0.2"), be("10.244.0.3")}), o);
  Batch b0;
  std::vector<ConntrackFilter> flushes;
  VsState cur = *reconcile(two[0].svc.key, nullptr, &two[0], t0, o, b0, flushes);
  Batch same;
  cur = *reconcile(two[0].svc.key, &cur, &two[0], t0, o, same, flushes);
  EXPECT_TRUE(same.empty());

  auto one = virtualServersOf(web({fe("10.96.0.10", 80)}, {be("10.244.0.2")}), o);
  Batch drain;
  cur = *reconcile(one[0].svc.key, &cur, &one[0], t0, o, drain, flushes);
  ASSERT_EQ(ops(drain), std::vector<Batch::Op>{Batch::Op::kUpdateDestination});
  EXPECT_EQ(drain.changes()[0].destination.weight, 0u);
  EXPECT_EQ(cur.draining(), 1u);
  Batch early;
  cur = *reconcile(one[0].svc.key, &cur, &one[0], t0 + std::chrono::seconds(5), o, early, flushes);
  EXPECT_TRUE(early.empty()) << "neither rewritten nor deleted before the cap";
  Batch capped;
  cur =
      *reconcile(one[0].svc.key, &cur, &one[0], t0 + std::chrono::seconds(11), o, capped, flushes);
  EXPECT_EQ(ops(capped), std::vector<Batch::Op>{Batch::Op::kDeleteDestination});
  EXPECT_EQ(cur.draining(), 0u);
  EXPECT_TRUE(flushes.empty());
}

// A removed UDP backend is deleted at once, with a conntrack flush naming
// the frontend and the backend.
TEST(IpvsPlanTest, RemovedUdpBackendIsDeletedAtOnceAndFlushed) {
  const auto two =
      virtualServersOf(web({fe("10.96.0.10", 53, FrontendScope::kClusterIp, Protocol::kUdp)},
                           {be("10.244.0.2"), be("10.244.0.3")}, Protocol::kUdp),
                       PlanOptions{});
  Batch b0;
  std::vector<ConntrackFilter> flushes;
  VsState cur =
      *reconcile(two[0].svc.key, nullptr, &two[0], Clock::now(), PlanOptions{}, b0, flushes);
  const auto one =
      virtualServersOf(web({fe("10.96.0.10", 53, FrontendScope::kClusterIp, Protocol::kUdp)},
                           {be("10.244.0.2")}, Protocol::kUdp),
                       PlanOptions{});
  Batch b1;
  cur = *reconcile(one[0].svc.key, &cur, &one[0], Clock::now(), PlanOptions{}, b1, flushes);
  EXPECT_EQ(ops(b1), std::vector<Batch::Op>{Batch::Op::kDeleteDestination});
  ASSERT_EQ(flushes.size(), 1u);
  EXPECT_EQ(flushes[0].originalDestination, ip("10.96.0.10"));
  EXPECT_EQ(flushes[0].originalDestinationPort, 53);
  EXPECT_EQ(flushes[0].replySource, ip("10.244.0.3"));
}

// nftables: masquerade for eTP=Cluster external frontends only, refusal when
// nothing takes new flows, hairpin pairs per backend, source ranges on LB IPs.
TEST(IpvsPlanTest, NftElementsFollowPoliciesAndEndpoints) {
  sluice::Service s = web({fe("10.96.0.10", 80), fe("192.168.1.1", 30080, FrontendScope::kNodePort),
                           fe("198.51.100.7", 80, FrontendScope::kLoadBalancer)},
                          {be("10.244.0.2")});
  s.sourceRanges = {*IpPrefix::parse("10.0.0.0/8")};
  NftElements e = nftElementsOf(s);
  EXPECT_EQ(e["masq4"],
            (std::set<std::string>{"192.168.1.1 . tcp . 30080", "198.51.100.7 . tcp . 80"}));
  EXPECT_TRUE(e["refuse4"].empty());
  EXPECT_EQ(e["hairpin4"], std::set<std::string>{"10.244.0.2 . 10.244.0.2"});
  EXPECT_EQ(e["lbrestrict4"], std::set<std::string>{"198.51.100.7 . tcp . 80"});
  EXPECT_EQ(e["lbsrc4"], std::set<std::string>{"198.51.100.7 . 80 . 10.0.0.0/8"});
  s.externalPolicy = TrafficPolicy::kLocal;
  s.backends = {be("10.244.1.2", BackendState::kActive, false)};
  e = nftElementsOf(s);
  EXPECT_TRUE(e["masq4"].empty()) << "eTP=Local keeps the client address";
  EXPECT_EQ(e["refuse4"],
            (std::set<std::string>{"192.168.1.1 . tcp . 30080", "198.51.100.7 . tcp . 80"}))
      << "no local endpoint: refused, not sent to the remote one";
}

}  // namespace
}  // namespace sluice::ipvs
