// EbpfMode against real pinned maps: what sync() and apply() write, that an
// endpoint change touches only its own service's entries, that a restarted
// agent adopts the pinned maps (and conntrack) without rewriting anything,
// and tc attachment.
#include "bpf/loader/ebpf_mode.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "bpf/loader/tc_attach.h"
#include "tests/bpf/cgroup.h"
#include "dataplane/maglev.h"
#include "dataplane/service_diff.h"
#include "tests/bpf/lb_fixtures.h"

namespace sluice {
namespace {

using namespace sluice::testing;  // NOLINT(google-build-using-namespace)

std::vector<Backend> backendsIn(int subnet, int n, uint16_t port = 8080) {
  std::vector<Backend> out;
  for (int i = 1; i <= n; ++i) {
    const std::string a = "10.1." + std::to_string(subnet) + "." + std::to_string(i);
    out.push_back(backend(a.c_str(), port));
  }
  return out;
}

// The segment after the handshake, for an established flow.
PacketSpec withPayloadAck(PacketSpec s) {
  s.tcpFlags = kTcpAck | kTcpPsh;
  s.seq = 1001;
  s.ack = 1;
  s.payload = {'h', 'i'};
  return s;
}

Service web(const std::string& name, const char* vip, int subnet, int n) {
  return service(name, Protocol::kTcp, {frontend(vip, 80)}, backendsIn(subnet, n));
}

class EbpfModeTest : public EbpfFixture {
 protected:
  void SetUp() override { SetUpMode(); }

  EbpfDump dumpNow() {
    auto d = mode_->dump();
    EXPECT_TRUE(d.ok()) << d.error().message;
    return d.ok() ? std::move(*d) : EbpfDump{};
  }

  // map.writes / map.deletes since the last call.
  std::pair<uint64_t, uint64_t> opsSince() {
    const uint64_t w = counter("map.writes");
    const uint64_t d = counter("map.deletes");
    std::pair<uint64_t, uint64_t> delta{w - lastWrites_, d - lastDeletes_};
    lastWrites_ = w;
    lastDeletes_ = d;
    return delta;
  }

  void applyChange(ServiceTable& table, const ServiceTable& next) {
    auto r = mode_->apply(ServiceDiff::between(table, next));
    ASSERT_TRUE(r.ok()) << r.error().message;
    table = next;
  }

  uint32_t svcIdOf(const EbpfDump& d, const Frontend& f) {
    auto it = d.services.find(bpf::frontendKey(f));
    return it == d.services.end() ? 0 : it->second.svc_id;
  }

