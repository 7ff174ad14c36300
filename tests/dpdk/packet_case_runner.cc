#include "tests/dpdk/packet_case_runner.h"

#include <gtest/gtest.h>
#include <linux/pkt_cls.h>
#include <netinet/in.h>

#include <cstring>

namespace sluice::dpdk::testing {
namespace {

using sluice::testing::PacketCase;
using sluice::testing::PacketView;

const char* toString(Action a) {
  switch (a) {
    case Action::kTxUplink:
      return "tx-uplink";
    case Action::kTxKernel:
      return "tx-kernel";
    case Action::kException:
      return "exception";
    case Action::kExceptionPriority:
      return "exception-priority";
    case Action::kHandoff:
      return "handoff";
    case Action::kDrop:
      return "drop";
  }
  return "?";
}

std::vector<uint8_t> withoutMacs(std::vector<uint8_t> f) {
  if (f.size() >= 12) std::memset(f.data(), 0, 12);
  return f;
}

}  // namespace

KernelSide addressesIn(std::vector<std::string> prefixes) {
  struct Prefix {
    IpAddress address;
    int bits;
  };
  std::vector<Prefix> parsed;
  for (const std::string& p : prefixes) {
    const size_t slash = p.find('/');
    parsed.push_back(
        {IpAddress::parse(p.substr(0, slash)).value(), std::stoi(p.substr(slash + 1))});
  }
  return [parsed](const IpAddress& a) {
    for (const Prefix& p : parsed) {
      if (p.address.family() != a.family()) continue;
      const auto x = a.bytes(), y = p.address.bytes();
      int bits = p.bits;
      bool match = true;
      for (size_t i = 0; bits > 0 && match; ++i, bits -= 8) {
        const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
        match = (x[i] & mask) == (y[i] & mask);
      }
      if (match) return true;
    }
    return false;
  };
}

std::optional<IpAddress> sourceOf(const std::vector<uint8_t>& f) {
  if (f.size() < 14) return std::nullopt;
  const uint16_t type = static_cast<uint16_t>(f[12] << 8 | f[13]);
  if (type == 0x0800 && f.size() >= 14 + 20) {
    return IpAddress::v4({f[26], f[27], f[28], f[29]});
  }
  if (type == 0x86dd && f.size() >= 14 + 40) {
    std::array<uint8_t, 16> b;
    std::memcpy(b.data(), f.data() + 22, 16);
    return IpAddress::v6(b);
  }
  return std::nullopt;
}

void runCases(TestPipeline& p, const std::vector<PacketCase>& cases, const KernelSide& kernelSide,
              PortRole defaultSide) {
  uint64_t now = 1'000'000'000'000ULL;
  for (const PacketCase& c : cases) {
    SCOPED_TRACE(c.scenario);
    now += 1'000'000;
    const auto src = sourceOf(c.in);
    const PortRole from =
        src ? (kernelSide(*src) ? PortRole::kKernel : PortRole::kUplink) : defaultSide;
    const uint64_t before = c.counter.empty() ? 0 : p.counter(c.counter);
    const RunResult r = p.run(c.in, from, now);

    Action want = Action::kDrop;
    if (c.verdict == TC_ACT_REDIRECT) {
      want = from == PortRole::kUplink ? Action::kTxUplink : Action::kTxKernel;
    } else if (c.verdict == TC_ACT_OK && !c.out) {
      want = from == PortRole::kKernel ? Action::kTxUplink : Action::kException;
    } else if (c.verdict == TC_ACT_OK) {
      const auto dst = sluice::testing::parsePacket(*c.out).dst;
      want = kernelSide(dst) ? Action::kTxKernel : Action::kTxUplink;
    }
    Action got = r.verdict.action;
    if (want == Action::kException && got == Action::kExceptionPriority) got = want;
    EXPECT_EQ(toString(got), std::string(toString(want)))
        << "from " << (from == PortRole::kUplink ? "uplink" : "kernel") << ", reason "
        << sluice::toString(r.verdict.reason);

    if (!c.out || c.verdict == TC_ACT_SHOT) {
      EXPECT_EQ(r.frame, c.in) << "rewritten: " << sluice::testing::parsePacket(r.frame).describe();
    } else {
      const std::vector<uint8_t>& want = *c.out;
      if (c.verdict == TC_ACT_REDIRECT) {
        EXPECT_EQ(sluice::testing::withoutChecksums(r.frame),
                  sluice::testing::withoutChecksums(want))
            << "got " << sluice::testing::parsePacket(r.frame).describe() << ", want "
            << sluice::testing::parsePacket(want).describe();
      } else {
        EXPECT_EQ(withoutMacs(sluice::testing::withoutChecksums(r.frame)),
                  withoutMacs(sluice::testing::withoutChecksums(want)))
            << "got " << sluice::testing::parsePacket(r.frame).describe() << ", want "
            << sluice::testing::parsePacket(want).describe();
        const PacketView v = sluice::testing::parsePacket(r.frame);
        if (r.verdict.action == Action::kTxKernel) {
          EXPECT_EQ(v.dstMac, p.config().kernelMac);
          EXPECT_EQ(v.srcMac, p.config().routerMac);
        } else {
          // Towards the client it came from, or the gateway for a remote backend.
          EXPECT_TRUE(v.dstMac == *p.config().gatewayMac || v.dstMac == sluice::testing::kPodMac ||
                      v.dstMac == sluice::testing::kHostMac);
          EXPECT_EQ(v.srcMac, p.config().uplinkMac);
        }
      }
      auto bad = sluice::testing::checksumError(r.frame);
      EXPECT_FALSE(bad) << *bad;
      const PacketView wantView = sluice::testing::parsePacket(want);
      if (wantView.proto == IPPROTO_UDP && wantView.family == IpFamily::kV4 &&
          r.frame.size() > wantView.l4Off + 7) {
        const bool wantNone = want[wantView.l4Off + 6] == 0 && want[wantView.l4Off + 7] == 0;
        const bool gotNone = r.frame[wantView.l4Off + 6] == 0 && r.frame[wantView.l4Off + 7] == 0;
        EXPECT_EQ(gotNone, wantNone) << "UDP checksum 0 (none) not preserved";
      }
    }
    if (!c.counter.empty()) {
      EXPECT_EQ(p.counter(c.counter), before + 1) << c.counter;
    }
  }
}

}  // namespace sluice::dpdk::testing
