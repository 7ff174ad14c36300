// Packet tests for bpf/host.bpf.c (tc ingress of the node's uplink), as
// data: {scenario, input frame, expected verdict, expected output frame,
// counter that must tick}, run in order through BPF_PROG_TEST_RUN against
// maps programmed by the real loader, with the node's addresses set as the
// loader's attachUplink() sets them. Outside clients talk to NodePort,
// LoadBalancer and externalIP frontends.
//
// Verdicts: a translated packet is forwarded with bpf_fib_lookup +
// bpf_redirect_neigh; under BPF_PROG_TEST_RUN the skb has no ingress device,
// so the lookup fails and the program hands the rewritten packet to the
// stack (TC_ACT_OK). The netns suite covers the redirect itself.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tests/bpf/host_cases.h"
#include "tests/bpf/lb_fixtures.h"

namespace sluice {
namespace {

using namespace sluice::testing;        // NOLINT(google-build-using-namespace)
using namespace sluice::testing::host;  // NOLINT(google-build-using-namespace)

constexpr uint32_t kOk = TC_ACT_OK;
constexpr uint32_t kDrop = TC_ACT_SHOT;
constexpr uint32_t kRedirect = TC_ACT_REDIRECT;

// bpf/xdp.bpf.c in front of bpf_host: drops early what bpf_host would
// drop, passes everything else untouched and uncounted.
std::vector<PacketCase> xdpCases() {
  std::vector<PacketCase> c;
  c.push_back({"XDP: a NodePort SYN passes to tc unchanged",
               frame(tcp(kOutside, 45000, kNode, 30080)), XDP_PASS, std::nullopt, ""});
  c.push_back({"XDP: eTP=Local with every backend elsewhere is dropped before the stack",
               frame(tcp(kOutside, 45001, kNode, 30081)), XDP_DROP, std::nullopt,
               "drop.no_local_backend"});
  c.push_back({"XDP: eTP=Local with a local backend passes",
               frame(tcp(kOutside, 45002, kNode, 30082)), XDP_PASS, std::nullopt, ""});
  c.push_back({"XDP: a service without endpoints passes (bpf_host answers with a RST)",
               frame(tcp(kOutside, 45003, kNode, 30090)), XDP_PASS, std::nullopt, ""});
  c.push_back({"XDP: non-service traffic passes", frame(tcp(kOutside, 45004, kNode, 22)),
               XDP_PASS, std::nullopt, ""});
  PacketSpec opts = tcp(kOutside, 45005, kNode, 30080);
  opts.ipv4Options = {1, 1, 1, 0};
  c.push_back({"XDP: IPv4 options on a NodePort flow: dropped", frame(opts), XDP_DROP,
               std::nullopt, "drop.ipv4_options"});
  {
    auto f = frame(udp(kOutside, 45006, kNode, 30053));
    put16(f, 14 + 20 + 4, 7);
    c.push_back({"XDP: UDP length 7 (< header): dropped", f, XDP_DROP, std::nullopt,
                 "drop.bad_udp_length"});
  }
  return c;
}

class HostPacketTest : public EbpfFixture {
 protected:
  void SetUp() override {
    SetUpMode();
    if (IsSkipped() || HasFatalFailure()) return;
    program(services());
    auto r = mode_->loadUplink({ip(kNode), ip(kNode6)});
    ASSERT_TRUE(r.ok()) << r.error().message;
  }

  TestRunResult runHost(const std::vector<uint8_t>& f) {
    return testRun(mode_->uplinkIngressFd(), f);
  }