  uint64_t lastWrites_ = 0;
  uint64_t lastDeletes_ = 0;
};

// Entries of `d` that belong to service id `svcId` (any of its sets).
struct ServiceEntries {
  std::map<sl_svc_key, sl_svc_value, bpf::BytesLess> services;
  std::map<sl_slot_key, uint32_t, bpf::BytesLess> slots;
  std::map<uint32_t, std::vector<uint8_t>> backends;
  std::map<uint32_t, std::vector<uint32_t>> maglev;
  bool operator==(const ServiceEntries& o) const {
    auto eqServices = std::equal(services.begin(), services.end(), o.services.begin(),
                                 o.services.end(), [](const auto& a, const auto& b) {
                                   return bpf::bytesEqual(a.first, b.first) &&
                                          bpf::bytesEqual(a.second, b.second);
                                 });
    auto eqSlots = std::equal(slots.begin(), slots.end(), o.slots.begin(), o.slots.end(),
                              [](const auto& a, const auto& b) {
                                return bpf::bytesEqual(a.first, b.first) && a.second == b.second;
                              });
    return eqServices && eqSlots && backends == o.backends && maglev == o.maglev;
  }
};

ServiceEntries entriesOf(const EbpfDump& d, uint32_t svcId) {
  ServiceEntries e;
  for (const auto& [k, v] : d.services) {
    if (v.svc_id == svcId) e.services[k] = v;
  }
  for (const auto& [k, v] : d.slots) {
    if ((k.set_id & SL_SVC_ID_MASK) == svcId) e.slots[k] = v;
  }
  for (const auto& [id, v] : d.backends) {
    if (v.svc_id == svcId) {
      const auto* p = reinterpret_cast<const uint8_t*>(&v);
      e.backends[id].assign(p, p + sizeof(v));
    }
  }
  for (const auto& [sid, ids] : d.maglev) {
    if ((sid & SL_SVC_ID_MASK) == svcId) e.maglev[sid] = ids;
  }
  return e;
}

TEST_F(EbpfModeTest, SyncProgramsFrontendsSlotsBackendsAndMaglevTables) {
  if (IsSkipped()) return;
  ServiceTable t;
  ASSERT_TRUE(t.upsert(web("web", "10.96.0.10", 1, 3)).ok());
  Service mag = web("mag", "10.96.0.11", 2, 2);
  mag.algorithm = LbAlgorithm::kMaglev;
  mag.maglevTableSize = 7;
  mag.affinity.clientIp = true;
  mag.affinity.timeoutSeconds = 300;
  ASSERT_TRUE(t.upsert(mag).ok());
  program(t);

  const EbpfDump d = dumpNow();
  ASSERT_EQ(d.services.size(), 2u);
  const sl_svc_value& w = d.services.at(bpf::frontendKey(frontend("10.96.0.10", 80)));
  EXPECT_EQ(w.active_count, 3);
  EXPECT_EQ(w.terminating_count, 0);
  EXPECT_EQ(w.flags, SL_SVC_F_CLUSTER_IP);
  const sl_svc_value& m = d.services.at(bpf::frontendKey(frontend("10.96.0.11", 80)));
  EXPECT_EQ(m.flags, SL_SVC_F_CLUSTER_IP | SL_SVC_F_MAGLEV | SL_SVC_F_AFFINITY);
  EXPECT_EQ(m.maglev_size, 7u);
  EXPECT_EQ(m.affinity_timeout_s, 300u);
  EXPECT_NE(w.svc_id, m.svc_id);

  EXPECT_EQ(d.backends.size(), 5u);
  EXPECT_EQ(d.slots.size(), 3u) << "slots only for the random service";
  for (const auto& [k, id] : d.slots) {
    EXPECT_EQ(k.set_id, w.svc_id);
    EXPECT_LT(k.slot, 3u);
    EXPECT_EQ(d.backends.at(id).svc_id, w.svc_id);
  }
  ASSERT_EQ(d.maglev.size(), 1u);
  const auto& table = d.maglev.at(m.svc_id);
  ASSERT_EQ(table.size(), 7u);
  for (uint32_t id : table) EXPECT_EQ(d.backends.at(id).svc_id, m.svc_id);

  const ProxyStats s = mode_->stats();
  EXPECT_EQ(s.services, 2u);
  EXPECT_EQ(s.frontends, 2u);
  EXPECT_EQ(s.backends, 5u);
  EXPECT_EQ(s.counters.count("drop.no_backend"), 1u);
}

TEST_F(EbpfModeTest, OneEndpointChangeTouchesOnlyThatServicesEntries) {
  if (IsSkipped()) return;
  ServiceTable t;
  ASSERT_TRUE(t.upsert(web("a", "10.96.0.1", 1, 10)).ok());
  ASSERT_TRUE(t.upsert(web("b", "10.96.0.2", 2, 10)).ok());
  ASSERT_TRUE(t.upsert(web("c", "10.96.0.3", 3, 10)).ok());
  program(t);
  opsSince();
  const EbpfDump before = dumpNow();
  const uint32_t a = svcIdOf(before, frontend("10.96.0.1", 80));
  const uint32_t b = svcIdOf(before, frontend("10.96.0.2", 80));
  const uint32_t c = svcIdOf(before, frontend("10.96.0.3", 80));

  // Add one endpoint to b: its backend, one slot, its frontend's count.
  ServiceTable next = t;
  Service b2 = *t.find({"default", "b", ""});
  b2.backends.push_back(backend("10.1.2.99", 8080));
  ASSERT_TRUE(next.upsert(b2).ok());
  applyChange(t, next);
  EXPECT_EQ(opsSince(), (std::pair<uint64_t, uint64_t>{3, 0}));
  EbpfDump after = dumpNow();
  EXPECT_TRUE(entriesOf(after, a) == entriesOf(before, a));
  EXPECT_TRUE(entriesOf(after, c) == entriesOf(before, c));
  EXPECT_EQ(after.services.at(bpf::frontendKey(frontend("10.96.0.2", 80))).active_count, 11);

  // Remove one of b's first endpoints: the last slot's backend takes its
  // slot (one write), the count drops (one write), the last slot and the
  // backend go (two deletes). No other slot moves.
  const EbpfDump mid = after;
  Service b3 = b2;
  b3.backends.erase(b3.backends.begin() + 2);
  next = t;
  ASSERT_TRUE(next.upsert(b3).ok());
  applyChange(t, next);
  EXPECT_EQ(opsSince(), (std::pair<uint64_t, uint64_t>{2, 2}));
  after = dumpNow();
  EXPECT_TRUE(entriesOf(after, a) == entriesOf(before, a));
  EXPECT_TRUE(entriesOf(after, c) == entriesOf(before, c));
  int moved = 0;
  for (const auto& [k, id] : entriesOf(after, b).slots) {
    if (mid.slots.at(k) != id) ++moved;
  }
  EXPECT_EQ(moved, 1);
  EXPECT_EQ(entriesOf(after, b).slots.size(), 10u);

  // An unchanged re-apply writes nothing.
  applyChange(t, t);
  EXPECT_EQ(opsSince(), (std::pair<uint64_t, uint64_t>{0, 0}));
}

TEST_F(EbpfModeTest, MaglevEndpointChangeRewritesOnlyTheChangedSlots) {
  if (IsSkipped()) return;
  ServiceTable t;
  Service m = web("mag", "10.96.0.5", 5, 10);
  m.algorithm = LbAlgorithm::kMaglev;
  m.maglevTableSize = 1009;
  ASSERT_TRUE(t.upsert(m).ok());
  ASSERT_TRUE(t.upsert(web("other", "10.96.0.6", 6, 10)).ok());
  program(t);
  opsSince();
  const EbpfDump before = dumpNow();
  const uint32_t id = svcIdOf(before, frontend("10.96.0.5", 80));
  const uint32_t other = svcIdOf(before, frontend("10.96.0.6", 80));

  // What the builder says changes when one backend goes.
  auto builder = MaglevBuilder::create(1009);
  ASSERT_TRUE(builder.ok());
  std::vector<MaglevBackend> keys;
  for (const Backend& b : m.backends) keys.push_back({bpf::maglevBackendKey(b), 1});
  auto old = builder->build(keys);
  ASSERT_TRUE(old.ok());
  keys.erase(keys.begin() + 4);
  auto update = builder->rebuild(*old, keys);
  ASSERT_TRUE(update.ok());

  Service m2 = m;
  m2.backends.erase(m2.backends.begin() + 4);
  ServiceTable next = t;
  ASSERT_TRUE(next.upsert(m2).ok());
  applyChange(t, next);
  // Changed slots + the frontend's count; the backend deleted.
  EXPECT_EQ(opsSince(), (std::pair<uint64_t, uint64_t>{update->changedSlots.size() + 1, 1}));
  const EbpfDump after = dumpNow();
  const auto& was = before.maglev.at(id);
  const auto& now = after.maglev.at(id);
  size_t differ = 0;
  for (size_t s = 0; s < now.size(); ++s) differ += was[s] != now[s];
  EXPECT_EQ(differ, update->changedSlots.size());
  EXPECT_LT(differ, now.size() / 3)
      << "one of ten backends: ~1/10 of the slots, plus Maglev's disruption";
  EXPECT_TRUE(entriesOf(after, other) == entriesOf(before, other));
}

TEST_F(EbpfModeTest, RemovingAServiceDeletesAllItsEntries) {
  if (IsSkipped()) return;
  ServiceTable t;
  ASSERT_TRUE(t.upsert(web("a", "10.96.0.1", 1, 4)).ok());
  Service m = web("mag", "10.96.0.5", 5, 3);
  m.algorithm = LbAlgorithm::kMaglev;
  m.maglevTableSize = 13;
  ASSERT_TRUE(t.upsert(m).ok());
  program(t);
  const EbpfDump before = dumpNow();
  const uint32_t a = svcIdOf(before, frontend("10.96.0.1", 80));

  ServiceTable next = t;
  ASSERT_TRUE(next.erase({"default", "mag", ""}));
  applyChange(t, next);
  const EbpfDump after = dumpNow();
  EXPECT_EQ(after.services.size(), 1u);
  EXPECT_TRUE(after.maglev.empty());
  EXPECT_EQ(after.backends.size(), 4u);
  EXPECT_TRUE(entriesOf(after, a) == entriesOf(before, a));
  EXPECT_EQ(mode_->stats().services, 1u);
}

TEST_F(EbpfModeTest, FrontendMovingBetweenServicesInOneDiffStaysProgrammed) {
  if (IsSkipped()) return;
  // "a" (key order first) gains the frontend that "b" loses in the same diff.
  ServiceTable t;
  ASSERT_TRUE(t.upsert(web("a", "10.96.0.1", 1, 2)).ok());
  ASSERT_TRUE(
      t.upsert(service("b", Protocol::kTcp, {frontend("10.96.0.2", 80), frontend("10.96.0.9", 80)},
                       backendsIn(2, 2)))
          .ok());
  program(t);
  ServiceTable next;
  ASSERT_TRUE(
      next.upsert(service("a", Protocol::kTcp,
                          {frontend("10.96.0.1", 80), frontend("10.96.0.9", 80)}, backendsIn(1, 2)))
          .ok());
  ASSERT_TRUE(next.upsert(web("b", "10.96.0.2", 2, 2)).ok());
  applyChange(t, next);
  const EbpfDump d = dumpNow();
  EXPECT_EQ(svcIdOf(d, frontend("10.96.0.9", 80)), svcIdOf(d, frontend("10.96.0.1", 80)));
  EXPECT_EQ(d.services.size(), 3u);
}

TEST_F(EbpfModeTest, FullSyncAfterRestartAdoptsPinnedMapsAndConntrack) {
  if (IsSkipped()) return;
  ServiceTable t;
  ASSERT_TRUE(t.upsert(web("web", "10.96.0.10", 1, 5)).ok());
  Service m = web("mag", "10.96.0.11", 2, 3);
  m.algorithm = LbAlgorithm::kMaglev;
  m.maglevTableSize = 31;
  ASSERT_TRUE(t.upsert(m).ok());
  program(t);

  // An established flow: its first packet picks a backend and writes ct.
  const PacketSpec syn = tcp("10.0.0.2", 40000, "10.96.0.10", 80);
  const PacketView first = sendAndView(syn);
  const EbpfDump before = dumpNow();
  ASSERT_EQ(before.conntrack.size(), 2u) << "service and reply entries";
  const uint64_t newFlows = counter("event.svc_new");

  // The agent goes away (its tc attachments would stay) and comes back.
  const EbpfOptions options = mode_->options();
  mode_.reset();
  auto again = EbpfMode::create(options);
  ASSERT_TRUE(again.ok()) << again.error().message;
  mode_ = std::move(*again);
  lastWrites_ = lastDeletes_ = 0;
  program(t);
  EXPECT_EQ(opsSince(), (std::pair<uint64_t, uint64_t>{0, 0})) << "nothing to rewrite";

  const EbpfDump after = dumpNow();
  for (uint32_t id :
       {svcIdOf(before, frontend("10.96.0.10", 80)), svcIdOf(before, frontend("10.96.0.11", 80))}) {
    EXPECT_TRUE(entriesOf(after, id) == entriesOf(before, id)) << "service id " << id;
  }
  EXPECT_EQ(after.conntrack.size(), 2u);
  EXPECT_EQ(counter("event.svc_new"), newFlows) << "counters are pinned too";

  // The flow continues to its backend through the new program instance.
  const uint64_t established = counter("event.svc_established");
  const PacketView next = sendAndView(withPayloadAck(syn));
  EXPECT_EQ(next.dst, first.dst);
  EXPECT_EQ(next.dport, first.dport);
  EXPECT_EQ(counter("event.svc_established"), established + 1);

  // A later apply still knows the adopted ids: one new endpoint, 3 writes.
  ServiceTable grown = t;
  Service w = *t.find({"default", "web", ""});
  w.backends.push_back(backend("10.1.1.200", 8080));
  ASSERT_TRUE(grown.upsert(w).ok());
  applyChange(t, grown);
  EXPECT_EQ(opsSince(), (std::pair<uint64_t, uint64_t>{3, 0}));
}

TEST_F(EbpfModeTest, FullSyncAfterRestartDeletesWhatTheTableNoLongerHas) {
  if (IsSkipped()) return;
  ServiceTable t;
  ASSERT_TRUE(t.upsert(web("keep", "10.96.0.1", 1, 3)).ok());
  ASSERT_TRUE(t.upsert(web("gone", "10.96.0.2", 2, 3)).ok());
  Service m = web("gone-mag", "10.96.0.3", 3, 2);
  m.algorithm = LbAlgorithm::kMaglev;
  m.maglevTableSize = 11;
  ASSERT_TRUE(t.upsert(m).ok());
  program(t);
  const EbpfDump before = dumpNow();
  const uint32_t keep = svcIdOf(before, frontend("10.96.0.1", 80));

  const EbpfOptions options = mode_->options();
  mode_.reset();
  auto again = EbpfMode::create(options);
  ASSERT_TRUE(again.ok()) << again.error().message;
  mode_ = std::move(*again);
  ServiceTable smaller;
  ASSERT_TRUE(smaller.upsert(*t.find({"default", "keep", ""})).ok());
  program(smaller);

  const EbpfDump after = dumpNow();
  EXPECT_EQ(after.services.size(), 1u);
  EXPECT_EQ(after.backends.size(), 3u);
  EXPECT_EQ(after.slots.size(), 3u);
  EXPECT_TRUE(after.maglev.empty());
  EXPECT_TRUE(entriesOf(after, keep) == entriesOf(before, keep));
}

TEST_F(EbpfModeTest, PinnedMapOfAnotherSizeIsNotSilentlyReplaced) {
  if (IsSkipped()) return;
  EbpfOptions options = mode_->options();
  mode_.reset();
  options.maxConntrack = 4096;
  auto other = EbpfMode::create(options);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(other.error().message.find("sl_ct"), std::string::npos) << other.error().message;
  EXPECT_NE(other.error().message.find("max_entries"), std::string::npos);
}

TEST(EbpfModeCreateTest, PinDirOutsideBpffsIsRefused) {
  char dir[] = "/tmp/sluice-notbpffs-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  EbpfOptions options;
  options.pinDir = dir;
  auto m = EbpfMode::create(options);
  ::rmdir(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(m.error().message.find("not on a bpf filesystem"), std::string::npos);
}

// ---------------------------------------------------------------------------
// tc attachment, in a private network namespace so no real interface is
// touched: the program on loopback's ingress balances a real UDP exchange.

class ScopedNetns {
 public:
  ScopedNetns() {
    original_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    ok_ = original_ >= 0 && ::unshare(CLONE_NEWNET) == 0;
  }
  ~ScopedNetns() {
    if (original_ >= 0) {
      if (ok_) (void)::setns(original_, CLONE_NEWNET);
      ::close(original_);
    }
  }
  bool ok() const { return ok_; }

 private:
  int original_ = -1;
  bool ok_ = false;
};

// One UDP exchange through ClusterIP 10.96.7.1:53 whose backend is
// 127.0.0.1:5353, from a client bound to clientIp. Returns what the backend
// saw as the client's address.
std::string udpExchangeThroughClusterIp(const char* clientIp) {
  const int server = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const int client = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(server, 0);
  EXPECT_GE(client, 0);
  timeval tv{2, 0};
  ::setsockopt(server, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in backendAddr{};
  backendAddr.sin_family = AF_INET;
  backendAddr.sin_port = htons(5353);
  backendAddr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(server, reinterpret_cast<sockaddr*>(&backendAddr), sizeof(backendAddr)), 0);
  // The client binds its address explicitly (a route via lo alone would
  // give it source 0.0.0.0) and connects: it then accepts answers only from
  // the ClusterIP itself, so receiving one proves the reverse NAT.
  sockaddr_in clientAddr{};
  clientAddr.sin_family = AF_INET;
  ::inet_pton(AF_INET, clientIp, &clientAddr.sin_addr);
  EXPECT_EQ(::bind(client, reinterpret_cast<sockaddr*>(&clientAddr), sizeof(clientAddr)), 0);
  sockaddr_in vip{};
  vip.sin_family = AF_INET;
  vip.sin_port = htons(53);
  ::inet_pton(AF_INET, "10.96.7.1", &vip.sin_addr);
  EXPECT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&vip), sizeof(vip)), 0);
  EXPECT_EQ(::send(client, "ping", 4, 0), 4);

