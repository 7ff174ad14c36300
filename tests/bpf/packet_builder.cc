#include "tests/bpf/packet_builder.h"

#include <algorithm>
#include <cstring>

namespace sluice::testing {
namespace {

constexpr size_t kEth = 14;

uint32_t sumBytes(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t{p[i]} << 8) | p[i + 1];
  if (n & 1) sum += uint32_t{p[n - 1]} << 8;
  return sum;
}

uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

uint16_t get16(const std::vector<uint8_t>& f, size_t off) {
  return static_cast<uint16_t>((f[off] << 8) | f[off + 1]);
}
uint32_t get32(const std::vector<uint8_t>& f, size_t off) {
  return (uint32_t{f[off]} << 24) | (uint32_t{f[off + 1]} << 16) | (uint32_t{f[off + 2]} << 8) |
         f[off + 3];
}
void append16(std::vector<uint8_t>& v, uint16_t x) {
  v.push_back(static_cast<uint8_t>(x >> 8));
  v.push_back(static_cast<uint8_t>(x));
}
void append32(std::vector<uint8_t>& v, uint32_t x) {
  append16(v, static_cast<uint16_t>(x >> 16));
  append16(v, static_cast<uint16_t>(x));
}

// Pseudo-header sum for the L4 checksum (RFC 793 / RFC 8200 section 8.1).
uint32_t pseudoSum(const IpAddress& src, const IpAddress& dst, uint8_t proto, size_t len) {
  uint32_t sum = sumBytes(src.bytes().data(), src.bytes().size());
  sum = sumBytes(dst.bytes().data(), dst.bytes().size(), sum);
  sum += proto;
  sum += static_cast<uint32_t>(len >> 16);
  sum += static_cast<uint32_t>(len & 0xffff);
  return sum;
}

IpAddress addrAt(const std::vector<uint8_t>& f, size_t off, bool v6) {
  if (!v6) return IpAddress::v4({f[off], f[off + 1], f[off + 2], f[off + 3]});
  std::array<uint8_t, 16> b{};
  std::copy(f.begin() + static_cast<long>(off), f.begin() + static_cast<long>(off + 16), b.begin());
  return IpAddress::v6(b);
}

}  // namespace

void put16(std::vector<uint8_t>& frame, size_t off, uint16_t v) {
  frame[off] = static_cast<uint8_t>(v >> 8);
  frame[off + 1] = static_cast<uint8_t>(v);
}

void setIpv4HeaderChecksum(std::vector<uint8_t>& f) {
  const size_t ihl = (f[kEth] & 0x0f) * 4u;
  put16(f, kEth + 10, 0);
  put16(f, kEth + 10, fold(sumBytes(&f[kEth], std::min(ihl, f.size() - kEth))));
}

std::vector<uint8_t> buildPacket(const PacketSpec& s) {
  const bool v6 = s.dst.isV6();
  const uint8_t proto = static_cast<uint8_t>(s.proto);

  // L4 segment with a zero checksum first.
  std::vector<uint8_t> l4;
  size_t csumOff = 0;
  if (s.proto == Protocol::kTcp) {
    append16(l4, s.sport);
    append16(l4, s.dport);
    append32(l4, s.seq);
    append32(l4, s.ack);
    l4.push_back(5 << 4);
    l4.push_back(s.tcpFlags);
    append16(l4, s.window);
    append16(l4, 0);
    append16(l4, 0);
    csumOff = 16;
  } else if (s.proto == Protocol::kUdp) {
    append16(l4, s.sport);
    append16(l4, s.dport);
    append16(l4, static_cast<uint16_t>(8 + s.payload.size()));
    append16(l4, 0);
    csumOff = 6;
  } else {  // ICMP / ICMPv6
    l4.push_back(s.icmpType);
    l4.push_back(s.icmpCode);
    append16(l4, 0);
    append32(l4, 0);
    csumOff = 2;
  }
  l4.insert(l4.end(), s.payload.begin(), s.payload.end());
  uint32_t sum = sumBytes(l4.data(), l4.size());
  if (s.proto != Protocol::kIcmp) sum += pseudoSum(s.src, s.dst, proto, l4.size());
  uint16_t csum = fold(sum);
  if (s.proto == Protocol::kUdp && csum == 0) csum = 0xffff;  // RFC 768
  if (s.udpZeroChecksum) csum = 0;
  l4[csumOff] = static_cast<uint8_t>(csum >> 8);
  l4[csumOff + 1] = static_cast<uint8_t>(csum);

  std::vector<uint8_t> f(s.dstMac.begin(), s.dstMac.end());
  f.insert(f.end(), s.srcMac.begin(), s.srcMac.end());
  append16(f, v6 ? 0x86dd : 0x0800);
  if (!v6) {
    const size_t ihl = 20 + s.ipv4Options.size();
    f.push_back(static_cast<uint8_t>(0x40 | (ihl / 4)));
    f.push_back(0);
    append16(f, static_cast<uint16_t>(ihl + l4.size()));
    append16(f, s.ipId);
    append16(f, s.ipv4Frag);
    f.push_back(s.ttl);
    f.push_back(proto);
    append16(f, 0);
    f.insert(f.end(), s.src.bytes().begin(), s.src.bytes().end());
    f.insert(f.end(), s.dst.bytes().begin(), s.dst.bytes().end());
    f.insert(f.end(), s.ipv4Options.begin(), s.ipv4Options.end());
    setIpv4HeaderChecksum(f);
  } else {
    std::vector<uint8_t> ext;
    for (size_t i = 0; i < s.ipv6Ext.size(); ++i) {
      const uint8_t next = i + 1 < s.ipv6Ext.size() ? s.ipv6Ext[i + 1].type : proto;
      const auto& body = s.ipv6Ext[i].body;
      ext.push_back(next);
      // Fragment headers have a reserved byte here; others their length.
      ext.push_back(s.ipv6Ext[i].type == 44 ? 0 : static_cast<uint8_t>((body.size() + 2) / 8 - 1));
      ext.insert(ext.end(), body.begin(), body.end());
    }
    append32(f, 0x60000000);
    append16(f, static_cast<uint16_t>(ext.size() + l4.size()));
    f.push_back(s.ipv6Ext.empty() ? proto : s.ipv6Ext[0].type);
    f.push_back(s.ttl);
    f.insert(f.end(), s.src.bytes().begin(), s.src.bytes().end());
    f.insert(f.end(), s.dst.bytes().begin(), s.dst.bytes().end());
    f.insert(f.end(), ext.begin(), ext.end());
  }
  f.insert(f.end(), l4.begin(), l4.end());
  if (f.size() < s.padTo) f.resize(s.padTo, 0);
  return f;
}

