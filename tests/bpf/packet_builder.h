// Packets for BPF packet tests: Ethernet + IPv4/IPv6 + TCP/UDP/ICMP built
// from a spec with correct lengths and checksums, a parser that reads back
// the fields tests assert on, and a full checksum verifier (recomputed from
// scratch, so it checks the datapath's incremental updates independently).
//
// Malformed packets are made by editing a valid one (truncate, patch a
// field, optionally fix the IPv4 header checksum), so each fixture differs
// from a valid packet in exactly the way its scenario names.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/ip_address.h"

namespace sluice::testing {

inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;

using Mac = std::array<uint8_t, 6>;
inline constexpr Mac kPodMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};   // the pod's eth0
inline constexpr Mac kHostMac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};  // host-side veth

struct PacketSpec {
  IpAddress src;
  IpAddress dst;
  Protocol proto = Protocol::kTcp;
  uint16_t sport = 0;  // host order
  uint16_t dport = 0;
  uint8_t tcpFlags = kTcpSyn;
  uint32_t seq = 1000;
  uint32_t ack = 0;
  uint16_t window = 64240;
  std::vector<uint8_t> payload;
  // ICMP / ICMPv6 (proto kIcmp / kIcmpV6): type, code, and the body after
  // the 4-byte unused field (the quoted packet of an error).
  uint8_t icmpType = 0;
  uint8_t icmpCode = 0;
  Mac srcMac = kPodMac;
  Mac dstMac = kHostMac;
  uint8_t ttl = 64;
  uint16_t ipId = 0;
  uint16_t ipv4Frag = 0;             // raw frag_off field: 0x2000 MF, low 13 bits offset / 8
  std::vector<uint8_t> ipv4Options;  // multiple of 4 bytes
  // IPv6 extension headers, each {next-header value of this header, body}:
  // the builder chains them and fills the next-header/length bytes.
  struct Ext {
    uint8_t type;               // 0 HBH, 43 routing, 44 fragment, 60 dstopts
    std::vector<uint8_t> body;  // bytes after next-header+length (6, 14, ... bytes)
  };
  std::vector<Ext> ipv6Ext;
  bool udpZeroChecksum = false;  // IPv4 UDP "no checksum"
  size_t padTo = 0;              // pad the frame with zeros to this size (Ethernet minimum)
};

std::vector<uint8_t> buildPacket(const PacketSpec& spec);

// What tests read back. Offsets are from the frame start.
struct PacketView {
  bool ok = false;  // Ethernet + IP + L4 header all present
  Mac dstMac{}, srcMac{};
  IpFamily family = IpFamily::kV4;
  IpAddress src, dst;
  uint8_t proto = 0;
  uint16_t sport = 0, dport = 0;  // host order
  uint8_t tcpFlags = 0;
  uint32_t seq = 0, ack = 0;
  uint8_t icmpType = 0, icmpCode = 0;
  size_t l3Off = 0, l4Off = 0, end = 0;  // end: l3Off + IP length
  std::string describe() const;          // "10.0.0.2:40000 -> 10.96.0.10:80 tcp [S]"
};
PacketView parsePacket(const std::vector<uint8_t>& frame);

// Recomputes IPv4 header, TCP/UDP (with pseudo-header) and ICMP/ICMPv6
// checksums; empty when all verify, else what failed.
std::optional<std::string> checksumError(const std::vector<uint8_t>& frame);

// The frame with IP and L4 checksum fields zeroed: for comparing a
// datapath's output with an expected frame when checksums are checked
// separately (one's complement has two zeros; an incremental update may
// legitimately produce the other one).
std::vector<uint8_t> withoutChecksums(std::vector<uint8_t> frame);

// Edits for malformed fixtures.
void setIpv4HeaderChecksum(std::vector<uint8_t>& frame);  // recompute after an edit
void put16(std::vector<uint8_t>& frame, size_t off, uint16_t hostValue);

}  // namespace sluice::testing
