// NetlinkClient against a real kernel's IPVS (vm suite, Debian 6.1/6.12 under qemu): services
// and destinations round-trip through create/update/delete and dumps, every kernel error comes
// back naming its object, batches pipeline, and ipvsadm sees what the client programmed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/ipvs/netlink_client_fixture.h"
#include "tests/ipvs/vm_env.h"

namespace sluice::ipvs::testing {
namespace {

using ::testing::HasSubstr;

const Service* findService(const std::vector<Service>& all, const ServiceKey& key) {
  auto it = std::find_if(all.begin(), all.end(), [&](const Service& s) { return s.key == key; });
  return it == all.end() ? nullptr : &*it;
}

const Destination* findDest(const std::vector<Destination>& all, const char* address,
                            uint16_t port) {
  auto it = std::find_if(all.begin(), all.end(), [&](const Destination& d) {
    return d.address == ip(address) && d.port == port;
  });
  return it == all.end() ? nullptr : &*it;
}

// A TCP service is created, read back by get and by dump with what was set, then deleted.
TEST_F(NetlinkClientTest, CreatesReadsAndDeletesAService) {
  const auto key = ServiceKey::tuple(ip("10.96.0.1"), 443, Protocol::kTcp);
  addService(makeService(key, "wrr"));

  auto got = client_->getService(key);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->key, key);
  EXPECT_EQ(got->scheduler, "wrr");
  EXPECT_EQ(got->persistencePrefix, 32);
  EXPECT_TRUE(got->flags & ServiceFlags::kHashed) << "the kernel reports hashed entries";
  EXPECT_TRUE(got->sameConfig(makeService(key, "wrr")));

  auto all = client_->listServices();
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->size(), 1u);
  EXPECT_TRUE(all->front().sameConfig(makeService(key, "wrr")));

  ASSERT_TRUE(client_->deleteService(key));
  EXPECT_EQ(client_->getService(key).error().code, ErrorCode::kNotFound);
}

// An update swaps the scheduler to mh with its flags and adds persistence; a second update
// without flags clears them (the flags mask covers every user flag).
TEST_F(NetlinkClientTest, UpdateSetsAndClearsSchedulerFlagsAndPersistence) {
  const auto key = ServiceKey::tuple(ip("10.96.0.10"), 53, Protocol::kUdp);
  addService(makeService(key));

  Service mh = makeService(key, "mh");
  mh.flags = ServiceFlags::kMhFallback | ServiceFlags::kMhPort | ServiceFlags::kPersistent;
  mh.timeoutSeconds = 10800;
  mh.persistencePrefix = 24;
  ASSERT_TRUE(client_->updateService(mh));
  auto got = client_->getService(key);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->scheduler, "mh");
  EXPECT_EQ(got->flags & ServiceFlags::kUserMask,
            ServiceFlags::kMhFallback | ServiceFlags::kMhPort | ServiceFlags::kPersistent);
  EXPECT_EQ(got->timeoutSeconds, 10800u);
  EXPECT_EQ(got->persistencePrefix, 24);
  EXPECT_TRUE(got->sameConfig(mh));

  ASSERT_TRUE(client_->updateService(makeService(key, "mh")));
  got = client_->getService(key);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->flags & ServiceFlags::kUserMask, 0u);
}

// IPv6 services carry the persistence granularity as a prefix length, not a mask.
TEST_F(NetlinkClientTest, Ipv6ServiceKeepsItsPersistencePrefix) {
  const auto key = ServiceKey::tuple(ip("fd00::a"), 80, Protocol::kTcp);
  Service s = makeService(key, "sh");
  s.flags = ServiceFlags::kPersistent | ServiceFlags::kShPort;
  s.timeoutSeconds = 60;
  s.persistencePrefix = 64;
  addService(s);
  ASSERT_TRUE(client_->addDestination(key, makeDest("fd00::7", 8080)));

  auto got = client_->getService(key);
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->key.toString(), "[fd00::a]:80/TCP");
  EXPECT_TRUE(got->sameConfig(s));
  auto dests = client_->listDestinations(key);
  ASSERT_TRUE(dests) << dests.error().message;
  ASSERT_EQ(dests->size(), 1u);
  EXPECT_EQ(dests->front().toString(), "[fd00::7]:8080");
}

