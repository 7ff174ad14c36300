// The BPF build pipeline end to end: an object compiled here, opened through
// its generated skeleton, loaded by this kernel, and run on a packet.
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>

#include <memory>

#include "pass.skel.h"
#include "tests/bpf/bpf_test_run.h"

namespace sluice {
namespace {

struct SkelDeleter {
  void operator()(pass_bpf* s) const { pass_bpf__destroy(s); }
};

// A 60-byte Ethernet frame: the minimum size the test-run path accepts for tc.
std::vector<uint8_t> minimalFrame() {
  std::vector<uint8_t> f(60, 0);
  f[12] = 0x08;  // ethertype IPv4, network order
  f[13] = 0x00;
  return f;
}

TEST(PassProgramTest, TcAndXdpPassPacketsUnchanged) {
  // Both baseline programs return their hook's pass verdict and leave the packet as it was.
  std::unique_ptr<pass_bpf, SkelDeleter> skel(pass_bpf__open_and_load());
  ASSERT_TRUE(skel) << "pass.bpf.o failed to load (verifier log above)";

  auto frame = minimalFrame();
  auto tc = testing::testRun(bpf_program__fd(skel->progs.pass_tc), frame);
  ASSERT_EQ(tc.err, 0);
  EXPECT_EQ(tc.retval, static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(tc.out, frame);

  auto xdp = testing::testRun(bpf_program__fd(skel->progs.pass_xdp), frame);
  ASSERT_EQ(xdp.err, 0);
  EXPECT_EQ(xdp.retval, static_cast<uint32_t>(XDP_PASS));
  EXPECT_EQ(xdp.out, frame);
}

}  // namespace
}  // namespace sluice
