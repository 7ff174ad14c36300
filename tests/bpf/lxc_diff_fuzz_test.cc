// Differential fuzzer for bpf/lxc.bpf.c: random and mutated Ethernet frames
// through the real program (BPF_PROG_TEST_RUN, maps programmed by the real
// loader, EbpfMode) and through the userspace model (lxc_model.h, which
// states what is compared and where the two legitimately differ). Every
// disagreement is printed with the input frame; the test fails on any.
//
// Frames come in sequences of 1-4 that start from empty sl_ct and
// sl_affinity (each sequence is isolated, as a packet-test row is): a first
// frame (a valid frame to a frontend or elsewhere with randomized header
// fields, a mutated corpus frame from tests/fuzz/corpus/packet, or random
// bytes behind an IP EtherType), then, after a translation, the same frame
// again (established flow), the backend's reply, or an ICMP error about
// the translated packet, each possibly mutated. The generator is seeded, so
// a run is reproducible; sequences that took longer than kMaxSequenceAge
// (a stalled machine: conntrack lifetimes start at 10 s) are not compared.
//
// Every rewritten frame's checksums are also recomputed from scratch by
// tests/bpf/packet_builder's verifier when the input's were valid.
//
// Frames: SLUICE_BPF_DIFF_FRAMES (default 1,000,000, CI's profile). Prints
// frames/s, the outcome classes and the disagreement count.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "bpf/abi/ct.h"
#include "bpf/abi/lb.h"
#include "bpf/abi/metrics.h"
#include "tests/bpf/lb_fixtures.h"
#include "tests/bpf/lxc_model.h"