// Firewall-mark services are keyed by (family, mark): the same mark in both families is two
// services, and their destinations are dumped per key.
TEST_F(NetlinkClientTest, FwmarkServicesAreKeyedByFamilyAndMark) {
  const auto v4 = ServiceKey::mark(IpFamily::kV4, 0x10);
  const auto v6 = ServiceKey::mark(IpFamily::kV6, 0x10);
  addService(makeService(v4));
  addService(makeService(v6, "lc"));
  ASSERT_TRUE(
      client_->addDestination(v4, makeDest("10.244.0.9", 0, 1, ForwardMethod::kDirectRoute)));
  ASSERT_TRUE(client_->addDestination(v6, makeDest("fd00::9", 0, 3, ForwardMethod::kDirectRoute)));

  auto all = client_->listServices();
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->size(), 2u);
  ASSERT_NE(findService(*all, v4), nullptr);
  ASSERT_NE(findService(*all, v6), nullptr);
  EXPECT_EQ(findService(*all, v6)->scheduler, "lc");
  EXPECT_EQ(v4.toString(), "fwmark 0x10/IPv4");

  auto d6 = client_->listDestinations(v6);
  ASSERT_TRUE(d6) << d6.error().message;
  ASSERT_EQ(d6->size(), 1u);
  EXPECT_EQ(d6->front().weight, 3u);
  EXPECT_EQ(d6->front().forward, ForwardMethod::kDirectRoute);
}

// Destinations of every forwarding method, with thresholds and tunnel encapsulation, are
// added, updated (drained to weight 0) and deleted, and the dump follows each step.
TEST_F(NetlinkClientTest, DestinationsAddUpdateDeleteAndDump) {
  const auto key = ServiceKey::tuple(ip("10.96.0.20"), 8080, Protocol::kTcp);
  addService(makeService(key, "wlc"));
  Destination masq = makeDest("10.244.1.1", 80, 5);
  masq.upperThreshold = 100;
  masq.lowerThreshold = 50;
  Destination route = makeDest("10.244.1.2", 8080, 2, ForwardMethod::kDirectRoute);
  Destination gue = makeDest("10.244.1.3", 8080, 1, ForwardMethod::kTunnel);
  gue.tunnelType = TunnelType::kGue;
  gue.tunnelPort = 6080;
  Batch b;
  for (const auto& d : {masq, route, gue}) b.addDestination(key, d);
  auto r = client_->apply(b);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(r->ok()) << r->status().error().message;

  auto dests = client_->listDestinations(key);
  ASSERT_TRUE(dests) << dests.error().message;
  ASSERT_EQ(dests->size(), 3u);
  for (const auto& want : {masq, route, gue}) {
    const Destination* got = findDest(*dests, want.address.toString().c_str(), want.port);
    ASSERT_NE(got, nullptr) << want.toString();
    EXPECT_TRUE(got->sameConfig(want)) << want.toString();
    EXPECT_TRUE(got->stats.present && got->stats.from64Bit) << "STATS64 in every dump";
  }

  masq.weight = 0;
  ASSERT_TRUE(client_->updateDestination(key, masq));
  ASSERT_TRUE(client_->deleteDestination(key, route.address, route.port));
  dests = client_->listDestinations(key);
  ASSERT_TRUE(dests) << dests.error().message;
  ASSERT_EQ(dests->size(), 2u);
  EXPECT_EQ(findDest(*dests, "10.244.1.1", 80)->weight, 0u);
  EXPECT_EQ(findDest(*dests, "10.244.1.2", 8080), nullptr);
}

