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

#include "tests/bpf/lb_fixtures.h"

namespace sluice {
namespace {

using namespace sluice::testing;  // NOLINT(google-build-using-namespace)

constexpr uint32_t kOk = TC_ACT_OK;
constexpr uint32_t kDrop = TC_ACT_SHOT;
constexpr uint32_t kRedirect = TC_ACT_REDIRECT;

// This node's uplink addresses (SNAT sources) and an outside client.
constexpr const char* kNode = "192.168.1.10";
constexpr const char* kNode6 = "fd00:c0a8::10";
constexpr const char* kOutside = "203.0.113.7";
constexpr const char* kOutside6 = "2001:db8::7";
constexpr const char* kLbIp = "198.51.100.10";
constexpr const char* kExternalIp = "198.51.100.20";

std::vector<uint8_t> frame(const PacketSpec& s) { return buildPacket(s); }

PacketSpec to(PacketSpec s, const char* addr, uint16_t port) {
  s.dst = ip(addr);
  s.dport = port;
  return s;
}
PacketSpec from(PacketSpec s, const char* addr, uint16_t port) {
  s.src = ip(addr);
  s.sport = port;
  return s;
}

Frontend nodePort(const char* addr, uint16_t port, Protocol proto = Protocol::kTcp) {
  return frontend(addr, port, proto, FrontendScope::kNodePort);
}

ServiceTable caseServices() {
  ServiceTable t;
  auto add = [&t](Service s) { EXPECT_TRUE(t.upsert(std::move(s)).ok()); };
  add(service("np", Protocol::kTcp, {nodePort(kNode, 30080), nodePort(kNode6, 30080)},
              {backend("10.0.1.5", 8080), backend("fd00:1::5", 8080)}));
  add(service("np-udp", Protocol::kUdp, {nodePort(kNode, 30053, Protocol::kUdp)},
              {backend("10.0.1.7", 5353)}));
  Service remoteOnly = service("np-local-remote", Protocol::kTcp, {nodePort(kNode, 30081)},
                               {backend("10.0.2.44", 8080)});
  remoteOnly.externalPolicy = TrafficPolicy::kLocal;
  add(remoteOnly);
  Service here = service("np-local", Protocol::kTcp, {nodePort(kNode, 30082)},
                         {backend("10.0.1.45", 8080, BackendState::kActive, true),
                          backend("10.0.2.46", 8080)});
  here.externalPolicy = TrafficPolicy::kLocal;
  add(here);
  add(service("lb", Protocol::kTcp,
              {frontend(kLbIp, 80, Protocol::kTcp, FrontendScope::kLoadBalancer)},
              {backend("10.0.1.8", 8080)}));
  add(service("ext", Protocol::kTcp,
              {frontend(kExternalIp, 80, Protocol::kTcp, FrontendScope::kExternalIp)},
              {backend("10.0.1.9", 8080)}));
  add(service("empty", Protocol::kTcp, {nodePort(kNode, 30090)}, {}));
  add(service("cip", Protocol::kTcp, {frontend("10.96.0.10", 80)}, {backend("10.0.1.5", 8080)}));
  return t;
}

std::vector<PacketCase> serviceCases() {
  std::vector<PacketCase> c;
  const PacketSpec syn = tcp(kOutside, 40000, kNode, 30080);
  c.push_back({"NodePort eTP=Cluster SYN: DNAT to the backend and SNAT to the node address",
               frame(syn), kOk, frame(from(to(syn, "10.0.1.5", 8080), kNode, 40000)),
               "event.snat"});
  PacketSpec data = syn;
  data.tcpFlags = kTcpAck | kTcpPsh;
  data.payload = {'G', 'E', 'T', '\r', '\n'};
  c.push_back({"the flow's next segment takes the same translation", frame(data), kOk,
               frame(from(to(data, "10.0.1.5", 8080), kNode, 40000)), "event.svc_established"});
  PacketSpec synAck = tcp("10.0.1.5", 8080, kNode, 40000, kTcpSyn | kTcpAck);
  synAck.ack = 1001;
  c.push_back({"a remote backend's SYN-ACK on the uplink is reversed to the client",
               frame(synAck), kOk, frame(from(to(synAck, kOutside, 40000), kNode, 30080)),
               "event.rev_nat"});

  const PacketSpec syn6 = tcp(kOutside6, 40000, kNode6, 30080);
  c.push_back({"IPv6 NodePort eTP=Cluster SYN: DNAT + SNAT to the node's IPv6 address",
               frame(syn6), kOk, frame(from(to(syn6, "fd00:1::5", 8080), kNode6, 40000)),
               "event.snat"});
  const PacketSpec synAck6 = tcp("fd00:1::5", 8080, kNode6, 40000, kTcpSyn | kTcpAck);
  c.push_back({"IPv6 reply reversed to the client", frame(synAck6), kOk,
               frame(from(to(synAck6, kOutside6, 40000), kNode6, 30080)), "event.rev_nat"});

  const PacketSpec query = udp(kOutside, 5000, kNode, 30053);
  c.push_back({"NodePort UDP datagram: DNAT + SNAT", frame(query), kOk,
               frame(from(to(query, "10.0.1.7", 5353), kNode, 5000)), "event.svc_new"});
  const PacketSpec answer = udp("10.0.1.7", 5353, kNode, 5000);
  c.push_back({"the UDP answer is reversed", frame(answer), kOk,
               frame(from(to(answer, kOutside, 5000), kNode, 30053)), "event.rev_nat"});
  PacketSpec noCsum = udp(kOutside, 5001, kNode, 30053);
  noCsum.udpZeroChecksum = true;
  c.push_back({"IPv4 UDP without a checksum keeps checksum 0 through DNAT + SNAT", frame(noCsum),
               kOk, frame(from(to(noCsum, "10.0.1.7", 5353), kNode, 5001)), "event.svc_new"});

  const PacketSpec local = tcp(kOutside, 40001, kNode, 30082);
  c.push_back({"eTP=Local: only the node-local backend, client address kept (no SNAT)",
               frame(local), kOk, frame(to(local, "10.0.1.45", 8080)), "event.svc_new"});
  c.push_back({"eTP=Local with every backend on other nodes: dropped and counted",
               frame(tcp(kOutside, 40002, kNode, 30081)), kDrop, std::nullopt,
               "drop.no_local_backend"});

  const PacketSpec toLb = tcp(kOutside, 40003, kLbIp, 80);
  c.push_back({"LoadBalancer ingress IP: DNAT + SNAT", frame(toLb), kOk,
               frame(from(to(toLb, "10.0.1.8", 8080), kNode, 40003)), "event.svc_new"});
  const PacketSpec lbReply = tcp("10.0.1.8", 8080, kNode, 40003, kTcpSyn | kTcpAck);
  c.push_back({"the LoadBalancer reply comes from the LoadBalancer IP", frame(lbReply), kOk,
               frame(from(to(lbReply, kOutside, 40003), kLbIp, 80)), "event.rev_nat"});
  const PacketSpec toExt = tcp(kOutside, 40004, kExternalIp, 80);
  c.push_back({"externalIP: DNAT + SNAT", frame(toExt), kOk,
               frame(from(to(toExt, "10.0.1.9", 8080), kNode, 40004)), "event.svc_new"});

  const PacketSpec refused = tcp(kOutside, 40005, kNode, 30090);
  PacketSpec rst = tcp(kNode, 30090, kOutside, 40005, kTcpRst | kTcpAck);
  rst.seq = 0;
  rst.ack = 1001;
  rst.window = 0;
  rst.srcMac = refused.dstMac;
  rst.dstMac = refused.srcMac;
  c.push_back({"NodePort with no endpoints: RST+ACK from the node back out of the uplink",
               frame(refused), kRedirect, frame(rst), "event.reject_tcp_rst"});

  c.push_back({"a ClusterIP is not served from outside: passed unchanged",
               frame(tcp(kOutside, 40006, "10.96.0.10", 80)), kOk, std::nullopt,
               "event.pass_non_service"});
  c.push_back({"traffic to the node itself (SSH) passes unchanged",
               frame(tcp(kOutside, 40007, kNode, 22)), kOk, std::nullopt,
               "event.pass_non_service"});
  return c;
}

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

std::vector<PacketCase> malformedCases() {
  std::vector<PacketCase> c;
  constexpr size_t l3 = 14;
  PacketSpec opts = tcp(kOutside, 41000, kNode, 30080);
  opts.ipv4Options = {1, 1, 1, 0};
  c.push_back({"IPv4 options on a NodePort flow: dropped, not rewritten", frame(opts), kDrop,
               std::nullopt, "drop.ipv4_options"});
  PacketSpec frag = udp(kOutside, 41001, kNode, 30053);
  frag.ipv4Frag = 0x2000;
  c.push_back({"first IPv4 fragment of a NodePort datagram: dropped", frame(frag), kDrop,
               std::nullopt, "drop.fragment"});
  {
    auto f = frame(tcp(kOutside, 41002, kNode, 30080));
    f.resize(l3 + 20 + 10);
    put16(f, l3 + 2, 30);
    setIpv4HeaderChecksum(f);
    c.push_back({"TCP header cut at 10 bytes", f, kDrop, std::nullopt, "drop.truncated_l4"});
  }
  {
    auto f = frame(udp(kOutside, 41003, kNode, 30053));
    put16(f, l3 + 20 + 4, 7);
    c.push_back({"UDP length 7 (< header)", f, kDrop, std::nullopt, "drop.bad_udp_length"});
  }
  {
    auto f = frame(tcp(kOutside, 41004, kNode, 30080));
    put16(f, l3 + 2, static_cast<uint16_t>(f.size() - l3 + 1));
    setIpv4HeaderChecksum(f);
    c.push_back({"IPv4 total length past the frame", f, kDrop, std::nullopt,
                 "drop.bad_ip_total_length"});
  }
  return c;
}

class HostPacketTest : public EbpfFixture {
 protected:
  void SetUp() override {
    SetUpMode();
    if (IsSkipped() || HasFatalFailure()) return;
    program(caseServices());
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
