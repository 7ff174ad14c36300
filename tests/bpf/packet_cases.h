// Packet-test building blocks shared by every mode's packet tables (the
// eBPF programs under BPF_PROG_TEST_RUN, the DPDK pipeline on mbufs):
// short constructors for frontends, backends, services and packet specs,
// and the table row type. Verdicts are the tc ones (TC_ACT_*); each
// runner maps them onto its own (tests/dpdk/packet_case_runner.h).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/service.h"
#include "tests/bpf/packet_builder.h"

namespace sluice::testing {

inline IpAddress ip(const char* text) {
  auto r = IpAddress::parse(text);
  EXPECT_TRUE(r.ok()) << text;
  return r.ok() ? *r : IpAddress();
}

inline Frontend frontend(const char* addr, uint16_t port, Protocol proto = Protocol::kTcp,
                         FrontendScope scope = FrontendScope::kClusterIp) {
  Frontend f;
  f.address = ip(addr);
  f.port = port;
  f.protocol = proto;
  f.scope = scope;
  return f;
}

inline Backend backend(const char* addr, uint16_t port, BackendState state = BackendState::kActive,
                       bool nodeLocal = false) {
  Backend b;
  b.address = ip(addr);
  b.port = port;
  b.state = state;
  b.nodeLocal = nodeLocal;
  return b;
}

inline Service service(const std::string& name, Protocol proto, std::vector<Frontend> frontends,
                       std::vector<Backend> backends) {
  Service s;
  s.key = {"default", name, ""};
  s.protocol = proto;
  s.frontends = std::move(frontends);
  s.backends = std::move(backends);
  return s;
}

inline PacketSpec tcp(const char* src, uint16_t sport, const char* dst, uint16_t dport,
                      uint8_t flags = kTcpSyn) {
  PacketSpec s;
  s.src = ip(src);
  s.dst = ip(dst);
  s.proto = Protocol::kTcp;
  s.sport = sport;
  s.dport = dport;
  s.tcpFlags = flags;
  return s;
}

inline PacketSpec udp(const char* src, uint16_t sport, const char* dst, uint16_t dport) {
  PacketSpec s;
  s.src = ip(src);
  s.dst = ip(dst);
  s.proto = Protocol::kUdp;
  s.sport = sport;
  s.dport = dport;
  s.payload = {'p', 'i', 'n', 'g'};
  return s;
}

// One packet-test table row: a frame through a program and what must come
// out of it.
struct PacketCase {
  std::string scenario;
  std::vector<uint8_t> in;
  uint32_t verdict;
  // The frame the program must leave; nullopt: exactly the input (nothing
  // rewritten, even when dropped).
  std::optional<std::vector<uint8_t>> out;
  std::string counter;  // "drop.x" / "event.y" that must grow by one; empty: none checked
};

}  // namespace sluice::testing
