// Service-model fixtures for the BPF tests: short constructors for
// frontends, backends and services, and the loaded EbpfMode under a private
// bpffs (skipping, with the reason, where bpffs cannot be mounted).
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bpf/loader/ebpf_mode.h"
#include "dataplane/service.h"
#include "tests/bpf/bpf_test_run.h"
#include "tests/bpf/bpffs.h"
#include "tests/bpf/packet_builder.h"

namespace sluice::testing {

inline IpAddress ip(const char* text) {
  auto r = IpAddress::parse(text);
  EXPECT_TRUE(r.ok()) << text;
  return r.ok() ? *r : IpAddress();
}

inline Frontend frontend(const char* addr, uint16_t port, Protocol proto = Protocol::kTcp,
                         FrontendScope scope = FrontendScope::kClusterIp) {
  Frontend f;
  f.address = ip(addr);
  f.port = port;
  f.protocol = proto;
  f.scope = scope;
  return f;
}

inline Backend backend(const char* addr, uint16_t port, BackendState state = BackendState::kActive,
                       bool nodeLocal = false) {
  Backend b;
  b.address = ip(addr);
  b.port = port;
  b.state = state;
  b.nodeLocal = nodeLocal;
  return b;
}

inline Service service(const std::string& name, Protocol proto, std::vector<Frontend> frontends,
                       std::vector<Backend> backends) {
  Service s;
  s.key = {"default", name, ""};
  s.protocol = proto;
  s.frontends = std::move(frontends);
  s.backends = std::move(backends);
  return s;
}

inline PacketSpec tcp(const char* src, uint16_t sport, const char* dst, uint16_t dport,
                      uint8_t flags = kTcpSyn) {
  PacketSpec s;
  s.src = ip(src);
  s.dst = ip(dst);
  s.proto = Protocol::kTcp;
  s.sport = sport;
  s.dport = dport;
  s.tcpFlags = flags;
  return s;
}

inline PacketSpec udp(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
  PacketSpec s;
  s.src = ip(src);
  s.dst = ip(dst);
  s.proto = Protocol::kUdp;
  s.sport = sport;
  s.dport = dport;
  s.payload = {'p', 'i', 'n', 'g'};
  return s;
}

// One packet-test table row: a frame through a program and what must come
// out of it.
struct PacketCase {
  std::string scenario;
  std::vector<uint8_t> in;
  uint32_t verdict;
  // The frame the program must leave; nullopt: exactly the input (nothing
  // rewritten, even when dropped).
  std::optional<std::vector<uint8_t>> out;
  std::string counter;  // "drop.x" / "event.y" that must grow by one; empty: none checked
};

// EbpfMode on a private bpffs. Tests call SetUpMode() from SetUp(); it
// skips the test if bpffs cannot be mounted here.
class EbpfFixture : public ::testing::Test {
 protected:
  void SetUpMode(EbpfOptions options = {}) {
    fs_ = std::make_unique<ScopedBpffs>();
    if (!fs_->ok()) GTEST_SKIP() << "no bpffs: " << fs_->error();
    options.pinDir = fs_->pinDir();
    auto m = EbpfMode::create(options);
    ASSERT_TRUE(m.ok()) << m.error().message;
    mode_ = std::move(*m);
  }

  void program(const ServiceTable& table) {
    auto r = mode_->sync(table);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }

  TestRunResult run(const std::vector<uint8_t>& frame) {
    return testRun(mode_->lxcIngressFd(), frame);
  }

  uint64_t counter(const std::string& name) const {
    auto s = mode_->stats();
    auto it = s.counters.find(name);
    EXPECT_NE(it, s.counters.end()) << "no counter " << name;
    return it == s.counters.end() ? 0 : it->second;
  }

  // Runs each case through the program progFd and checks verdict, output
  // frame, checksums and counter.
  void runCases(int progFd, const std::vector<PacketCase>& cases) {
    for (const PacketCase& c : cases) {
      SCOPED_TRACE(c.scenario);
      const uint64_t before = c.counter.empty() ? 0 : counter(c.counter);
      auto r = testRun(progFd, c.in);
      ASSERT_EQ(r.err, 0);
      EXPECT_EQ(r.retval, c.verdict);
      if (!c.out) {
        EXPECT_EQ(r.out, c.in) << "rewritten: " << parsePacket(r.out).describe();
      } else {
        EXPECT_EQ(withoutChecksums(r.out), withoutChecksums(*c.out))
            << "got " << parsePacket(r.out).describe() << ", want "
            << parsePacket(*c.out).describe();
        auto bad = checksumError(r.out);
        EXPECT_FALSE(bad) << *bad;
        // An IPv4 UDP checksum of 0 ("none") must stay 0, and only then be 0.
        const PacketView want = parsePacket(*c.out);
        if (want.proto == IPPROTO_UDP && want.family == IpFamily::kV4 &&
            r.out.size() > want.l4Off + 7) {
          const bool wantNone = (*c.out)[want.l4Off + 6] == 0 && (*c.out)[want.l4Off + 7] == 0;
          const bool gotNone = r.out[want.l4Off + 6] == 0 && r.out[want.l4Off + 7] == 0;
          EXPECT_EQ(gotNone, wantNone) << "UDP checksum 0 (none) not preserved";
        }
      }
      if (!c.counter.empty()) {
        EXPECT_EQ(counter(c.counter), before + 1) << c.counter;
      }
    }
  }

  // Where the datapath sent a forward packet: its destination after DNAT.
  PacketView sendAndView(const PacketSpec& spec) {
    auto r = run(buildPacket(spec));
    EXPECT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, 0u) << "verdict for " << parsePacket(buildPacket(spec)).describe();
    return parsePacket(r.out);
  }

  std::unique_ptr<ScopedBpffs> fs_;
  std::unique_ptr<EbpfMode> mode_;
};

}  // namespace sluice::testing