// Adding a service or destination that exists is kAlreadyExists, named as the issue asks.
TEST_F(NetlinkClientTest, DuplicatesAreAlreadyExistsNamingTheObject) {
  const auto key = ServiceKey::tuple(ip("10.96.0.10"), 53, Protocol::kUdp);
  addService(makeService(key));
  auto dup = client_->addService(makeService(key));
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(dup.error().message, "service 10.96.0.10:53/UDP: EEXIST (File exists)");

  ASSERT_TRUE(client_->addDestination(key, makeDest("10.244.1.7", 53)));
  auto dupDest = client_->addDestination(key, makeDest("10.244.1.7", 53));
  ASSERT_FALSE(dupDest);
  EXPECT_EQ(dupDest.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(dupDest.error().message,
            "service 10.96.0.10:53/UDP: destination 10.244.1.7:53: EEXIST (File exists)");
}

// Every operation on a service that does not exist is kNotFound (ESRCH) naming the service;
// dumping its destinations is an empty list (the kernel's choice).
TEST_F(NetlinkClientTest, MissingServiceIsNotFound) {
  const auto key = ServiceKey::tuple(ip("10.96.0.99"), 80, Protocol::kTcp);
  for (const Result<void>& r :
       {client_->updateService(makeService(key)), client_->deleteService(key),
        client_->addDestination(key, makeDest("10.244.0.1", 80)),
        client_->deleteDestination(key, ip("10.244.0.1"), 80)}) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
    EXPECT_THAT(r.error().message, HasSubstr("service 10.96.0.99:80/TCP"));
    EXPECT_THAT(r.error().message, HasSubstr("no such service: ESRCH"));
  }
  auto get = client_->getService(key);
  ASSERT_FALSE(get);
  EXPECT_EQ(get.error().code, ErrorCode::kNotFound);
  auto dests = client_->listDestinations(key);
  ASSERT_TRUE(dests) << dests.error().message;
  EXPECT_TRUE(dests->empty());
}

// Updating or deleting a destination the service lacks is kNotFound (ENOENT) naming both.
TEST_F(NetlinkClientTest, MissingDestinationIsNotFound) {
  const auto key = ServiceKey::tuple(ip("10.96.0.30"), 80, Protocol::kTcp);
  addService(makeService(key));
  for (const Result<void>& r : {client_->updateDestination(key, makeDest("10.244.2.2", 80)),
                                client_->deleteDestination(key, ip("10.244.2.2"), 80)}) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
    EXPECT_EQ(r.error().message,
              "service 10.96.0.30:80/TCP: destination 10.244.2.2:80: no such destination: "
              "ENOENT (No such file or directory)");
  }
}

// A scheduler the kernel has no module for is kInvalidArgument naming the scheduler; so is a
// persistence engine it lacks; on update the service keeps its old scheduler.
TEST_F(NetlinkClientTest, UnknownSchedulerIsInvalidArgument) {
  const auto key = ServiceKey::tuple(ip("10.96.0.40"), 80, Protocol::kTcp);
  auto r = client_->addService(makeService(key, "nope"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message,
              HasSubstr("service 10.96.0.40:80/TCP: scheduler 'nope' not available"));
  EXPECT_THAT(r.error().message, HasSubstr("ENOENT"));

  addService(makeService(key, "rr"));
  Service pe = makeService(key, "rr");
  pe.persistenceEngine = "nope";
  auto u = client_->updateService(pe);
  ASSERT_FALSE(u);
  EXPECT_THAT(u.error().message, HasSubstr("or persistence engine 'nope'"));
  EXPECT_EQ(client_->getService(key)->scheduler, "rr");

  auto tooLong = client_->addService(makeService(key, "a-scheduler-name-too-long"));
  ASSERT_FALSE(tooLong);
  EXPECT_EQ(tooLong.error().code, ErrorCode::kInvalidArgument);
}

// Address-family mistakes: a key whose address is of the other family never leaves the client
// (nothing is sent); a destination of the other family is refused by the kernel (EINVAL)
// except with tunnelling, which the kernel allows across families.
TEST_F(NetlinkClientTest, BadAddressFamilyIsInvalidArgument) {
  ServiceKey mixed = ServiceKey::tuple(ip("10.96.0.50"), 80, Protocol::kTcp);
  mixed.family = IpFamily::kV6;
  const uint64_t sentBefore = client_->counters().requestsSent;
  auto r = client_->addService(makeService(mixed));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message, HasSubstr("service 10.96.0.50:80/TCP: address 10.96.0.50 is "
                                           "not of the key's family"));
  EXPECT_EQ(client_->counters().requestsSent, sentBefore);

  const auto key = ServiceKey::tuple(ip("10.96.0.50"), 80, Protocol::kTcp);
  addService(makeService(key));
  auto v6masq = client_->addDestination(key, makeDest("fd00::50", 80));
  ASSERT_FALSE(v6masq);
  EXPECT_EQ(v6masq.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(v6masq.error().message,
            "service 10.96.0.50:80/TCP: destination [fd00::50]:80: EINVAL (Invalid argument)");
  auto v6tunnel = client_->addDestination(key, makeDest("fd00::50", 80, 1, ForwardMethod::kTunnel));
  EXPECT_TRUE(v6tunnel) << v6tunnel.error().message;
}

// A lower threshold above the upper one is ERANGE: kInvalidArgument naming the destination.
TEST_F(NetlinkClientTest, ThresholdsOutOfOrderAreInvalidArgument) {
  const auto key = ServiceKey::tuple(ip("10.96.0.60"), 80, Protocol::kTcp);
  addService(makeService(key));
  Destination d = makeDest("10.244.6.1", 80);
  d.upperThreshold = 10;
  d.lowerThreshold = 20;
  auto r = client_->addDestination(key, d);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message, HasSubstr("destination 10.244.6.1:80"));
  EXPECT_THAT(r.error().message, HasSubstr("ERANGE"));
}