PacketView parsePacket(const std::vector<uint8_t>& f) {
  PacketView v;
  if (f.size() < kEth) return v;
  std::copy(f.begin(), f.begin() + 6, v.dstMac.begin());
  std::copy(f.begin() + 6, f.begin() + 12, v.srcMac.begin());
  const uint16_t type = get16(f, 12);
  v.l3Off = kEth;
  size_t off = 0;
  if (type == 0x0800) {
    if (f.size() < kEth + 20) return v;
    v.family = IpFamily::kV4;
    const size_t ihl = (f[kEth] & 0x0f) * 4u;
    v.proto = f[kEth + 9];
    v.src = addrAt(f, kEth + 12, false);
    v.dst = addrAt(f, kEth + 16, false);
    v.end = kEth + get16(f, kEth + 2);
    off = kEth + ihl;
  } else if (type == 0x86dd) {
    if (f.size() < kEth + 40) return v;
    v.family = IpFamily::kV6;
    v.src = addrAt(f, kEth + 8, true);
    v.dst = addrAt(f, kEth + 24, true);
    v.end = kEth + 40 + get16(f, kEth + 4);
    uint8_t next = f[kEth + 6];
    off = kEth + 40;
    while ((next == 0 || next == 43 || next == 60 || next == 44) && off + 8 <= f.size()) {
      const size_t len = next == 44 ? 8 : (f[off + 1] + 1u) * 8;
      next = f[off];
      off += len;
    }
    v.proto = next;
  } else {
    return v;
  }
  v.l4Off = off;
  if (v.proto == 6 && off + 20 <= f.size()) {
    v.sport = get16(f, off);
    v.dport = get16(f, off + 2);
    v.seq = get32(f, off + 4);
    v.ack = get32(f, off + 8);
    v.tcpFlags = f[off + 13];
    v.ok = true;
  } else if (v.proto == 17 && off + 8 <= f.size()) {
    v.sport = get16(f, off);
    v.dport = get16(f, off + 2);
    v.ok = true;
  } else if ((v.proto == 1 || v.proto == 58) && off + 8 <= f.size()) {
    v.icmpType = f[off];
    v.icmpCode = f[off + 1];
    v.ok = true;
  }
  return v;
}

std::string PacketView::describe() const {
  auto ep = [&](const IpAddress& a, uint16_t port) {
    std::string s = a.isV6() ? "[" + a.toString() + "]" : a.toString();
    return s + ":" + std::to_string(port);
  };
  std::string s = ep(src, sport) + " -> " + ep(dst, dport);
  if (proto == 6) {
    s += " tcp [";
    if (tcpFlags & kTcpSyn) s += "S";
    if (tcpFlags & kTcpAck) s += ".";
    if (tcpFlags & kTcpRst) s += "R";
    if (tcpFlags & kTcpFin) s += "F";
    s += "]";
  } else if (proto == 17) {
    s += " udp";
  } else {
    s += " icmp type " + std::to_string(icmpType) + " code " + std::to_string(icmpCode);
  }
  return s;
}

std::optional<std::string> checksumError(const std::vector<uint8_t>& f) {
  const PacketView v = parsePacket(f);
  if (!v.ok) return "unparseable frame";
  if (v.end > f.size() || v.l4Off > v.end) return "IP length past the frame";
  if (v.family == IpFamily::kV4) {
    const size_t ihl = (f[kEth] & 0x0f) * 4u;
    if (fold(sumBytes(&f[kEth], ihl)) != 0) return "bad IPv4 header checksum";
  }
  const size_t l4Len = v.end - v.l4Off;
  if (v.proto == 17 && v.family == IpFamily::kV4 && get16(f, v.l4Off + 6) == 0) {
    return std::nullopt;  // UDP without checksum
  }
  uint32_t sum = sumBytes(&f[v.l4Off], l4Len);
  if (v.proto != 1) sum += pseudoSum(v.src, v.dst, v.proto, l4Len);
  if (fold(sum) != 0) {
    return "bad " +
           std::string(v.proto == 6    ? "TCP"
                       : v.proto == 17 ? "UDP"
                                       : "ICMP") +
           " checksum";
  }
  return std::nullopt;
}

std::vector<uint8_t> withoutChecksums(std::vector<uint8_t> f) {
  const PacketView v = parsePacket(f);
  if (!v.ok) return f;
  if (v.family == IpFamily::kV4) put16(f, kEth + 10, 0);
  const size_t off = v.proto == 6 ? 16 : v.proto == 17 ? 6 : 2;
  if (v.l4Off + off + 2 <= f.size()) put16(f, v.l4Off + off, 0);
  return f;
}

}  // namespace sluice::testing
