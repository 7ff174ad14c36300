// IpPrefix: an address with a prefix length ("10.244.1.5/24"), as CNI results
// carry addresses and as netlink installs them. The address keeps its host
// bits; network() clears them. Plus the address arithmetic IPAM walks ranges with.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/ip_address.h"
#include "dataplane/result.h"

namespace sluice::cni {

class IpPrefix {
 public:
  IpPrefix() = default;
  // Fails if length exceeds the family's width (32 or 128).
  static Result<IpPrefix> make(const IpAddress& address, int length);
  // "a.b.c.d/n" or "x::y/n"; the prefix length is required.
  static Result<IpPrefix> parse(std::string_view text);
  // A host prefix: /32 for IPv4, /128 for IPv6.
  static IpPrefix host(const IpAddress& address);

  const IpAddress& address() const { return address_; }
  int length() const { return length_; }
  IpFamily family() const { return address_.family(); }
  int maxLength() const { return address_.isV4() ? 32 : 128; }
  bool isDefault() const { return length_ == 0; }

  // The prefix with host bits cleared: 10.244.1.5/24 -> 10.244.1.0/24.
  IpPrefix network() const;
  // The last address in the prefix (the IPv4 broadcast address).
  IpAddress last() const;
  bool contains(const IpAddress& address) const;

  std::string toString() const;

  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;

 private:
  IpAddress address_;
  int length_ = 0;
};

// address + 1 and address - 1, wrapping at the family's ends.
IpAddress nextAddress(const IpAddress& address);
IpAddress previousAddress(const IpAddress& address);
// Number of addresses in [first, last] (same family, first <= last), saturating
// at UINT64_MAX: IPv6 ranges can exceed 64 bits and IPAM only compares counts.
uint64_t rangeSize(const IpAddress& first, const IpAddress& last);

}  // namespace sluice::cni