  using EbpfFixture::runCases;
  void runCases(const std::vector<PacketCase>& cases) { runCases(mode_->uplinkIngressFd(), cases); }
};

TEST_F(HostPacketTest, OutsideTrafficCases) { runCases(serviceCases()); }

TEST_F(HostPacketTest, MalformedPacketsAreNeverRewritten) { runCases(malformedCases()); }

TEST_F(HostPacketTest, XdpDropsEarlyWhatTcWouldDropAndPassesTheRest) {
  ASSERT_GE(mode_->uplinkXdpFd(), 0);
  runCases(mode_->uplinkXdpFd(), xdpCases());
}

// A local backend answers through its pod veth: bpf_lxc reverses the SNATed
// flow bpf_host created (one pinned sl_ct for both objects).
TEST_F(HostPacketTest, LocalBackendsReplyIsReversedByLxcFromTheSameConntrack) {
  const PacketSpec syn = tcp(kOutside, 42000, kNode, 30080);
  auto r = runHost(frame(syn));
  ASSERT_EQ(r.err, 0);
  ASSERT_EQ(r.retval, kOk);
  PacketSpec synAck = tcp("10.0.1.5", 8080, kNode, 42000, kTcpSyn | kTcpAck);
  auto reply = testRun(mode_->lxcIngressFd(), frame(synAck));
  ASSERT_EQ(reply.err, 0);
  EXPECT_EQ(reply.retval, kOk);  // no FIB answer under test run: handed to the stack
  EXPECT_EQ(withoutChecksums(reply.out),
            withoutChecksums(frame(from(to(synAck, kOutside, 42000), kNode, 30080))))
      << parsePacket(reply.out).describe();
  auto bad = checksumError(reply.out);
  EXPECT_FALSE(bad) << *bad;
}

// Two clients using the same source port towards one backend would share a
// reply tuple after SNAT: the second flow gets another port, and replies to
// each port go back to the right client.
TEST_F(HostPacketTest, SnatPortCollisionPicksAnotherPortAndRepliesFindTheirClient) {
  const PacketSpec a = tcp("203.0.113.50", 43000, kNode, 30080);
  const PacketSpec b = tcp("203.0.113.51", 43000, kNode, 30080);
  auto ra = runHost(frame(a));
  auto rb = runHost(frame(b));
  ASSERT_EQ(ra.err, 0);
  ASSERT_EQ(rb.err, 0);
  const PacketView va = parsePacket(ra.out), vb = parsePacket(rb.out);
  EXPECT_EQ(va.sport, 43000);
  EXPECT_NE(vb.sport, 43000);
  EXPECT_GE(vb.sport, 32768);
  EXPECT_LT(vb.sport, 61000);
  EXPECT_FALSE(checksumError(rb.out));
  for (const auto& [port, client] : {std::pair<uint16_t, const char*>{va.sport, "203.0.113.50"},
                                     {vb.sport, "203.0.113.51"}}) {
    auto reply = runHost(frame(tcp("10.0.1.5", 8080, kNode, port, kTcpSyn | kTcpAck)));
    ASSERT_EQ(reply.err, 0);
    const PacketView v = parsePacket(reply.out);
    EXPECT_EQ(v.dst.toString(), client) << "reply to SNAT port " << port;
    EXPECT_EQ(v.dport, 43000);
    EXPECT_EQ(v.src.toString(), kNode);
    EXPECT_EQ(v.sport, 30080);
  }
}

// A client whose port is itself a NodePort of the node address: keeping it
// as the SNAT port would make the backend's reply (to node:30080) look like
// a new request to that NodePort, so another port is taken.
TEST_F(HostPacketTest, SnatNeverUsesAPortThatIsAFrontendOfTheNodeAddress) {
  auto r = runHost(frame(tcp("203.0.113.60", 30080, kNode, 30080)));
  ASSERT_EQ(r.err, 0);
  const PacketView v = parsePacket(r.out);
  EXPECT_EQ(v.src.toString(), kNode);
  EXPECT_NE(v.sport, 30080);
  EXPECT_FALSE(checksumError(r.out));
}

// eTP=Cluster spreads outside clients over every backend, wherever it runs.
TEST_F(HostPacketTest, ClusterPolicySpreadsOutsideClientsOverAllBackends) {
  ServiceTable t;
  ASSERT_TRUE(t.upsert(service("spread", Protocol::kTcp, {nodePort(kNode, 31000)},
                               {backend("10.0.7.1", 80, BackendState::kActive, true),
                                backend("10.0.7.2", 80), backend("10.0.7.3", 80)}))
                  .ok());
  program(t);
  std::set<std::string> seen;
  for (uint16_t port = 44000; port < 44064; ++port) {
    auto r = runHost(frame(tcp(kOutside, port, kNode, 31000)));
    ASSERT_EQ(r.err, 0);
    seen.insert(parsePacket(r.out).dst.toString());
  }
  EXPECT_EQ(seen.size(), 3u);
}

}  // namespace
}  // namespace sluice
