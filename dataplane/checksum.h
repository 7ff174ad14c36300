// The Internet checksum (RFC 1071) in full, and its incremental update
// (RFC 1624) for NAT, which rewrites a few words and must not touch the rest.
//
// Byte order: every 16-bit word, 32-bit value and checksum in this header is
// the host-order value of a big-endian packet field, i.e. what
// (p[0] << 8) | p[1] reads; byte spans are raw packet bytes. The sum itself is
// byte-order independent (RFC 1071 §2(B)); one convention keeps callers from
// mixing the two.
//
// Nothing here allocates or fails: these run per packet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "dataplane/ip_address.h"

namespace sluice {

// RFC 768: a UDP checksum field of 0 means "not computed" (allowed over IPv4;
// over IPv6 only for tunnels, RFC 6935), so a computed 0 is sent as 0xffff.
inline constexpr uint16_t kUdpNoChecksum = 0;

// Folds a ones'-complement accumulator to 16 bits with end-around carry.
// The result is 0 only if `sum` is 0.
constexpr uint16_t foldChecksum(uint64_t sum) {
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// Ones'-complement sum of `data` read as big-endian 16-bit words (an odd last
// byte is padded with a zero byte), plus `initial`. Not complemented. Partial
// sums chain only when every piece but the last has an even length.
uint16_t onesComplementSum(std::span<const uint8_t> data, uint16_t initial = 0);

// The value a checksum field holds: ~sum over `data` taken with the field
// zeroed (the IPv4 header checksum, ICMPv4).
inline uint16_t internetChecksum(std::span<const uint8_t> data) {
  return static_cast<uint16_t>(~onesComplementSum(data));
}

// Sum of the TCP/UDP/ICMPv6 pseudo-header: RFC 793/768 for IPv4 (src, dst,
// zero, protocol, 16-bit length), RFC 8200 §8.1 for IPv6 (src, dst, 32-bit
// length, zeros, next header). `src` and `dst` are 4 or 16 bytes of the same
// family; `l4Length` is in bytes, host order (the segment length for TCP, the
// UDP length field for UDP, the message length for ICMPv6).
uint16_t pseudoHeaderSum(std::span<const uint8_t> src, std::span<const uint8_t> dst,
                         Protocol protocol, uint32_t l4Length);
inline uint16_t pseudoHeaderSum(const IpAddress& src, const IpAddress& dst, Protocol protocol,
                                uint32_t l4Length) {
  return pseudoHeaderSum(src.bytes(), dst.bytes(), protocol, l4Length);
}

// Full L4 checksum of `segment` (whose checksum field must read zero) as the
// field should hold it: pseudo-header included for TCP, UDP and ICMPv6, not
// for ICMP (RFC 792); for UDP a computed 0 comes back as 0xffff.
uint16_t transportChecksum(std::span<const uint8_t> src, std::span<const uint8_t> dst,
                           Protocol protocol, std::span<const uint8_t> segment);
inline uint16_t transportChecksum(const IpAddress& src, const IpAddress& dst, Protocol protocol,
                                  std::span<const uint8_t> segment) {
  return transportChecksum(src.bytes(), dst.bytes(), protocol, segment);
}

constexpr uint16_t udpChecksumForWire(uint16_t check) { return check == 0 ? 0xffff : check; }

// The changes to a checksummed region, accumulated as RFC 1624's ~m + m' per
// 16-bit word, to apply to one or more checksums at once. Changing a word
// twice composes (~a + b + ~b + c == ~a + c), so callers need not track the
// original value. Holds at most 2^47 words' worth; NAT adds a few dozen.
class ChecksumDelta {
 public:
  constexpr void add16(uint16_t oldWord, uint16_t newWord) {
    sum_ += static_cast<uint16_t>(~oldWord);
    sum_ += newWord;
  }
  constexpr void add32(uint32_t oldValue, uint32_t newValue) {
    add16(static_cast<uint16_t>(oldValue >> 16), static_cast<uint16_t>(newValue >> 16));
    add16(static_cast<uint16_t>(oldValue), static_cast<uint16_t>(newValue));
  }
  // Raw packet bytes, e.g. a 4- or 16-byte address. Both of the same even length.
  void addBytes(std::span<const uint8_t> oldBytes, std::span<const uint8_t> newBytes) {
    for (size_t i = 0; i + 1 < oldBytes.size() && i + 1 < newBytes.size(); i += 2) {
      add16(static_cast<uint16_t>(oldBytes[i] << 8 | oldBytes[i + 1]),
            static_cast<uint16_t>(newBytes[i] << 8 | newBytes[i + 1]));
    }
  }
  constexpr void add(const ChecksumDelta& other) { sum_ += other.sum_; }
  constexpr bool empty() const { return sum_ == 0; }
  // The sum folded to 16 bits, 0 only when empty() (a sum of changes that
  // cancel folds to 0xffff). ofFolded() of it applies exactly as this does.
  constexpr uint16_t folded() const { return sum_ == 0 ? 0 : foldChecksum(sum_); }
  static constexpr ChecksumDelta ofFolded(uint16_t folded) {
    ChecksumDelta d;
    d.sum_ = folded;
    return d;
  }

  // RFC 1624 eqn. 3: HC' = ~(~HC + sum(~m + m')). Unlike eqn. 2 (RFC 1141)
  // it never turns a checksum into 0xffff ("negative zero") when the true
  // result is 0x0000.
  constexpr uint16_t applyTo(uint16_t check) const {
    return static_cast<uint16_t>(~foldChecksum(uint64_t{static_cast<uint16_t>(~check)} + sum_));
  }

 private:
  uint64_t sum_ = 0;
};

// Single-change forms of RFC 1624 eqn. 3: a 16-bit field (port, ICMP id), a
// 32-bit one (IPv4 address), 16 bytes (IPv6 address).
constexpr uint16_t checksumUpdate16(uint16_t check, uint16_t oldWord, uint16_t newWord) {
  ChecksumDelta d;
  d.add16(oldWord, newWord);
  return d.applyTo(check);
}
constexpr uint16_t checksumUpdate32(uint16_t check, uint32_t oldValue, uint32_t newValue) {
  ChecksumDelta d;
  d.add32(oldValue, newValue);
  return d.applyTo(check);
}
inline uint16_t checksumUpdate128(uint16_t check, std::span<const uint8_t, 16> oldBytes,
                                  std::span<const uint8_t, 16> newBytes) {
  ChecksumDelta d;
  d.addBytes(oldBytes, newBytes);
  return d.applyTo(check);
}

}  // namespace sluice
