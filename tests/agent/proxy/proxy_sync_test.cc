// The pure parts of ProxySync and its metrics: the Prometheus text the
// /metrics endpoint serves, and the mode factory's checks.
#include <gtest/gtest.h>

#include <chrono>

#include "control/agent/proxy/metrics.h"
#include "control/agent/proxy/mode_factory.h"
#include "control/agent/proxy/proxy_sync.h"

namespace sluice::agent {
namespace {

TEST(HistogramTest, RendersCumulativeBucketsSumAndCount) {
  Histogram h({0.01, 0.1, 1});
  h.observe(0.005);
  h.observe(0.05);
  h.observe(0.05);
  h.observe(5);
  std::string out;
  h.render("x_seconds", "help text", out);
  EXPECT_NE(out.find("# TYPE x_seconds histogram\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{le=\"0.01\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{le=\"0.1\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{le=\"1\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{le=\"+Inf\"} 4\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_sum 5.105\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_count 4\n"), std::string::npos) << out;
}

TEST(EscapeLabelTest, EscapesQuotesBackslashesAndNewlines) {
  EXPECT_EQ(escapeLabel("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

// The mode factory rejects unknown modes, naming the ones it has, before
// touching the kernel.
TEST(ModeFactoryTest, UnknownModesAreRejectedWithTheKnownOnes) {
  auto d = createDatapath("iptables", NodeConfig{}, {});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::kInvalidArgument);
  // ebpf, ipvs, then dpdk where the build found libdpdk.
  EXPECT_EQ(d.error().message.rfind("unknown mode \"iptables\": this agent has ebpf, ipvs", 0), 0u)
      << d.error().message;
}

// The dpdk mode checks its flags before it starts or dials anything.
TEST(ModeFactoryTest, BadDpdkFlagsNameTheFlag) {
  if (!findMode("dpdk").ok()) GTEST_SKIP() << "built without libdpdk";
  auto bad = [](ModeFlagValues v) {
    auto d = createDatapath("dpdk", NodeConfig{}, {{"dpdk", std::move(v)}});
    EXPECT_FALSE(d.ok());
    return d.ok() ? std::string() : d.error().message;
  };
  EXPECT_EQ(bad({{"start", "maybe"}}), "--dpdk-start maybe: must be true or false");
  EXPECT_EQ(bad({{"no-such", "1"}}), "--dpdk-no-such: no such flag of the dpdk mode");
  EXPECT_EQ(bad({}), "the dpdk mode needs an uplink: --uplink, --dpdk-uplink-vdev or --dpdk-uplink-pci");
}

// A mode's own flags are checked by the mode, with the flag's name, before
// anything is loaded.
TEST(ModeFactoryTest, BadModeFlagsNameTheFlag) {
  auto bad = [](ModeFlagValues v) {
    auto d = createDatapath("ebpf", NodeConfig{}, {{"ebpf", std::move(v)}});
    EXPECT_FALSE(d.ok());
    return d.ok() ? std::string() : d.error().message;
  };
  EXPECT_EQ(bad({{"xdp", "maybe"}}), "--ebpf-xdp maybe: must be true or false");
  EXPECT_EQ(bad({{"pin-dir", "relative/dir"}}), "--ebpf-pin-dir relative/dir: must be an absolute path");
  EXPECT_EQ(bad({{"no-such", "1"}}), "--ebpf-no-such: no such flag of the ebpf mode");
}

// Every mode declares its flags with help text; defaults are parseable by
// the mode itself.
TEST(ModeFactoryTest, EveryModeDeclaresItsFlags) {
  for (const ModeDriver& d : modeDrivers()) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_TRUE(d.create && d.cleanup) << d.name;
    for (const ModeFlag& f : d.flags) {
      EXPECT_FALSE(f.name.empty()) << d.name;
      EXPECT_FALSE(f.help.empty()) << d.name << " " << f.name;
      EXPECT_EQ(f.name.find(d.name + "-"), std::string::npos) << "flags are prefixed by the factory: " << f.name;
    }
  }
}

}  // namespace
}  // namespace sluice::agent
