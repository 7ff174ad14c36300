// ConntrackClient against real conntrack entries (vm suite): UDP through IPVS virtual services
// to local backends, with net.ipv4.vs.conntrack=1 and an nftables ct rule so the kernel tracks
// it as in the IPVS mode; the entries of one removed backend are deleted, the others stay.
#include "ipvs/conntrack_client.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <vector>

#include "tests/ipvs/netlink_client_fixture.h"
#include "tests/ipvs/vm_env.h"

namespace sluice::ipvs::testing {
namespace {

using ::testing::HasSubstr;

int udpSocket(const char* bindAddress, uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, bindAddress, &sa.sin_addr);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool sendTo(int fd, const char* address, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, address, &sa.sin_addr);
  return ::sendto(fd, "q", 1, 0, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) == 1;
}

// Two UDP services on one VIP, each with one local backend, tracked by conntrack.
class ConntrackClientTest : public NetlinkClientTest {
 protected:
  void SetUp() override {
    NetlinkClientTest::SetUp();
    if (HasFatalFailure()) return;
    auto ct = ConntrackClient::create();
    ASSERT_TRUE(ct) << ct.error().message;
    conntrack_ = std::move(*ct);
    // IPVS keeps conntrack entries for its connections only with this sysctl (the mode sets it
    // for nftables masquerade); the ct rule makes conntrack track this namespace at all.
    std::ofstream("/proc/sys/net/ipv4/vs/conntrack") << "1\n";
    ASSERT_EQ(feed("nft -f -",
                   "table ip sluice_ct_test {\n"
                   "  chain out { type filter hook output priority 0; ct state new counter; }\n"
                   "}\n"),
              0);
    link_ = std::make_unique<LocalLink>(
        "slct" + std::to_string(getpid() % 100000),
        std::vector<std::string>{"10.96.6.10/32", "10.244.6.1/32", "10.244.6.2/32"});
    ASSERT_TRUE(link_->ok());
    for (uint16_t port : {53, 54}) {
      const auto key = ServiceKey::tuple(ip("10.96.6.10"), port, Protocol::kUdp);
      addService(makeService(key));
      ASSERT_TRUE(
          client_->addDestination(key, makeDest(port == 53 ? "10.244.6.1" : "10.244.6.2", 5353)));
    }
    for (const char* backend : {"10.244.6.1", "10.244.6.2"}) {
      const int fd = udpSocket(backend, 5353);
      ASSERT_GE(fd, 0);
      fds_.push_back(fd);
    }
  }

  void TearDown() override {
    for (int fd : fds_) ::close(fd);
    // UDP entries outlive the test by 30 s: delete them so the next test starts clean.
    if (conntrack_) {
      for (const char* backend : {"10.244.6.1", "10.244.6.2"}) {
        (void)conntrack_->remove(backendFilter(backend));
      }
    }
    link_.reset();
    sh("nft delete table ip sluice_ct_test 2>/dev/null");
    NetlinkClientTest::TearDown();
  }

  // Sends one datagram from each of `clients` new sockets to VIP:port and checks the backend
  // behind it got them all.
  void sendFromClients(uint16_t port, int clients) {
    const int backend = fds_[port == 53 ? 0 : 1];
    for (int i = 0; i < clients; ++i) {
      const int fd = udpSocket("0.0.0.0", 0);
      ASSERT_GE(fd, 0);
      fds_.push_back(fd);
      ASSERT_TRUE(sendTo(fd, "10.96.6.10", port));
      char buf[4];
      ASSERT_EQ(::recv(backend, buf, sizeof(buf), 0), 1) << "datagram " << i << " not delivered";
    }
  }

  static ConntrackFilter backendFilter(const char* backend) {
    ConntrackFilter f;
    f.originalDestination = ip("10.96.6.10");
    f.replySource = ip(backend);
    return f;
  }

  std::unique_ptr<ConntrackClient> conntrack_;
  std::unique_ptr<LocalLink> link_;
  std::vector<int> fds_;
};

// The entry of a UDP flow through the VIP names the VIP as original destination and the
// backend as reply source, with both ports.
TEST_F(ConntrackClientTest, ListsTheNatedEntryOfAUdpFlow) {
  sendFromClients(53, 1);
  ConntrackFilter f = backendFilter("10.244.6.1");
  f.originalDestinationPort = 53;
  f.replySourcePort = 5353;
  auto entries = conntrack_->list(f);
  ASSERT_TRUE(entries) << entries.error().message;
  ASSERT_EQ(entries->size(), 1u);
  const ConntrackEntry& e = entries->front();
  EXPECT_EQ(e.protocol, Protocol::kUdp);
  EXPECT_EQ(e.original.destination, ip("10.96.6.10"));
  EXPECT_EQ(e.original.destinationPort, 53);
  EXPECT_EQ(e.reply.source, ip("10.244.6.1"));
  EXPECT_EQ(e.reply.sourcePort, 5353);
  EXPECT_NE(e.id, 0u);
}

// Removing one backend's entries deletes all of them in one pipelined batch (one dump, one
// sendmsg of deletes) and leaves the other backend's entries alone.
TEST_F(ConntrackClientTest, RemovesOneBackendsEntriesInOneBatch) {
  constexpr int kClients = 40;
  sendFromClients(53, kClients);
  sendFromClients(54, 3);
  const NetlinkCounters before = conntrack_->counters();
  auto removed = conntrack_->remove(backendFilter("10.244.6.1"));
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(*removed, static_cast<size_t>(kClients));
  const NetlinkCounters& after = conntrack_->counters();
  EXPECT_EQ(after.sendCalls - before.sendCalls, 2u) << "one dump request, one delete window";
  EXPECT_EQ(after.requestsSent - before.requestsSent, 1u + kClients);

  auto gone = conntrack_->list(backendFilter("10.244.6.1"));
  ASSERT_TRUE(gone) << gone.error().message;
  EXPECT_TRUE(gone->empty());
  auto kept = conntrack_->list(backendFilter("10.244.6.2"));
  ASSERT_TRUE(kept) << kept.error().message;
  EXPECT_EQ(kept->size(), 3u);
  auto again = conntrack_->remove(backendFilter("10.244.6.1"));
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0u) << "nothing left is not an error";
}

// A filter naming no address, or an address of the other family, is refused before any
// request: it would otherwise match far more than one backend.
TEST_F(ConntrackClientTest, RefusesFiltersThatNameNoAddress) {
  ConntrackFilter any;
  auto r = conntrack_->remove(any);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  EXPECT_THAT(r.error().message, HasSubstr("a filter needs an address"));

  ConntrackFilter mixed;
  mixed.family = IpFamily::kV6;
  mixed.replySource = ip("10.244.6.1");
  auto m = conntrack_->list(mixed);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(conntrack_->counters().requestsSent, 0u);
}

}  // namespace
}  // namespace sluice::ipvs::testing
