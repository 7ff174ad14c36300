// The kernel gate and what each missing feature costs, from probe results
// given as values: no kernel needed (unit suite). The probes themselves run
// against real kernels in kernel_variants_test (bpf suite, and in the vm
// suite's 6.1 and 6.12).
#include "bpf/loader/kernel_features.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace sluice::bpf {
namespace {

KernelVersion v(int major, int minor, int patch = 0) { return {major, minor, patch}; }

// uname -r of the kernels users run: Debian, Ubuntu, RHEL, upstream rc.
TEST(KernelVersionTest, ParsesDistributionReleases) {
  EXPECT_EQ(KernelVersion::parse("6.1.0-57-amd64"), v(6, 1, 0));
  EXPECT_EQ(KernelVersion::parse("6.12.118+deb12-amd64"), v(6, 12, 118));
  EXPECT_EQ(KernelVersion::parse("5.15.0-91-generic"), v(5, 15, 0));
  EXPECT_EQ(KernelVersion::parse("4.18.0-553.el8_10.x86_64"), v(4, 18, 0));
  EXPECT_EQ(KernelVersion::parse("6.10-rc3"), v(6, 10, 0));
  EXPECT_EQ(KernelVersion::parse("6.18.44-fc-v1300"), v(6, 18, 44));
  EXPECT_FALSE(KernelVersion::parse(""));
  EXPECT_FALSE(KernelVersion::parse("6"));
  EXPECT_FALSE(KernelVersion::parse("linux"));
  EXPECT_LT(v(5, 15), kTestedMinimumKernel);
  EXPECT_LT(v(6, 1), v(6, 12));
}

// Everything the mode cannot do without is in Linux 5.10 (redirect_neigh,
// BPF_F_INNER_MAP); the tested minimum is newer than that.
TEST(KernelProbesTest, RequiredFeaturesAllExistFrom510AndTheTestedMinimumIsNotOlder) {
  EXPECT_EQ(requiredSince(), v(5, 10));
  EXPECT_GE(kTestedMinimumKernel, requiredSince());
}

// One row per probe, each with a unique id, a name, a release, a use; an
// optional probe either degrades a feature or costs only speed.
TEST(KernelProbesTest, EveryProbeIsDescribedOnceAndOptionalOnesSayWhatTheyTakeAway) {
  std::set<std::string_view> ids;
  size_t i = 0;
  for (const KernelProbeInfo& p : kernelProbes()) {
    EXPECT_EQ(static_cast<size_t>(p.probe), i++) << p.id << ": rows out of enum order";
    EXPECT_TRUE(ids.insert(p.id).second) << p.id;
    EXPECT_FALSE(p.name.empty()) << p.id;
    EXPECT_FALSE(p.since.empty()) << p.id;
    EXPECT_FALSE(p.usedFor.empty()) << p.id;
    if (p.required) {
      EXPECT_FALSE(p.degrades) << p.id << ": required probes degrade nothing";
    }
  }
  EXPECT_EQ(i, kKernelProbeCount);
}

// Ubuntu 22.04's 5.15 with every feature present: refused by default with
// the release and the way out; the override starts it.
TEST(CheckKernelTest, OlderThanTestedIsRefusedWithTheReleaseUnlessOverridden) {
  const KernelFeatures k = KernelFeatures::all("5.15.0-91-generic");
  auto r = checkKernel(k, false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kFailedPrecondition);
  for (const char* part : {"5.15.0-91-generic", "uname -r", "Linux 6.1 or later",
                           "--ebpf-allow-untested-kernel=true"}) {
    EXPECT_NE(r.error().message.find(part), std::string::npos) << part << " in " << r.error().message;
  }
  EXPECT_TRUE(checkKernel(k, true).ok());
  EXPECT_TRUE(checkKernel(KernelFeatures::all("6.1.0-57-amd64"), false).ok());
  EXPECT_TRUE(checkKernel(KernelFeatures::all("6.12.118+deb12-amd64"), false).ok());
}

// A kernel without bpf_redirect_neigh (5.4) cannot serve NodePorts: no
// override starts it, and the message names what is missing and since when.
TEST(CheckKernelTest, AMissingRequiredFeatureIsRefusedEvenWithTheOverride) {
  KernelFeatures k = KernelFeatures::all("5.4.0-150-generic");
  k.set(KernelProbe::kTcRedirectNeigh, false, "not in this kernel");
  k.set(KernelProbe::kMapInnerMapFlag, false, "not in this kernel");
  for (bool allow : {false, true}) {
    auto r = checkKernel(k, allow);
    ASSERT_FALSE(r.ok());
    for (const char* part : {"Linux 5.4.0-150-generic", "bpf_redirect_neigh() in tc (Linux 5.10)",
                             "BPF_F_INNER_MAP", "not in this kernel", "Linux 5.10 and later"}) {
      EXPECT_NE(r.error().message.find(part), std::string::npos) << part << " in " << r.error().message;
    }
  }
  EXPECT_FALSE(checkRequired(k).ok());
}

// Each optional probe, missing alone, takes away exactly its feature, and
// the effect says what the user sees and what the kernel lacks.
TEST(DegradationsTest, EachMissingOptionalProbeTakesAwayItsFeatureAndSaysWhy) {
  for (const KernelProbeInfo& p : kernelProbes()) {
    if (p.required) continue;
    SCOPED_TRACE(std::string(p.id));
    KernelFeatures k = KernelFeatures::all("6.1.0-57-amd64");
    k.set(p.probe, false, "cleared");
    const auto lost = k.degradations();
    EXPECT_TRUE(checkKernel(k, false).ok()) << "an optional probe never stops the mode";
    if (!p.degrades) {
      EXPECT_TRUE(lost.empty());
      continue;
    }
    ASSERT_EQ(lost.size(), 1u);
    ASSERT_EQ(lost.begin()->first, *p.degrades);
    EXPECT_NE(lost.begin()->second.find(std::string(p.name) + " (Linux " + std::string(p.since) + ")"),
              std::string::npos)
        << lost.begin()->second;
  }
  EXPECT_TRUE(KernelFeatures::all("6.18.0").degradations().empty());
}

// The user-visible words of the two degradations a pre-5.18 kernel brings.
TEST(DegradationsTest, PreFiveEighteenRefusalsReadEpermAndXdpDropsMoveToTc) {
  KernelFeatures k = KernelFeatures::all("5.15.0-91-generic");
  k.set(KernelProbe::kSockSetRetval, false, "not in this kernel");
  k.set(KernelProbe::kXdpLoadBytes, false, "not in this kernel");
  k.set(KernelProbe::kXdpGetBuffLen, false, "not in this kernel");
  k.set(KernelProbe::kKfuncSockDestroy, false, "not in this kernel");
  const auto lost = k.degradations();
  ASSERT_EQ(lost.size(), 3u);
  EXPECT_NE(lost.at(ModeFeature::kSocketLbErrno).find("EPERM instead of ECONNREFUSED"),
            std::string::npos);
  const std::string& xdp = lost.at(ModeFeature::kXdpEarlyDrop);
  EXPECT_NE(xdp.find("bpf_xdp_load_bytes() in xdp (Linux 5.18), bpf_xdp_get_buff_len()"),
            std::string::npos)
      << xdp;
  EXPECT_NE(lost.at(ModeFeature::kUdpStaleFlowCleanup).find("not reset"), std::string::npos);
}

}  // namespace
}  // namespace sluice::bpf
