// The eBPF host scenarios (outside clients on the node's uplink reaching
// NodePort, LoadBalancer and externalIP frontends) as data, shared by the
// BPF packet tests (tests/bpf/host_packet_test.cc, through bpf_host) and
// the DPDK ones (tests/dpdk/, on the uplink port). Each row: {scenario,
// input frame, tc verdict, expected output frame, counter}.
#pragma once

#include <vector>

#include "dataplane/service.h"
#include "tests/bpf/packet_cases.h"

namespace sluice::testing::host {

// This node's uplink addresses (SNAT sources) and an outside client.
inline constexpr const char* kNode = "192.168.1.10";
inline constexpr const char* kNode6 = "fd00:c0a8::10";
inline constexpr const char* kOutside = "203.0.113.7";
inline constexpr const char* kOutside6 = "2001:db8::7";
inline constexpr const char* kLbIp = "198.51.100.10";
inline constexpr const char* kExternalIp = "198.51.100.20";

std::vector<uint8_t> frame(const PacketSpec& s);
PacketSpec to(PacketSpec s, const char* addr, uint16_t port);
PacketSpec from(PacketSpec s, const char* addr, uint16_t port);
Frontend nodePort(const char* addr, uint16_t port, Protocol proto = Protocol::kTcp);

// Backends on other nodes but 10.0.1.45 (np-local's node-local one).
ServiceTable services();
// In order: each flow's later packets depend on its first.
std::vector<PacketCase> serviceCases();
std::vector<PacketCase> malformedCases();

}  // namespace sluice::testing::host
