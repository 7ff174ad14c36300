// The eBPF mode's packet tables (tests/bpf/{lxc,host,icmp_err}_cases.h) run
// through the DPDK pipeline: the same scenarios, input frames and expected
// translations, mapped onto the DPDK ports by packet_case_runner.h. Each
// test starts from fresh tables and conntrack (one TestPipeline each).
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include <string>
#include <vector>

#include "tests/bpf/host_cases.h"
#include "tests/bpf/icmp_err_cases.h"
#include "tests/bpf/lxc_cases.h"
#include "tests/dpdk/packet_case_runner.h"

namespace sluice::dpdk::testing {
namespace {

namespace lxc = sluice::testing::lxc;
namespace host = sluice::testing::host;
namespace icmp = sluice::testing::icmp_err;
using sluice::testing::PacketSpec;
using sluice::testing::put16;
using sluice::testing::setIpv4HeaderChecksum;

// The pods of the lxc/icmp tables and the kernel-side SNAT addresses; the
// tables' backends run on other nodes (uplink side) but the client itself.
KernelSide podSide() {
  return addressesIn({"10.0.0.0/24", "fd00::/64", "169.254.42.1/32", "fd73:6c75::1/128"});
}

// Every table runs twice: first packets handled in turn (a small table's
// path) and planned ahead of their inserts (a large table's, which
// PipelineConfig::planAheadMinCapacity switches on; 0 forces it).
class PipelineCasesTest : public ::testing::TestWithParam<bool> {
 protected:
  void start(const ServiceTable& table, uint32_t workers = 1) {
    TestPipeline::Options o;
    o.workers = workers;
    o.config.planAheadMinCapacity = GetParam() ? 0 : o.conntrackCapacity + 1;
    p_ = TestPipeline::create(o);
    ASSERT_NE(p_, nullptr);
    p_->program(table);
  }
  std::unique_ptr<TestPipeline> p_;
};

// A pod's traffic to services (the eBPF lxc table), from the kernel side.
TEST_P(PipelineCasesTest, PodServiceTrafficCases) {
  start(lxc::services());
  runCases(*p_, lxc::serviceCases(), podSide(), PortRole::kKernel);
}

// The same table with the flows spread over two workers: every frame is
// handed to the worker owning its flow, and the results are the same.
TEST_P(PipelineCasesTest, PodServiceTrafficCasesAcrossTwoWorkers) {
  start(lxc::services(), 2);
  runCases(*p_, lxc::serviceCases(), podSide(), PortRole::kKernel);
  EXPECT_GT(p_->counter("event.handoff"), 0u);
}

// Malformed frames from a pod: dropped, or passed unchanged when not a
// service flow (the eBPF mode's policy, bpf/lib/parse.h).
TEST_P(PipelineCasesTest, PodMalformedFramesAreNeverRewritten) {
  start(lxc::services());
  runCases(*p_, lxc::malformedCases(), podSide(), PortRole::kKernel);
}

// Outside clients on the uplink (the eBPF host table): NodePort,
// LoadBalancer, externalIP, eTP=Local, refusal, non-service traffic.
TEST_P(PipelineCasesTest, OutsideTrafficCases) {
  start(host::services());
  runCases(*p_, host::serviceCases(), addressesIn({"10.0.1.45/32"}), PortRole::kUplink);
}

TEST_P(PipelineCasesTest, OutsideMalformedFramesAreNeverRewritten) {
  start(host::services());
  runCases(*p_, host::malformedCases(), addressesIn({"10.0.1.45/32"}), PortRole::kUplink);
}

// ICMP errors about pod flows, from remote backends and routers on the
// uplink, and from the pod itself (hairpin).
TEST_P(PipelineCasesTest, IcmpErrorsAboutPodFlowsComeFromTheFrontend) {
  start(icmp::podServices());
  runCases(*p_, icmp::podCases(), podSide(), PortRole::kUplink);
}

TEST_P(PipelineCasesTest, OtherAndMalformedIcmpErrorsAreNeverRewritten) {
  start(icmp::podServices());
  runCases(*p_, icmp::untouchedCases(), podSide(), PortRole::kUplink);
}

// ICMP errors about SNATed NodePort flows of outside clients.
TEST_P(PipelineCasesTest, IcmpErrorsAboutNodePortFlowsReachTheOutsideClient) {
  start(icmp::hostServices());
  runCases(*p_, icmp::hostCases(), addressesIn({}), PortRole::kUplink);
}

// Every prefix of a valid service frame, from either side, with its IP
// length left as sent (past the buffer) and fixed to the prefix: dropped,
// never rewritten, never forwarded. Unlike BPF_PROG_TEST_RUN, the pipeline
// takes frames of any length, so the sweep starts at zero bytes.
TEST_P(PipelineCasesTest, TruncationAtEveryOffsetIsDroppedUnchanged) {
  struct Sweep {
    PacketSpec spec;
    PortRole from;
  };
  const auto sweep = [this](const std::vector<Sweep>& sweeps) {
    uint64_t now = 1'000'000'000'000ULL;
    for (const Sweep& s : sweeps) {
      const std::vector<uint8_t> whole = sluice::testing::buildPacket(s.spec);
      const bool v6 = s.spec.dst.isV6();
      const size_t l3 = v6 ? 14 + 40 : 14 + 20;
      for (size_t len = 0; len < whole.size(); ++len) {
        for (bool fixLength : {false, true}) {
          if (fixLength && len < l3) continue;
          std::vector<uint8_t> f(whole.begin(), whole.begin() + static_cast<long>(len));
          if (fixLength && v6) put16(f, 18, static_cast<uint16_t>(len - 54));
          if (fixLength && !v6) {
            put16(f, 16, static_cast<uint16_t>(len - 14));
            setIpv4HeaderChecksum(f);
          }
          SCOPED_TRACE(sluice::testing::parsePacket(whole).describe() + " cut to " +
                       std::to_string(len) + (fixLength ? " bytes, length fixed" : " bytes"));
          const RunResult r = p_->run(f, s.from, ++now);
          EXPECT_EQ(r.verdict.action, Action::kDrop);
          EXPECT_EQ(r.frame, f);
        }
      }
    }
  };
  start(lxc::services());
  sweep({{sluice::testing::tcp(lxc::kClient, 42000, "10.96.0.10", 80), PortRole::kKernel},
         {sluice::testing::udp(lxc::kClient, 42000, "10.96.0.53", 53), PortRole::kKernel},
         {sluice::testing::tcp(lxc::kClient6, 42000, "fd00:96::10", 80), PortRole::kKernel},
         {sluice::testing::udp(lxc::kClient6, 42000, "fd00:96::53", 53), PortRole::kKernel}});
  start(host::services());
  sweep({{sluice::testing::tcp(host::kOutside, 42000, host::kNode, 30080), PortRole::kUplink},
         {sluice::testing::udp(host::kOutside, 42000, host::kNode, 30053), PortRole::kUplink},
         {sluice::testing::tcp(host::kOutside6, 42000, host::kNode6, 30080), PortRole::kUplink}});
}

// Every prefix of a port unreachable with a full quote, outer length fixed:
// too short to hold the quoted IP header + 8 bytes, it passes unchanged;
// from there on it is a legitimately shorter quote and comes out as exactly
// that quote, translated (the eBPF table's sweep, without the test-run
// minimum frame size).
TEST_P(PipelineCasesTest, IcmpErrorTruncationIsPassedOrTranslatedExactly) {
  start(icmp::podServices());
  const PacketSpec query = sluice::testing::udp(icmp::kClient, 7000, "10.96.0.53", 53);
  const PacketSpec atBackend = icmp::to(query, "10.0.1.7", 5353);
  uint64_t now = 1'000'000'000'000ULL;
  ASSERT_EQ(p_->run(icmp::frame(query), PortRole::kKernel, now).verdict.action, Action::kTxUplink);
  const std::vector<uint8_t> whole =
      icmp::frame(icmp::errorAbout(atBackend, "10.0.1.7", icmp::kUnreach, icmp::kPortUnreach));
  for (size_t len = 14 + 20 + 8; len <= whole.size(); ++len) {
    std::vector<uint8_t> f(whole.begin(), whole.begin() + static_cast<long>(len));
    put16(f, 16, static_cast<uint16_t>(len - 14));
    setIpv4HeaderChecksum(f);
    icmp::setIcmpChecksum(f);
    SCOPED_TRACE("cut to " + std::to_string(len) + " bytes");
    const RunResult r = p_->run(f, PortRole::kUplink, ++now);
    const size_t quoted = len - (14 + 20 + 8);
    if (quoted < 28) {
      EXPECT_EQ(r.verdict.action, Action::kException);
      EXPECT_EQ(r.frame, f);
      continue;
    }
    EXPECT_EQ(r.verdict.action, Action::kTxKernel);
    const auto want = icmp::frame(
        icmp::errorAbout(query, "10.96.0.53", icmp::kUnreach, icmp::kPortUnreach, quoted));
    std::vector<uint8_t> got = sluice::testing::withoutChecksums(r.frame);
    std::vector<uint8_t> expected = sluice::testing::withoutChecksums(want);
    std::fill(got.begin(), got.begin() + 12, 0);
    std::fill(expected.begin(), expected.begin() + 12, 0);
    EXPECT_EQ(got, expected);
    auto bad = sluice::testing::checksumError(r.frame);
    EXPECT_FALSE(bad) << *bad;
  }
}

// A SYN to a service with no endpoints is always answered, never forwarded,
// whatever the source port (so through whichever worker owns it).
TEST_P(PipelineCasesTest, RefusedWithoutEndpointsNeverForwarded) {
  start(lxc::services(), 2);
  uint64_t now = 1'000'000'000'000ULL;
  for (uint16_t port = 43000; port < 43020; ++port) {
    const RunResult r =
        p_->run(lxc::frame(sluice::testing::tcp(lxc::kClient, port, "10.96.0.20", 80)),
                PortRole::kKernel, ++now);
    EXPECT_EQ(r.verdict.action, Action::kTxKernel);
    EXPECT_EQ(sluice::testing::parsePacket(r.frame).tcpFlags,
              sluice::testing::kTcpRst | sluice::testing::kTcpAck);
  }
}

INSTANTIATE_TEST_SUITE_P(FirstPackets, PipelineCasesTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("Planned") : std::string("InTurn");
                         });

}  // namespace
}  // namespace sluice::dpdk::testing
