// Packet tests for ICMP / ICMPv6 errors about service flows
// (bpf/lib/icmp_err.h in bpf_lxc and bpf_host), as data: each case is
// {scenario, input frame, expected verdict, expected output frame, counter},
// run in order through BPF_PROG_TEST_RUN against maps the real loader
// programmed; the flows are created by running their first packet first.
//
// An expected error is built independently: the ICMP error the client
// would have got had it talked to the backend directly, quoting the
// client's own packet (before DNAT) byte for byte. The comparison ignores
// only the outer IP and ICMP checksum fields (checked separately, from
// scratch), so the quoted IP header checksum and quoted UDP/TCP checksum
// must come out exactly as the client computed them.
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "tests/bpf/icmp_err_cases.h"
#include "tests/bpf/lb_fixtures.h"

namespace sluice {
namespace {

using namespace sluice::testing;            // NOLINT(google-build-using-namespace)
using namespace sluice::testing::icmp_err;  // NOLINT(google-build-using-namespace)

constexpr uint32_t kOk = TC_ACT_OK;
constexpr uint32_t kDrop = TC_ACT_SHOT;

class IcmpErrLxcTest : public EbpfFixture {
 protected:
  void SetUp() override {
    SetUpMode();
    if (IsSkipped() || HasFatalFailure()) return;
    program(podServices());
  }
};

TEST_F(IcmpErrLxcTest, ErrorsAboutServiceFlowsComeFromTheFrontend) {
  runCases(mode_->lxcIngressFd(), podCases());
}

TEST_F(IcmpErrLxcTest, OtherAndMalformedErrorsAreNeverRewritten) {
  runCases(mode_->lxcIngressFd(), untouchedCases());
}

TEST_F(IcmpErrLxcTest, TruncationAtEveryOffsetIsPassedOrTranslatedExactly) {
  // Every prefix of a port unreachable with a full quote, its outer length
  // fixed to the prefix: too short to hold the quoted IP header + 8 bytes,
  // it passes unchanged; from there on it is a legitimately shorter quote
  // and must come out as exactly that quote, translated.
  const PacketSpec query = udp(kClient, 7000, "10.96.0.53", 53);
  const PacketSpec atBackend = to(query, "10.0.1.7", 5353);
  ASSERT_EQ(testRun(mode_->lxcIngressFd(), frame(query)).retval, kOk);
  const std::vector<uint8_t> whole =
      frame(errorAbout(atBackend, "10.0.1.7", kUnreach, kPortUnreach));
  for (size_t len = 14 + 20 + 8; len <= whole.size(); ++len) {
    std::vector<uint8_t> f(whole.begin(), whole.begin() + static_cast<long>(len));
    put16(f, 16, static_cast<uint16_t>(len - 14));
    setIpv4HeaderChecksum(f);
    setIcmpChecksum(f);
    SCOPED_TRACE("cut to " + std::to_string(len) + " bytes");
    auto r = testRun(mode_->lxcIngressFd(), f);
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.retval, kOk);
    const size_t quoted = len - (14 + 20 + 8);
    if (quoted < 28) {
      EXPECT_EQ(r.out, f) << "rewritten: " << parsePacket(r.out).describe();
      continue;
    }
    const auto want = frame(errorAbout(query, "10.96.0.53", kUnreach, kPortUnreach, quoted));
    EXPECT_EQ(withoutChecksums(r.out), withoutChecksums(want));
    auto bad = checksumError(r.out);
    EXPECT_FALSE(bad) << *bad;
  }
}

// Outside clients through bpf_host: errors from a backend on another node
// about an SNATed NodePort flow.
class IcmpErrHostTest : public EbpfFixture {
 protected:
  void SetUp() override {
    SetUpMode();
    if (IsSkipped() || HasFatalFailure()) return;
    program(hostServices());
    auto r = mode_->loadUplink({ip(kNode), ip(kNode6)});
    ASSERT_TRUE(r.ok()) << r.error().message;
  }
};

TEST_F(IcmpErrHostTest, ErrorsAboutSnatedNodePortFlowsReachTheOutsideClient) {
  // Under BPF_PROG_TEST_RUN the FIB has no answer, so routed packets are
  // handed to the stack: TC_ACT_OK (as in host_packet_test.cc).
  runCases(mode_->uplinkIngressFd(), hostCases());
}

// A backend on this node answers an SNATed flow through its pod veth:
// bpf_lxc translates its error from the conntrack bpf_host wrote.
TEST_F(IcmpErrHostTest, LocalBackendsErrorIsTranslatedByLxcFromTheSameConntrack) {
  const PacketSpec query = udp(kOutside, 5100, kNode, 30053);
  const PacketSpec atBackend = from(to(query, "10.0.2.7", 5353), kNode, 5100);
  ASSERT_EQ(testRun(mode_->uplinkIngressFd(), frame(query)).retval, kOk);
  runCases(mode_->lxcIngressFd(),
           {{"a local backend's port unreachable, through bpf_lxc, reaches the outside client",
             frame(errorAbout(atBackend, "10.0.2.7", kUnreach, kPortUnreach)), kOk,
             frame(errorAbout(query, kNode, kUnreach, kPortUnreach)), "event.icmp_err_rev"}});
}

}  // namespace
}  // namespace sluice
