// Test packet builder shared by the dataplane packet and NAT tests: builds
// packets field by field with lengths and checksums filled in, so a fixture
// reads as the packet it describes. Checksums come from a naive
// byte-at-a-time reference, not from dataplane/checksum.cc, so the tests
// check the datapath's arithmetic independently.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/ip_address.h"

namespace sluice::pkt {

using Bytes = std::vector<uint8_t>;

inline void append16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}

inline void put16(Bytes& b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v >> 8);
  b[off + 1] = static_cast<uint8_t>(v);
}

inline Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

inline Bytes text(std::string_view s) { return Bytes(s.begin(), s.end()); }

inline Bytes truncated(Bytes b, size_t n) {
  b.resize(n);
  return b;
}

inline uint64_t refSum(const uint8_t* p, size_t n) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; ++i) sum += (i % 2 == 0) ? uint64_t{p[i]} << 8 : p[i];
  return sum;
}

inline uint16_t refChecksum(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

inline IpAddress addr(std::string_view s) { return IpAddress::parse(s).value(); }

// Fills the L4 checksum of `l4` (TCP, UDP, ICMP, ICMPv6) in place.
inline void fillL4Checksum(const IpAddress& src, const IpAddress& dst, uint8_t protocol,
                           Bytes& l4) {
  size_t off = protocol == 6 ? 16 : protocol == 17 ? 6 : (protocol == 1 || protocol == 58) ? 2 : 0;
  if (off == 0 || l4.size() < off + 2) return;
  put16(l4, off, 0);
  uint64_t sum = refSum(l4.data(), l4.size());
  if (protocol != 1) {
    sum += refSum(src.bytes().data(), src.bytes().size());
    sum += refSum(dst.bytes().data(), dst.bytes().size());
    sum += protocol;
    sum += l4.size();
  }
  uint16_t check = refChecksum(sum);
  if (protocol == 17 && check == 0) check = 0xffff;
  put16(l4, off, check);
}

inline Bytes tcp(uint16_t sport, uint16_t dport, const Bytes& payload = {},
                 const Bytes& options = {}) {
  Bytes b;
  append16(b, sport);
  append16(b, dport);
  for (uint8_t x : {0, 0, 0, 1, 0, 0, 0, 0}) b.push_back(x);  // seq 1, ack 0
  b.push_back(static_cast<uint8_t>((20 + options.size()) / 4 << 4));
  b.push_back(0x18);   // PSH|ACK
  append16(b, 65535);  // window
  append16(b, 0);      // checksum
  append16(b, 0);      // urgent pointer
  return cat(cat(b, options), payload);
}

inline Bytes udp(uint16_t sport, uint16_t dport, const Bytes& payload = {}) {
  Bytes b;
  append16(b, sport);
  append16(b, dport);
  append16(b, static_cast<uint16_t>(8 + payload.size()));
  append16(b, 0);
  return cat(b, payload);
}

inline Bytes icmpEcho(uint8_t type, uint16_t id, uint16_t seq, const Bytes& payload = {}) {
  Bytes b{type, 0, 0, 0};
  append16(b, id);
  append16(b, seq);
  return cat(b, payload);
}

// `rest` is the second header word: unused (0), the MTU (v4 frag needed /
// v6 packet too big) or the pointer (parameter problem).
inline Bytes icmpError(uint8_t type, uint8_t code, const Bytes& quoted, uint32_t rest = 0) {
  Bytes b{type, code, 0, 0};
  append16(b, static_cast<uint16_t>(rest >> 16));
  append16(b, static_cast<uint16_t>(rest));
  return cat(b, quoted);
}

struct Ip4Fields {
  uint8_t ttl = 64;
  uint16_t flagsFragment = 0x4000;  // DF
  Bytes options{};
  std::optional<uint16_t> totalLength{};  // overrides the computed one
  std::optional<uint8_t> versionIhl{};    // overrides 0x45 + options
  bool keepL4Checksum = false;            // leave the L4 checksum field as given
};

inline Bytes ipv4(const IpAddress& src, const IpAddress& dst, uint8_t protocol, Bytes l4,
                  const Ip4Fields& f = {}) {
  if (!f.keepL4Checksum) fillL4Checksum(src, dst, protocol, l4);
  size_t headerLength = 20 + f.options.size();
  Bytes b;
  b.push_back(f.versionIhl.value_or(static_cast<uint8_t>(0x40 | headerLength / 4)));
  b.push_back(0);
  append16(b, f.totalLength.value_or(static_cast<uint16_t>(headerLength + l4.size())));
  append16(b, 0x1c46);  // identification
  append16(b, f.flagsFragment);
  b.push_back(f.ttl);
  b.push_back(protocol);
  append16(b, 0);
  b.insert(b.end(), src.bytes().begin(), src.bytes().end());
  b.insert(b.end(), dst.bytes().begin(), dst.bytes().end());
  b = cat(b, f.options);
  put16(b, 10, refChecksum(refSum(b.data(), b.size())));
  return cat(b, l4);
}

// An IPv6 extension header: `body` follows its next-header and length bytes
// and is zero-padded to a multiple of 8 bytes overall.
struct Ext {
  uint8_t type;
  Bytes body;
};

struct Ip6Fields {
  std::vector<Ext> exts{};
  std::optional<uint16_t> payloadLength{};
  bool keepL4Checksum = false;
};

inline Bytes ipv6(const IpAddress& src, const IpAddress& dst, uint8_t protocol, Bytes l4,
                  const Ip6Fields& f = {}) {
  if (!f.keepL4Checksum) fillL4Checksum(src, dst, protocol, l4);
  Bytes chain;
  for (size_t i = 0; i < f.exts.size(); ++i) {
    Bytes h{i + 1 < f.exts.size() ? f.exts[i + 1].type : protocol, 0};
    h = cat(h, f.exts[i].body);
    h.resize((h.size() + 7) / 8 * 8);
    if (f.exts[i].type != 44) h[1] = static_cast<uint8_t>(h.size() / 8 - 1);
    chain = cat(chain, h);
  }
  Bytes b{0x60, 0, 0, 0};
  append16(b, f.payloadLength.value_or(static_cast<uint16_t>(chain.size() + l4.size())));
  b.push_back(f.exts.empty() ? protocol : f.exts[0].type);
  b.push_back(64);  // hop limit
  b.insert(b.end(), src.bytes().begin(), src.bytes().end());
  b.insert(b.end(), dst.bytes().begin(), dst.bytes().end());
  return cat(cat(b, chain), l4);
}

inline Bytes ethernet(const Bytes& l3, uint16_t etherType, std::optional<uint16_t> vlanId = {}) {
  Bytes b{0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};  // dst, src MAC
  if (vlanId) {
    append16(b, kEtherTypeVlan);
    append16(b, *vlanId);
  }
  append16(b, etherType);
  return cat(b, l3);
}

inline Bytes eth4(const Bytes& l3) { return ethernet(l3, kEtherTypeIpv4); }
inline Bytes eth6(const Bytes& l3) { return ethernet(l3, kEtherTypeIpv6); }

}  // namespace sluice::pkt