// A batch of N changes is N netlink messages in ONE sendmsg and one round trip, each change
// acknowledged on its own.
TEST_F(NetlinkClientTest, BatchPipelinesRequestsInOneSendmsg) {
  const auto key = ServiceKey::tuple(ip("10.96.0.70"), 80, Protocol::kTcp);
  constexpr size_t kDests = 200;
  ASSERT_LE(kDests + 1, client_->window());
  Batch b;
  b.addService(makeService(key));
  track(key);
  for (size_t i = 0; i < kDests; ++i) {
    b.addDestination(key, makeDest(("10.244.7." + std::to_string(i + 1)).c_str(), 80));
  }
  const NetlinkCounters before = client_->counters();
  auto r = client_->apply(b);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->ok()) << r->status().error().message;
  EXPECT_EQ(r->applied, kDests + 1);
  const NetlinkCounters& after = client_->counters();
  EXPECT_EQ(after.requestsSent - before.requestsSent, kDests + 1);
  EXPECT_EQ(after.sendCalls - before.sendCalls, 1u);
  EXPECT_EQ(after.roundTrips - before.roundTrips, 1u);
  EXPECT_EQ(after.staleMessages, before.staleMessages);
  EXPECT_LE(after.receiveCalls - before.receiveCalls, (kDests + 1 + 63) / 64 + 1)
      << "ACKs are read in bursts";
  std::printf("batch of %zu changes: %llu netlink messages, %llu sendmsg, %llu receive calls\n",
              kDests + 1, static_cast<unsigned long long>(after.requestsSent - before.requestsSent),
              static_cast<unsigned long long>(after.sendCalls - before.sendCalls),
              static_cast<unsigned long long>(after.receiveCalls - before.receiveCalls));

  auto dests = client_->listDestinations(key);
  ASSERT_TRUE(dests) << dests.error().message;
  EXPECT_EQ(dests->size(), kDests);
}

// A batch keeps going past failures: each failed change is reported by its index with its
// object named, and the others are applied.
TEST_F(NetlinkClientTest, BatchReportsEachFailureAndAppliesTheRest) {
  const auto a = ServiceKey::tuple(ip("10.96.0.80"), 80, Protocol::kTcp);
  const auto b = ServiceKey::tuple(ip("10.96.0.81"), 80, Protocol::kTcp);
  const auto missing = ServiceKey::tuple(ip("10.96.0.82"), 80, Protocol::kTcp);
  track(a);
  track(b);
  Batch batch;
  batch.addService(makeService(a));
  batch.addService(makeService(a));                           // 1: EEXIST
  batch.addDestination(missing, makeDest("10.244.8.1", 80));  // 2: ESRCH
  batch.addService(makeService(b));
  batch.addService(makeService(ServiceKey::tuple(ip("10.96.0.83"), 80, Protocol::kIcmp)));  // 4
  auto r = client_->apply(batch);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->applied, 2u);
  ASSERT_EQ(r->failures.size(), 3u);
  EXPECT_EQ(r->failures[0].first, 1u);
  EXPECT_EQ(r->failures[0].second.code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(r->failures[1].first, 2u);
  EXPECT_EQ(r->failures[1].second.message,
            "service 10.96.0.82:80/TCP: destination 10.244.8.1:80: no such service: ESRCH (No "
            "such process)");
  EXPECT_EQ(r->failures[2].first, 4u);
  EXPECT_EQ(r->failures[2].second.code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r->status().error().message, HasSubstr("(and 2 more)"));
  EXPECT_TRUE(client_->getService(b));
}