namespace sluice {
namespace {

using namespace sluice::testing;  // NOLINT(google-build-using-namespace)
using Bytes = std::vector<uint8_t>;
using Clock = std::chrono::steady_clock;

constexpr long kDefaultFrames = 1'000'000;
constexpr auto kMaxSequenceAge = std::chrono::seconds(5);
// BPF_PROG_TEST_RUN refuses (-EINVAL) IP frames shorter than Ethernet + the
// fixed IP header, and any frame shorter than Ethernet.
constexpr size_t kMinFrame = 14, kMinFrame4 = 34, kMinFrame6 = 54;
constexpr size_t kMaxFrame = 1514;
constexpr size_t kMaxReported = 20;

struct Rng {
  uint64_t state;
  uint64_t next() {
    state += 0x9e3779b97f4a7c15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }
  bool chance(int percent) { return below(100) < static_cast<size_t>(percent); }
};

// The node's services: every branch of the program (translation, hairpin,
// affinity, Maglev, terminating fallback, Local policies, refusals, a
// NodePort whose replies are routed), in both families.
ServiceTable fuzzServices() {
  ServiceTable t;
  auto add = [&t](Service s) { EXPECT_TRUE(t.upsert(std::move(s)).ok()) << s.key.toString(); };
  add(service("web", Protocol::kTcp, {frontend("10.96.0.10", 80), frontend("fd00:96::10", 80)},
              {backend("10.0.0.2", 8080), backend("10.0.1.5", 8080),
               backend("10.0.1.6", 8080, BackendState::kTerminating), backend("fd00::2", 8080),
               backend("fd00:1::5", 8080)}));
  Service dns = service("dns", Protocol::kUdp,
                        {frontend("10.96.0.53", 53, Protocol::kUdp),
                         frontend("fd00:96::53", 53, Protocol::kUdp)},
                        {backend("10.0.1.7", 5353), backend("10.0.1.8", 5353),
                         backend("fd00:1::7", 5353)});
  dns.affinity.clientIp = true;
  dns.affinity.timeoutSeconds = 600;
  add(dns);
  add(service("empty", Protocol::kTcp, {frontend("10.96.0.20", 80), frontend("fd00:96::20", 80)},
              {}));
  add(service("empty-udp", Protocol::kUdp,
              {frontend("10.96.0.20", 53, Protocol::kUdp),
               frontend("fd00:96::20", 53, Protocol::kUdp)},
              {}));
  Service localNone = service("local-none", Protocol::kTcp, {frontend("10.96.0.30", 80)},
                              {backend("10.0.1.30", 8080)});
  localNone.internalPolicy = TrafficPolicy::kLocal;
  add(localNone);
  Service local = service("local", Protocol::kTcp, {frontend("10.96.0.60", 443)},
                          {backend("10.0.0.9", 443, BackendState::kActive, true),
                           backend("10.0.1.11", 443)});
  local.internalPolicy = TrafficPolicy::kLocal;
  add(local);
  add(service("np", Protocol::kTcp,
              {frontend("192.168.1.10", 30080, Protocol::kTcp, FrontendScope::kNodePort)},
              {backend("10.0.1.5", 80)}));
  Service maglev = service("maglev", Protocol::kUdp, {frontend("10.96.0.40", 8053, Protocol::kUdp)},
                           {backend("10.0.1.8", 53), backend("10.0.1.9", 53)});
  maglev.algorithm = LbAlgorithm::kMaglev;
  maglev.maglevTableSize = 251;
  add(maglev);
  add(service("drain", Protocol::kTcp, {frontend("10.96.0.50", 80)},
              {backend("10.0.1.10", 80, BackendState::kTerminating)}));
  return t;
}

// The destinations first frames go to: every frontend, plus addresses that
// are none (pods, the internet) and a frontend address on another port.
std::vector<Frontend> destinations(const ServiceTable& table) {
  std::vector<Frontend> out;
  for (const auto& [key, svc] : table) {
    for (const auto& f : svc.frontends) out.push_back(f);
  }
  out.push_back(frontend("10.0.1.5", 8080));
  out.push_back(frontend("8.8.8.8", 53, Protocol::kUdp));
  out.push_back(frontend("fd00:1::5", 8080, Protocol::kUdp));
  out.push_back(frontend("10.96.0.10", 81));
  return out;
}

void mutate(Bytes& b, Rng& rng) {
  static const uint8_t kInteresting[] = {0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x08, 0x10, 0x11,
                                         0x20, 0x2b, 0x2c, 0x3a, 0x3c, 0x40, 0x45, 0x46, 0x50,
                                         0x60, 0x7f, 0x80, 0x86, 0xdd, 0xfe, 0xff};
  // Most edits land in the headers, where the decisions are.
  auto pos = [&] { return b.size() <= 1 ? 0 : rng.chance(80) ? rng.below(std::min<size_t>(b.size(), 80)) : rng.below(b.size()); };
  switch (rng.below(7)) {
    case 0: if (!b.empty()) b[pos()] ^= static_cast<uint8_t>(1u << rng.below(8)); break;
    case 1: if (!b.empty()) b[pos()] = static_cast<uint8_t>(rng.next()); break;
    case 2: if (!b.empty()) b[pos()] = kInteresting[rng.below(sizeof(kInteresting))]; break;
    case 3: b.resize(rng.below(b.size() + 1)); break;
    case 4: for (size_t n = 1 + rng.below(16); n > 0; --n) b.push_back(static_cast<uint8_t>(rng.next())); break;
    case 5: b.insert(b.begin() + static_cast<long>(rng.below(b.size() + 1)), static_cast<uint8_t>(rng.next())); break;
    case 6: if (!b.empty()) b.erase(b.begin() + static_cast<long>(pos())); break;
  }
}

// A valid frame from a client pod (10.0.0.2 / fd00::2, or another) to d,
// with randomized flags, payload and optional IP features.
Bytes validFrame(const Frontend& d, Rng& rng) {
  const bool v6 = d.address.isV6();
  PacketSpec s;
  const char* clients4[] = {"10.0.0.2", "10.0.0.3", "10.0.1.5"};
  const char* clients6[] = {"fd00::2", "fd00::3"};
  s.src = v6 ? ip(clients6[rng.below(2)]) : ip(clients4[rng.below(3)]);
  s.dst = d.address;
  s.proto = d.protocol;
  s.sport = static_cast<uint16_t>(rng.chance(50) ? 40000 + rng.below(4) : rng.next());
  s.dport = d.port;
  static const uint8_t kFlags[] = {kTcpSyn, kTcpAck, kTcpAck | kTcpPsh, kTcpFin | kTcpAck, kTcpRst,
                                   kTcpRst | kTcpAck, 0, kTcpSyn | kTcpFin};
  s.tcpFlags = rng.chance(90) ? kFlags[rng.below(sizeof(kFlags))] : static_cast<uint8_t>(rng.next());
  s.seq = static_cast<uint32_t>(rng.next());
  s.ack = static_cast<uint32_t>(rng.next());
  s.payload.resize(rng.below(24));
  for (auto& x : s.payload) x = static_cast<uint8_t>(rng.next());
  s.udpZeroChecksum = !v6 && d.protocol == Protocol::kUdp && rng.chance(20);
  if (!v6 && rng.chance(5)) s.ipv4Options = {0x94, 0x04, 0x00, 0x00};  // Router Alert
  if (!v6 && rng.chance(5)) s.ipv4Frag = rng.chance(50) ? 0x2000 : 0x0010;
  if (v6 && rng.chance(10)) {
    static const uint8_t kTypes[] = {0, 60, 43, 44};
    for (size_t n = 1 + rng.below(3); n > 0; --n) {
      const uint8_t type = kTypes[rng.below(4)];
      std::vector<uint8_t> body(6, 0);
      if (type == 43) body[1] = static_cast<uint8_t>(rng.below(2));  // segments left
      if (type == 44 && rng.chance(50)) body[1] = 0x08;               // a later fragment
      s.ipv6Ext.push_back({type, body});
    }
  }
  if (rng.chance(20)) s.padTo = 60 + rng.below(8);
  return buildPacket(s);
}

// The backend's answer to the translated frame t: addresses and ports
// swapped, which keeps every checksum valid.
Bytes replyTo(const Bytes& t) {
  Bytes r = t;
  ParsedPacket p;
  if (parsePacket(t, Framing::kEthernet, p) != DropReason::kNone) return r;
  std::swap_ranges(r.begin(), r.begin() + 6, r.begin() + 6);
  const size_t alen = p.family == IpFamily::kV4 ? 4 : 16;
  const size_t src = p.l3Offset + (p.family == IpFamily::kV4 ? 12 : 8);
  std::swap_ranges(r.begin() + static_cast<long>(src), r.begin() + static_cast<long>(src + alen),
                   r.begin() + static_cast<long>(src + alen));
  std::swap_ranges(r.begin() + p.l4Offset, r.begin() + p.l4Offset + 2, r.begin() + p.l4Offset + 2);
  return r;
}

// An ICMP error about the translated frame t, from its destination (the
// backend) or a router on the way, quoting its IP header and 8 or more bytes.
Bytes errorAbout(const Bytes& t, Rng& rng) {
  ParsedPacket p;
  if (parsePacket(t, Framing::kEthernet, p) != DropReason::kNone) return t;
  const bool v6 = p.family == IpFamily::kV6;
  PacketSpec s;
  s.src = rng.chance(60) ? p.tuple.dst : (v6 ? ip("fd00:ff::1") : ip("192.0.2.1"));
  s.dst = p.tuple.src;
  s.proto = v6 ? Protocol::kIcmpV6 : Protocol::kIcmp;
  static const uint8_t k4[][2] = {{3, 3}, {3, 4}, {11, 0}, {12, 0}};
  static const uint8_t k6[][2] = {{1, 4}, {2, 0}, {3, 0}, {4, 0}};
  const auto& tc = v6 ? k6[rng.below(4)] : k4[rng.below(4)];
  s.icmpType = tc[0];
  s.icmpCode = tc[1];
  const size_t quoteMin = (p.l4Offset - p.l3Offset) + 8;
  const size_t quote = std::min<size_t>(p.l3End - p.l3Offset, quoteMin + rng.below(32));
  s.payload.assign(t.begin() + p.l3Offset, t.begin() + static_cast<long>(p.l3Offset + quote));
  return buildPacket(s);
}

bool runnable(const Bytes& f) {
  if (f.size() < kMinFrame || f.size() > kMaxFrame) return false;
  const uint16_t type = static_cast<uint16_t>(f[12] << 8 | f[13]);
  if (type == 0x0800) return f.size() >= kMinFrame4;
  if (type == 0x86dd) return f.size() >= kMinFrame6;
  return true;
}

std::vector<Bytes> loadCorpus() {
  std::vector<Bytes> out;
  const char* dir = std::getenv("SLUICE_PACKET_CORPUS");
  if (dir == nullptr) return out;
  std::vector<std::filesystem::path> paths;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    out.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return out;
}

// Empties an LRU hash map (a handful of entries per sequence).
void clearMap(int fd, size_t keySize) {
  std::vector<uint8_t> key(keySize);
  while (bpf_map_get_next_key(fd, nullptr, key.data()) == 0) {
    if (bpf_map_delete_elem(fd, key.data()) != 0) break;
  }
}

class LxcDiffFuzzTest : public EbpfFixture {
 protected:
  // Per-reason drop counts summed over CPUs (one batch read).
  std::vector<uint64_t> drops() {
    const int cpus = libbpf_num_possible_cpus();
    std::vector<uint32_t> keys(SL_DROP_MAX);
    std::vector<sl_counter> values(static_cast<size_t>(SL_DROP_MAX) * static_cast<size_t>(cpus));
    uint32_t count = SL_DROP_MAX, out = 0;
    auto opts = sluice::bpf::libbpfOpts<bpf_map_batch_opts>();
    const int r = bpf_map_lookup_batch(dropsFd_, nullptr, &out, keys.data(), values.data(), &count, &opts);
    EXPECT_TRUE(r == 0 || errno == ENOENT) << "lookup_batch sl_drops: " << r;
    std::vector<uint64_t> sums(SL_DROP_MAX, 0);
    for (uint32_t i = 0; i < count; ++i) {
      for (int c = 0; c < cpus; ++c) sums[keys[i]] += values[i * static_cast<size_t>(cpus) + static_cast<size_t>(c)].packets;
    }
    return sums;
  }