  std::string seen;
  char buf[16] = {};
  sockaddr_in from{};
  socklen_t fromLen = sizeof(from);
  if (::recvfrom(server, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &fromLen) == 4) {
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &from.sin_addr, text, sizeof(text));
    seen = text;
    EXPECT_EQ(::sendto(server, "pong", 4, 0, reinterpret_cast<sockaddr*>(&from), fromLen), 4);
    EXPECT_EQ(::recv(client, buf, sizeof(buf), 0), 4) << "the reply was not reverse-NATed";
    EXPECT_EQ(std::string(buf, 4), "pong");
  } else {
    ADD_FAILURE() << "the backend got nothing: DNAT or checksum failed";
  }
  ::close(server);
  ::close(client);
  return seen;
}

TEST_F(EbpfModeTest, AttachedToLoopbackItBalancesRealUdpExchangesIncludingHairpin) {
  if (IsSkipped()) return;
  ScopedNetns ns;
  if (!ns.ok()) GTEST_SKIP() << "cannot create a network namespace";
  // lo stands in for a pod's veth; 169.254.42.1 (the hairpin source) must
  // route back through it as it does through a pod's default route.
  ASSERT_EQ(std::system("ip link set lo up && ip addr add 10.0.7.2/32 dev lo && "
                        "ip route add 10.96.7.0/24 dev lo && ip route add 169.254.42.1 dev lo"),
            0);
  const int lo = static_cast<int>(if_nametoindex("lo"));
  ASSERT_GT(lo, 0);

  ServiceTable t;
  ASSERT_TRUE(t.upsert(service("dns", Protocol::kUdp, {frontend("10.96.7.1", 53, Protocol::kUdp)},
                               {backend("127.0.0.1", 5353)}))
                  .ok());
  program(t);
  auto attached = mode_->attachLxc(lo);
  ASSERT_TRUE(attached.ok()) << attached.error().message;
  auto id = bpf::tcAttachedProgramId(lo, bpf::TcDirection::kIngress);
  ASSERT_TRUE(id.ok());
  EXPECT_NE(*id, 0u);

  // A client other than the backend: DNAT there, reverse NAT back; the
  // kernel's checksum offload (CHECKSUM_PARTIAL on lo) is in play.
  EXPECT_EQ(udpExchangeThroughClusterIp("10.0.7.2"), "10.0.7.2");
  // The backend reaching itself: the source becomes the hairpin address.
  const uint64_t hairpins = counter("event.hairpin");
  EXPECT_EQ(udpExchangeThroughClusterIp("127.0.0.1"), "169.254.42.1");
  EXPECT_EQ(counter("event.hairpin"), hairpins + 1);

  ASSERT_TRUE(mode_->detachLxc(lo).ok());
  auto gone = bpf::tcAttachedProgramId(lo, bpf::TcDirection::kIngress);
  ASSERT_TRUE(gone.ok());
  EXPECT_EQ(*gone, 0u);
}


