// IpAddress: an IPv4 or IPv6 address held in network byte order, the form
// packets, BPF maps and netlink all use, so no conversion happens on the way.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "dataplane/result.h"

namespace sluice {

enum class IpFamily : uint8_t { kV4 = 4, kV6 = 6 };

class IpAddress {
 public:
  // The unspecified IPv4 address 0.0.0.0.
  IpAddress() = default;

  // Accepts dotted-quad IPv4 and RFC 4291 IPv6 text (no zone, no prefix).
  static Result<IpAddress> parse(std::string_view text);
  // From 4 or 16 bytes in network order.
  static IpAddress v4(std::array<uint8_t, 4> bytes);
  static IpAddress v6(const std::array<uint8_t, 16>& bytes);
  // From a host-order integer, e.g. v4(0x0a000001) is 10.0.0.1.
  static IpAddress v4FromHost(uint32_t hostOrder);

  IpFamily family() const { return family_; }
  bool isV4() const { return family_ == IpFamily::kV4; }
  bool isV6() const { return family_ == IpFamily::kV6; }
  // 4 bytes for IPv4, 16 for IPv6, network order.
  std::span<const uint8_t> bytes() const { return {bytes_.data(), isV4() ? 4u : 16u}; }
  // IPv4 only: the address as a host-order integer.
  uint32_t v4Host() const;

  std::string toString() const;

  // The 16 address bytes as two native-order words (an IPv4 address's
  // upper 12 bytes are zero): what hashes and == read.
  std::array<uint64_t, 2> words() const {
    std::array<uint64_t, 2> w;
    std::memcpy(w.data(), bytes_.data(), sizeof w);
    return w;
  }

  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;
  // As the defaulted one, but as two 8-byte loads a side: std::array's ==
  // is a library memcmp call, 5% of a DPDK first packet (frontend lookup,
  // tuple compares).
  friend bool operator==(const IpAddress& a, const IpAddress& b) {
    const auto x = a.words(), y = b.words();
    return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0 && a.family_ == b.family_;
  }

 private:
  // Bytes past bytes().size() are always zero, so defaulted comparison and
  // hashing over the whole array are consistent.
  std::array<uint8_t, 16> bytes_{};
  IpFamily family_ = IpFamily::kV4;
};

// An address prefix ("10.0.0.0/8", "fd00::/64"): a Service's
// loadBalancerSourceRanges. The address is kept as given (host bits too);
// contains() masks.
struct IpPrefix {
  IpAddress address;
  uint8_t length = 0;  // 0-32 (IPv4), 0-128 (IPv6)

  // "a.b.c.d/n" or "x::/n"; a bare address is a full-length prefix.
  static Result<IpPrefix> parse(std::string_view text);
  bool contains(const IpAddress& a) const;
  std::string toString() const;
  friend auto operator<=>(const IpPrefix&, const IpPrefix&) = default;
  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
};

// IANA protocol numbers (the IP header's protocol / next-header field).
enum class Protocol : uint8_t {
  kIcmp = 1,
  kTcp = 6,
  kUdp = 17,
  kIcmpV6 = 58,
  kSctp = 132,
};

std::string_view toString(Protocol protocol);

}  // namespace sluice
