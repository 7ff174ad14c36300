// Shared helpers for the conntrack tests: time constants, flow builders, the
// expected reply tuple computed independently of Conntrack, and the fixture.
#pragma once

#include <gtest/gtest.h>

#include <string_view>

#include "dataplane/conntrack.h"

namespace sluice::conntrack_testing {

constexpr uint64_t kS = kNsPerSecond;
// Tests start the clock away from zero so "lastSeen 0" bugs cannot hide.
constexpr uint64_t kT0 = 1'000 * kS;

inline IpAddress ip(std::string_view text) { return IpAddress::parse(text).value(); }

inline FlowTuple tuple(std::string_view src, uint16_t srcPort, std::string_view dst, uint16_t dstPort,
                Protocol protocol = Protocol::kTcp) {
  return {ip(src), ip(dst), srcPort, dstPort, protocol};
}

// A client 10.0.0.1:40000 reaching frontend 10.96.0.10:80, DNAT to a pod.
inline ConntrackFlow webFlow(uint16_t clientPort = 40000, uint32_t backendId = 7,
                      Protocol protocol = Protocol::kTcp) {
  ConntrackFlow f;
  f.original = tuple("10.0.0.1", clientPort, "10.96.0.10", 80, protocol);
  f.nat.backend = {ip("10.244.1.5"), 8080};
  f.backendId = backendId;
  return f;
}

// The reply tuple a flow must get, computed here rather than by Conntrack.
inline FlowTuple expectedReply(const ConntrackFlow& f) {
  const NatEndpoint to = f.nat.snat.value_or(NatEndpoint{f.original.src, f.original.srcPort});
  return {f.nat.backend.address, to.address, f.nat.backend.port, to.port, f.original.protocol};
}

class ConntrackTest : public ::testing::Test {
 protected:
  static Conntrack make(uint32_t capacity, ConntrackTimeouts timeouts = {}) {
    auto ct = Conntrack::create({capacity, timeouts});
    EXPECT_TRUE(ct.ok()) << (ct.ok() ? "" : ct.error().message);
    return std::move(ct).value();
  }

  // Inserts and expects a fresh entry.
  static const ConntrackEntry& add(Conntrack& ct, const ConntrackFlow& flow, uint64_t nowNs,
                                   uint8_t tcpFlags = kTcpFlagSyn) {
    auto r = ct.insert(flow, tcpFlags, 60, nowNs);
    EXPECT_EQ(r.status, ConntrackInsertStatus::kInserted);
    return *r.match().entry;
  }

  // Delivers one packet of `tuple` the way the fast path does: lookup, then update.
  static ConntrackState packet(Conntrack& ct, const FlowTuple& tuple, uint8_t tcpFlags,
                               uint64_t nowNs) {
    auto m = ct.lookup(tuple, nowNs);
    EXPECT_TRUE(m) << "no entry for the packet";
    return m ? ct.update(m, tcpFlags, 100, nowNs) : ConntrackState::kOther;
  }
};
}  // namespace sluice::conntrack_testing