// GET_INFO reports IPVS 1.2.1 and the connection table size Debian builds with (2^12).
TEST_F(NetlinkClientTest, InfoReportsVersionAndConnectionTableSize) {
  auto info = client_->info();
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->versionString(), "1.2.1");
  EXPECT_EQ(info->connTableSize, 4096u);
}

// Timeouts set through SET_CONFIG read back through GET_CONFIG; zero fields leave a timeout
// unchanged; the defaults are restored.
TEST_F(NetlinkClientTest, TimeoutsRoundTrip) {
  auto original = client_->timeouts();
  ASSERT_TRUE(original) << original.error().message;
  EXPECT_EQ(original->tcpSeconds, 900u) << "kernel default: 15 min established";
  EXPECT_GT(original->udpSeconds, 0u);

  ASSERT_TRUE(client_->setTimeouts({7200, 30, 45}));
  auto got = client_->timeouts();
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, (Timeouts{7200, 30, 45}));

  ASSERT_TRUE(client_->setTimeouts({0, 0, 60}));
  got = client_->timeouts();
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(*got, (Timeouts{7200, 30, 60}));

  ASSERT_TRUE(client_->setTimeouts(*original));
  EXPECT_EQ(*client_->timeouts(), *original);
}

// ipvsadm, the kernel's own tool, lists exactly what the client programmed.
TEST_F(NetlinkClientTest, IpvsadmSeesWhatTheClientProgrammed) {
  if (sh("command -v ipvsadm >/dev/null") != 0) GTEST_SKIP() << "ipvsadm not installed";
  const auto dns = ServiceKey::tuple(ip("10.96.0.10"), 53, Protocol::kUdp);
  Service mh = makeService(dns, "mh");
  mh.flags = ServiceFlags::kMhFallback | ServiceFlags::kMhPort;
  addService(mh);
  const auto mark = ServiceKey::mark(IpFamily::kV4, 16);
  Service sticky = makeService(mark, "rr");
  sticky.flags = ServiceFlags::kPersistent;
  sticky.timeoutSeconds = 300;
  addService(sticky);
  Batch b;
  b.addDestination(dns, makeDest("10.244.1.7", 53, 3));
  b.addDestination(dns, makeDest("10.244.2.7", 53, 0));
  b.addDestination(mark, makeDest("10.244.3.7", 0, 1, ForwardMethod::kDirectRoute));
  b.addDestination(mark, makeDest("10.244.4.7", 0, 1, ForwardMethod::kTunnel));
  auto r = client_->apply(b);
  ASSERT_TRUE(r && r->ok());

  const std::string out = squeeze(capture("ipvsadm -Ln"));
  std::printf("%s", out.c_str());
  EXPECT_THAT(out, HasSubstr("UDP 10.96.0.10:53 mh (mh-fallback,mh-port)\n"));
  EXPECT_THAT(out, HasSubstr("-> 10.244.1.7:53 Masq 3 0 0\n"));
  EXPECT_THAT(out, HasSubstr("-> 10.244.2.7:53 Masq 0 0 0\n"));
  EXPECT_THAT(out, HasSubstr("FWM 16 rr persistent 300\n"));
  EXPECT_THAT(out, HasSubstr("-> 10.244.3.7:0 Route 1 0 0\n"));
  EXPECT_THAT(out, HasSubstr("-> 10.244.4.7:0 Tunnel 1 0 0\n"));
}

// FLUSH removes every service in one request.
TEST_F(NetlinkClientTest, FlushRemovesEveryService) {
  Batch b;
  for (uint16_t port = 1; port <= 5; ++port) {
    b.addService(makeService(ServiceKey::tuple(ip("10.96.0.90"), port, Protocol::kTcp)));
  }
  auto r = client_->apply(b);
  ASSERT_TRUE(r && r->ok());
  ASSERT_EQ(client_->listServices()->size(), 5u);
  ASSERT_TRUE(client_->flush());
  EXPECT_TRUE(client_->listServices()->empty());
}

}  // namespace
}  // namespace sluice::ipvs::testing
