// The BPF tests' fixture: the loaded EbpfMode under a private bpffs
// (skipping, with the reason, where bpffs cannot be mounted), running
// packet-case tables (packet_cases.h) through its programs.
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
#include "tests/bpf/packet_cases.h"

namespace sluice::testing {

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
