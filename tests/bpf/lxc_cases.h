// The eBPF lxc scenarios (a pod's traffic to services) as data, shared by
// the BPF packet tests (tests/bpf/lxc_packet_test.cc, through bpf_lxc) and
// the DPDK ones (tests/dpdk/, where the pod's frames come in from the
// kernel side and remote backends answer on the uplink). Each row:
// {scenario, input frame, tc verdict, expected output frame, counter}.
#pragma once

#include <vector>

#include "dataplane/service.h"
#include "tests/bpf/packet_cases.h"

namespace sluice::testing::lxc {

// The pod the packets come from, and its IPv6 address.
inline constexpr const char* kClient = "10.0.0.2";
inline constexpr const char* kClient6 = "fd00::2";

std::vector<uint8_t> frame(const PacketSpec& s);
// The spec with its destination rewritten: what DNAT must produce.
PacketSpec dnat(PacketSpec s, const char* addr, uint16_t port);
// The spec with its source rewritten: what reverse NAT must produce.
PacketSpec snat(PacketSpec s, const char* addr, uint16_t port);
// The refusal of a TCP segment: RST from the frontend back to the client.
PacketSpec rstFor(const PacketSpec& in, uint32_t seq, uint32_t ack, uint8_t flags);
// The refusal of a datagram: ICMP(v6) port unreachable quoting the IP
// header and the first 8 bytes of the UDP datagram.
PacketSpec unreachableFor(const PacketSpec& in);
PacketSpec withPayload(PacketSpec s, uint8_t flags, uint32_t seq, uint32_t ack);

// The services every case runs against (backends on other nodes, but for
// the client pod itself in "self").
ServiceTable services();
// In order: each flow's later packets depend on its first.
std::vector<PacketCase> serviceCases();
// Malformed input: never rewritten, never forwarded as if valid.
std::vector<PacketCase> malformedCases();

}  // namespace sluice::testing::lxc
