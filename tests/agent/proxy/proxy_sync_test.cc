// The pure parts of ProxySync: the mode factory's checks.
#include <gtest/gtest.h>

#include <chrono>

#include "control/agent/proxy/mode_factory.h"
#include "control/agent/proxy/proxy_sync.h"

namespace sluice::agent {
namespace {

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
