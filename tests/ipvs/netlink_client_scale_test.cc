// NetlinkClient at scale and under traffic (vm suite): 10,000 services through pipelined
// batches and one dump, with the time each step takes printed; counters and connection counts
// that real TCP through a virtual service moves.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <set>

#include "tests/ipvs/netlink_client_fixture.h"
#include "tests/ipvs/vm_env.h"

namespace sluice::ipvs::testing {
namespace {

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// 10,000 services: created by one batch (a few sendmsg windows), all read back by one dump,
// deleted by one batch. Prints what each step cost.
TEST_F(NetlinkClientTest, TenThousandServicesByBatchAndDump) {
  constexpr size_t kServices = 10'000;
  Batch create;
  Batch remove;
  std::set<ServiceKey> want;
  for (size_t i = 0; i < kServices; ++i) {
    // 10.100.0.1 .. 10.100.39.250, port 80.
    const auto key = ServiceKey::tuple(
        IpAddress::v4FromHost(0x0a640000u | static_cast<uint32_t>((i / 250) << 8) |
                              static_cast<uint32_t>(i % 250 + 1)),
        80, Protocol::kTcp);
    create.addService(makeService(key));
    remove.deleteService(key);
    want.insert(key);
  }

  const NetlinkCounters c0 = client_->counters();
  auto t = std::chrono::steady_clock::now();
  auto created = client_->apply(create);
  const double createSeconds = secondsSince(t);
  ASSERT_TRUE(created) << created.error().message;
  ASSERT_TRUE(created->ok()) << created->status().error().message;
  const NetlinkCounters c1 = client_->counters();
  const uint64_t windows = (kServices + client_->window() - 1) / client_->window();
  EXPECT_EQ(c1.requestsSent - c0.requestsSent, kServices);
  EXPECT_EQ(c1.sendCalls - c0.sendCalls, windows);

  t = std::chrono::steady_clock::now();
  auto all = client_->listServices();
  const double dumpSeconds = secondsSince(t);
  ASSERT_TRUE(all) << all.error().message;
  ASSERT_EQ(all->size(), kServices);
  std::set<ServiceKey> got;
  for (const auto& s : *all) got.insert(s.key);
  EXPECT_EQ(got, want);
  const NetlinkCounters c2 = client_->counters();

  t = std::chrono::steady_clock::now();
  auto removed = client_->apply(remove);
  const double deleteSeconds = secondsSince(t);
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_TRUE(removed->ok()) << removed->status().error().message;

  std::printf(
      "%zu services: create %.3f s (%llu sendmsg, window %zu), dump %.3f s (%llu recvmsg), "
      "delete %.3f s\n",
      kServices, createSeconds, static_cast<unsigned long long>(c1.sendCalls - c0.sendCalls),
      client_->window(), dumpSeconds,
      static_cast<unsigned long long>(c2.receiveCalls - c1.receiveCalls), deleteSeconds);
}

// Opens a TCP socket to address:port, bound (for listeners) or connected; -1 on failure.
int tcpSocket(const char* address, uint16_t port, bool listen) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, address, &sa.sin_addr);
  const auto* p = reinterpret_cast<const sockaddr*>(&sa);
  const int r =
      listen ? (::bind(fd, p, sizeof(sa)) || ::listen(fd, 4)) : ::connect(fd, p, sizeof(sa));
  if (r != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// TCP through a virtual service (local client -> VIP on a dummy link -> masqueraded to a local
// backend address): the destination counts the established connection as active, and the
// 64-bit counters of service and destination show the connection, packets and bytes once the
// kernel's estimator has run (every 2 s).
TEST_F(NetlinkClientTest, RealTrafficMovesConnectionCountsAndStats) {
  LocalLink link("slipvs" + std::to_string(getpid() % 100000), {"10.96.5.10/32", "10.244.5.1/32"});
  ASSERT_TRUE(link.ok()) << "dummy link setup failed";
  const auto key = ServiceKey::tuple(ip("10.96.5.10"), 80, Protocol::kTcp);
  addService(makeService(key));
  ASSERT_TRUE(client_->addDestination(key, makeDest("10.244.5.1", 8080)));

  const int listener = tcpSocket("10.244.5.1", 8080, true);
  ASSERT_GE(listener, 0);
  const int client = tcpSocket("10.96.5.10", 80, false);
  ASSERT_GE(client, 0) << "connect through the VIP failed";
  const int server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(server, 0);
  char buf[16] = {};
  ASSERT_EQ(::write(client, "ping", 4), 4);
  ASSERT_EQ(::read(server, buf, sizeof(buf)), 4);
  ASSERT_EQ(::write(server, "pong", 4), 4);
  ASSERT_EQ(::read(client, buf, sizeof(buf)), 4);

  auto dests = client_->listDestinations(key);
  ASSERT_TRUE(dests) << dests.error().message;
  ASSERT_EQ(dests->size(), 1u);
  EXPECT_EQ(dests->front().activeConnections, 1u) << "an established connection is active";

  ::close(client);
  ::close(server);
  ::close(listener);
  Stats svc;
  Stats dest;
  const bool counted = waitFor(
      [&] {
        auto s = client_->getService(key);
        auto d = client_->listDestinations(key);
        if (!s || !d || d->empty()) return false;
        svc = s->stats;
        dest = d->front().stats;
        return svc.connections >= 1 && dest.connections >= 1;
      },
      std::chrono::seconds(8));
  ASSERT_TRUE(counted) << "stats never showed the connection";
  EXPECT_TRUE(svc.from64Bit);
  EXPECT_EQ(svc.connections, 1u);
  EXPECT_GE(svc.packetsIn, 3u) << "SYN, ACK, data at least";
  EXPECT_GE(svc.packetsOut, 2u);
  EXPECT_GE(svc.bytesIn, 4u);
  EXPECT_GE(svc.bytesOut, 4u);
  EXPECT_EQ(dest.connections, 1u);
  EXPECT_EQ(dest.packetsIn, svc.packetsIn) << "one destination carries all of it";
}

}  // namespace
}  // namespace sluice::ipvs::testing