  int pinned(const char* name) {
    const int fd = bpf_obj_get((fs_->pinDir() + "/" + name).c_str());
    EXPECT_GE(fd, 0) << name;
    return fd;
  }

  int dropsFd_ = -1;
};

// The comparison is not vacuous: a DNAT to the wrong port, a service
// packet passed untranslated and a drop counted under another reason are
// each reported (no kernel needed for this one).
TEST(LxcModelTest, ReportsWrongTranslationsPassesAndReasons) {
  const ServiceTable table = fuzzServices();
  LxcModel model(table);
  const Bytes syn = buildPacket(tcp("10.0.0.3", 40000, "10.96.0.10", 80));
  const Bytes wrongPort = buildPacket(tcp("10.0.0.3", 40000, "10.0.1.5", 8081));
  const Bytes right = buildPacket(tcp("10.0.0.3", 40000, "10.0.1.5", 8080));
  EXPECT_NE(model.check(syn, {TC_ACT_OK, wrongPort, DropReason::kNone}), "");
  model.reset();
  EXPECT_NE(model.check(syn, {TC_ACT_OK, syn, DropReason::kNone}), "");
  model.reset();
  EXPECT_EQ(model.check(syn, {TC_ACT_OK, right, DropReason::kNone}), "");
  // The same flow's next packet must keep that backend.
  const Bytes otherBackend = buildPacket(tcp("10.0.0.3", 40000, "10.0.0.2", 8080));
  EXPECT_NE(model.check(syn, {TC_ACT_OK, otherBackend, DropReason::kNone}), "");
  Bytes badUdp = buildPacket(udp("10.0.0.3", 40000, "10.96.0.53", 53));
  put16(badUdp, 14 + 20 + 4, 3);  // UDP length 3 < 8
  model.reset();
  EXPECT_EQ(model.check(badUdp, {TC_ACT_SHOT, badUdp, DropReason::kBadUdpLength}), "");
  EXPECT_NE(model.check(badUdp, {TC_ACT_SHOT, badUdp, DropReason::kTruncatedL4}), "");
}

// A million random and mutated frames: the program and the userspace model
// agree on every verdict, drop reason and translated frame.
TEST_F(LxcDiffFuzzTest, RandomFramesAgreeWithTheUserspaceModel) {
  SetUpMode();
  const ServiceTable table = fuzzServices();
  program(table);
  const int ctFd = pinned("sl_ct"), affinityFd = pinned("sl_affinity");
  dropsFd_ = pinned("sl_drops");
  ASSERT_GE(ctFd, 0);
  ASSERT_GE(affinityFd, 0);
  ASSERT_GE(dropsFd_, 0);

  const char* env = std::getenv("SLUICE_BPF_DIFF_FRAMES");
  const long frames = env != nullptr ? std::strtol(env, nullptr, 10) : kDefaultFrames;
  const std::vector<Frontend> dests = destinations(table);
  const std::vector<Bytes> corpus = loadCorpus();
  LxcModel model(table);
  Rng rng{0x5eed1c5eed1c5eedULL};
  std::vector<uint64_t> dropCounts = drops();
  long ran = 0, skipped = 0, stale = 0, disagreements = 0, sequences = 0;
  const auto start = Clock::now();

  // Only translations write sl_ct and sl_affinity (anything else the
  // program wrote would have shown as a disagreement already).
  bool dirty = true;
  while (ran < frames) {
    model.reset();
    if (dirty) {
      clearMap(ctFd, sizeof(sl_ct_key));
      clearMap(affinityFd, sizeof(sl_affinity_key));
      dirty = false;
    }
    ++sequences;
    const auto seqStart = Clock::now();
    Bytes first;
    const size_t kind = rng.below(100);
    if (kind < 60 || corpus.empty()) {
      first = validFrame(dests[rng.below(dests.size())], rng);
      if (rng.chance(40)) {
        for (size_t n = 1 + rng.below(3); n > 0; --n) mutate(first, rng);
      }
    } else if (kind < 90) {
      first = corpus[rng.below(corpus.size())];
      for (size_t n = rng.below(4); n > 0; --n) mutate(first, rng);
    } else {
      first.resize(kMinFrame + rng.below(120));
      for (auto& x : first) x = static_cast<uint8_t>(rng.next());
      first[12] = rng.chance(50) ? 0x08 : 0x86;
      first[13] = first[12] == 0x08 ? 0x00 : 0xdd;
      if (first.size() > 14) first[14] = first[12] == 0x08 ? 0x45 : 0x60;
    }

    std::vector<LxcRun> runs;
    std::vector<Bytes> inputs;
    Bytes next = first;
    for (size_t step = 0, steps = 1 + rng.below(4); step < steps && ran < frames; ++step) {
      if (!runnable(next)) {
        ++skipped;
        break;
      }
      auto r = testRun(mode_->lxcIngressFd(), next);
      ASSERT_EQ(r.err, 0) << "test run of a " << next.size() << "-byte frame";
      ++ran;
      LxcRun run{r.retval, std::move(r.out), DropReason::kNone};
      if (run.verdict == TC_ACT_SHOT || run.verdict == TC_ACT_REDIRECT) {
        // The reason counted, if any (a refusal counts no_backend too).
        std::vector<uint64_t> now = drops();
        for (size_t i = 0; i < now.size(); ++i) {
          if (now[i] != dropCounts[i]) run.dropReason = static_cast<DropReason>(i);
        }
        dropCounts = std::move(now);
      }
      if (Clock::now() - seqStart > kMaxSequenceAge) {
        ++stale;
        break;
      }
      std::string diff = model.check(next, run);
      // Checksums recomputed from scratch (packet_builder), independently
      // of both incremental updates: a frame that arrived valid leaves valid
      // (refusals are compared with a frame built valid in the model).
      if (diff.empty() && run.verdict != TC_ACT_SHOT && run.out != next && !checksumError(next)) {
        if (auto bad = checksumError(run.out)) diff = "output checksum: " + *bad;
      }
      if (!diff.empty()) {
        if (static_cast<size_t>(disagreements) < kMaxReported) {
          std::string hex;
          char buf[4];
          for (uint8_t x : next) {
            std::snprintf(buf, sizeof(buf), "%02x", x);
            hex += buf;
          }
          ADD_FAILURE() << "disagreement on frame " << ran << " (step " << step << " of a sequence): "
                        << diff << "\n  input: " << hex;
        }
        ++disagreements;
        dirty = true;
        break;
      }
      const bool translated = run.verdict == TC_ACT_OK && run.out != next;
      dirty |= translated;
      // What follows in the sequence.
      Bytes follow;
      if (translated) {
        switch (rng.below(3)) {
          case 0: follow = next; break;                      // the flow's next packet
          case 1: follow = replyTo(run.out); break;          // the backend answers
          default: follow = errorAbout(run.out, rng); break;  // an ICMP error about it
        }
      } else {
        follow = rng.chance(30) ? validFrame(dests[rng.below(dests.size())], rng) : next;
      }
      if (rng.chance(25)) mutate(follow, rng);
      next = std::move(follow);
    }
  }

  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  // CPU time as well as wall time: on a loaded machine the wall rate says
  // more about the neighbours than about the fuzzer.
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const double cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                     static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  const auto& s = model.stats();
  std::printf(
      "lxc differential fuzz: %ld frames in %ld sequences, %.1f s (%.1f s CPU), %.0f frames/s "
      "(%.0f per CPU second)\n"
      "  agreed: %lu translated, %lu refused (RST/ICMP), %lu dropped, %lu passed; "
      "%lu outside the model\n"
      "  not runnable (TEST_RUN minimum length): %ld; stale sequences: %ld\n"
      "  disagreements: %ld\n",
      ran, sequences, seconds, cpu, ran / std::max(seconds, 1e-9), ran / std::max(cpu, 1e-9),
      static_cast<unsigned long>(s.translated), static_cast<unsigned long>(s.rejected),
      static_cast<unsigned long>(s.dropped), static_cast<unsigned long>(s.passed),
      static_cast<unsigned long>(s.outOfModel), skipped, stale, disagreements);
  EXPECT_EQ(disagreements, 0);
  EXPECT_GT(s.translated, 0u);
  EXPECT_GT(s.rejected, 0u);
}

}  // namespace
}  // namespace sluice