// ---------------------------------------------------------------------------
// cgroup socket hooks: pinned links, replaced in place by a restarted agent.

constexpr bpf_attach_type kSockHooks[] = {
    BPF_CGROUP_INET4_CONNECT,     BPF_CGROUP_INET6_CONNECT,     BPF_CGROUP_UDP4_SENDMSG,
    BPF_CGROUP_UDP6_SENDMSG,      BPF_CGROUP_UDP4_RECVMSG,      BPF_CGROUP_UDP6_RECVMSG,
    BPF_CGROUP_INET4_GETPEERNAME, BPF_CGROUP_INET6_GETPEERNAME,
};

// The programs attached to each socket hook of the cgroup, by hook.
std::vector<std::vector<uint32_t>> attachedPrograms(const std::string& cgroup) {
  std::vector<std::vector<uint32_t>> out;
  const int fd = ::open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  EXPECT_GE(fd, 0);
  for (bpf_attach_type hook : kSockHooks) {
    uint32_t ids[16] = {};
    uint32_t count = 16;
    EXPECT_EQ(bpf_prog_query(fd, hook, 0, nullptr, ids, &count), 0);
    out.emplace_back(ids, ids + count);
  }
  ::close(fd);
  return out;
}

TEST_F(EbpfModeTest, CgroupHooksArePinnedLinksThatARestartReplacesInPlace) {
  if (IsSkipped()) return;
  ScopedCgroup cg;
  if (!cg.ok()) GTEST_SKIP() << cg.error();

  auto attached = mode_->attachCgroup(cg.path());
  ASSERT_TRUE(attached.ok()) << attached.error().message;
  auto dir = mode_->cgroupLinkDir(cg.path());
  ASSERT_TRUE(dir.ok()) << dir.error().message;
  size_t pins = 0;
  for (const auto& entry : std::filesystem::directory_iterator(*dir)) pins += entry.exists();
  EXPECT_EQ(pins, std::size(kSockHooks)) << "one pinned link per hook in " << *dir;
  const auto first = attachedPrograms(cg.path());
  for (const auto& ids : first) EXPECT_EQ(ids.size(), 1u);

  // The agent exits: the pinned links keep the hooks attached.
  mode_.reset();
  EXPECT_EQ(attachedPrograms(cg.path()), first);

  // It comes back and attaches again: each link now runs the new program;
  // nothing is stacked on top.
  EbpfOptions options;
  options.pinDir = fs_->pinDir();
  auto again = EbpfMode::create(options);
  ASSERT_TRUE(again.ok()) << again.error().message;
  mode_ = std::move(*again);
  attached = mode_->attachCgroup(cg.path());
  ASSERT_TRUE(attached.ok()) << attached.error().message;
  const auto second = attachedPrograms(cg.path());
  for (size_t i = 0; i < second.size(); ++i) {
    ASSERT_EQ(second[i].size(), 1u) << "hook " << i;
    EXPECT_NE(second[i][0], first[i][0]) << "hook " << i << " still runs the old program";
  }

  ASSERT_TRUE(mode_->detachCgroup(cg.path()).ok());
  for (const auto& ids : attachedPrograms(cg.path())) EXPECT_TRUE(ids.empty());
  EXPECT_FALSE(std::filesystem::exists(*dir));
  EXPECT_TRUE(mode_->detachCgroup(cg.path()).ok()) << "detaching twice is not an error";
}

