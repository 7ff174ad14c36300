// The pure parts of ProxySync: trigger-time parsing (the EndpointSlice
// annotation is RFC 3339 with nanoseconds) and the mode factory.
#include <gtest/gtest.h>

#include <chrono>

#include "control/agent/proxy/mode_factory.h"
#include "control/agent/proxy/proxy_sync.h"

namespace sluice::agent {
namespace {

using std::chrono::system_clock;

TEST(ParseRfc3339Test, ReadsTheFormatsKubernetesWrites) {
  const auto base = system_clock::from_time_t(1795316901);  // 2026-11-22T03:08:21Z
  EXPECT_EQ(parseRfc3339("2026-11-22T03:08:21Z"), base);
  EXPECT_EQ(parseRfc3339("2026-11-22T03:08:21.5Z"), base + std::chrono::milliseconds(500));
  EXPECT_EQ(parseRfc3339("2026-11-22T03:08:21.000000123Z"),
            base + std::chrono::duration_cast<system_clock::duration>(std::chrono::nanoseconds(123)));
  EXPECT_EQ(parseRfc3339("2026-11-22T04:08:21+01:00"), base);
  EXPECT_EQ(parseRfc3339("2026-11-22T02:38:21-00:30"), base);
}

TEST(ParseRfc3339Test, RejectsWhatIsNotRfc3339) {
  EXPECT_FALSE(parseRfc3339(""));
  EXPECT_FALSE(parseRfc3339("2026-11-22 03:08:21Z"));
  EXPECT_FALSE(parseRfc3339("2026-11-22T03:08:21"));
  EXPECT_FALSE(parseRfc3339("2026-11-22T03:08:21Zjunk"));
}

// The mode factory rejects unknown modes, naming the ones it has, before
// touching the kernel.
TEST(ModeFactoryTest, UnknownModesAreRejectedWithTheKnownOnes) {
  auto d = createDatapath("iptables", NodeConfig{}, {});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(d.error().message, "unknown mode \"iptables\": this agent has ebpf");
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
