// The eBPF ICMP-error scenarios (errors about service flows, and errors
// that must pass untouched) as data, shared by the BPF packet tests
// (tests/bpf/icmp_err_packet_test.cc) and the DPDK ones (tests/dpdk/).
// Each table opens its flows with their first packets, then sends errors
// about them. An expected error is built independently: the error the
// client would have got from the backend directly, quoting the client's own
// packet byte for byte.
#pragma once

#include <cstddef>
#include <vector>

#include "dataplane/service.h"
#include "tests/bpf/packet_cases.h"

namespace sluice::testing::icmp_err {

inline constexpr const char* kClient = "10.0.0.2";
inline constexpr const char* kClient6 = "fd00::2";
inline constexpr const char* kRouter = "10.0.9.1";
inline constexpr const char* kRouter6 = "fd00:9::1";
// bpf_host's node addresses and an outside client.
inline constexpr const char* kNode = "192.168.1.10";
inline constexpr const char* kNode6 = "fd00:c0a8::10";
inline constexpr const char* kOutside = "203.0.113.7";
inline constexpr const char* kOutside6 = "2001:db8::7";

// RFC 792 / RFC 4443 types and codes.
inline constexpr uint8_t kUnreach = 3, kPortUnreach = 3, kFragNeeded = 4, kTimeExceeded = 11;
inline constexpr uint8_t kUnreach6 = 1, kPortUnreach6 = 4, kTooBig6 = 2;

std::vector<uint8_t> frame(const PacketSpec& s);
PacketSpec to(PacketSpec s, const char* addr, uint16_t port);
PacketSpec from(PacketSpec s, const char* addr, uint16_t port);
// An ICMP(v6) error sent by `sender` about `quoted` (an IP packet as its
// destination received it), quoting its first quoteLen bytes from the IP
// header on (all of it if shorter).
PacketSpec errorAbout(const PacketSpec& quoted, const char* sender, uint8_t type, uint8_t code,
                      size_t quoteLen = 1500);
// Recomputes the ICMP (v4) checksum of a frame without IPv4 options.
void setIcmpChecksum(std::vector<uint8_t>& f);
PacketSpec withData(PacketSpec s);

// Pod clients (through bpf_lxc; on the DPDK path from the kernel side),
// backends on other nodes but the client itself ("self").
ServiceTable podServices();
std::vector<PacketCase> podCases();
std::vector<PacketCase> untouchedCases();
// Outside clients on the uplink, NodePorts with backends on other nodes.
ServiceTable hostServices();
std::vector<PacketCase> hostCases();

}  // namespace sluice::testing::icmp_err