TEST_F(EbpfModeTest, CgroupAttachOutsideCgroupV2SaysSo) {
  if (IsSkipped()) return;
  auto r = mode_->attachCgroup("/tmp");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(r.error().message.find("cgroup v2"), std::string::npos) << r.error().message;
}

// The UDP socket terminator (bpf/sock_term.bpf.c) must pass the verifier
// wherever the kernel has what it needs; only where the kfunc is missing
// may it be absent, and then the loader says so.
TEST_F(EbpfModeTest, SocketTerminatorLoadsWhereTheKernelHasBpfSockDestroy) {
  btf* vmlinux = btf__load_vmlinux_btf();
  ASSERT_NE(vmlinux, nullptr) << "no kernel BTF";
  const bool kfunc = btf__find_by_name_kind(vmlinux, "bpf_sock_destroy", BTF_KIND_FUNC) > 0;
  btf__free(vmlinux);
  auto r = mode_->socketTermination();
  if (kfunc) {
    EXPECT_TRUE(r.ok()) << r.error().message;
  } else {
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("bpf_sock_destroy"), std::string::npos)
        << r.error().message;
  }
}

// Removing a backend of a UDP service runs the terminator over this
// thread's network namespace; a socket of this process connected to the
// removed backend's address directly (no socket LB here) is not touched.
TEST_F(EbpfModeTest, RemovingAUdpBackendLeavesSocketsTheSocketLbNeverTranslated) {
  if (!mode_->socketTermination().ok()) GTEST_SKIP() << mode_->socketTermination().error().message;
  ServiceTable table;
  ASSERT_TRUE(table.upsert(service("dns", Protocol::kUdp,
                                   {frontend("10.96.5.53", 53, Protocol::kUdp)},
                                   {backend("127.0.5.1", 5353), backend("127.0.5.2", 5353)}))
                  .ok());
  program(table);
  // Connected, never sent on: loopback, no traffic.
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(5353);
  ::inet_pton(AF_INET, "127.0.5.2", &to.sin_addr);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);

  ServiceTable next;
  ASSERT_TRUE(next.upsert(service("dns", Protocol::kUdp,
                                  {frontend("10.96.5.53", 53, Protocol::kUdp)},
                                  {backend("127.0.5.1", 5353)}))
                  .ok());
  const uint64_t terminated = counter("event.sock_term");
  auto r = mode_->apply(ServiceDiff::between(table, next));
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto swept = mode_->lastSocketTermination();
  EXPECT_TRUE(swept.ok()) << swept.error().message;
  EXPECT_EQ(counter("event.sock_term"), terminated);
  int err = 0;
  socklen_t len = sizeof(err);
  ASSERT_EQ(::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
  EXPECT_EQ(err, 0) << std::strerror(err);
  sockaddr_in peer{};
  socklen_t peerLen = sizeof(peer);
  EXPECT_EQ(::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peerLen), 0)
      << "the socket was disconnected: " << std::strerror(errno);
  ::close(fd);
}

}  // namespace
}  // namespace sluice
