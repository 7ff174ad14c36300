#include "cni/ip_prefix.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <limits>

namespace sluice::cni {
namespace {

std::array<uint8_t, 16> bytesOf(const IpAddress& address) {
  std::array<uint8_t, 16> out{};
  auto b = address.bytes();
  std::memcpy(out.data(), b.data(), b.size());
  return out;
}

IpAddress fromBytes(const std::array<uint8_t, 16>& bytes, IpFamily family) {
  if (family == IpFamily::kV4) return IpAddress::v4({bytes[0], bytes[1], bytes[2], bytes[3]});
  return IpAddress::v6(bytes);
}

// Applies the prefix mask: keep the first `length` bits, set the rest to `fill`.
IpAddress masked(const IpAddress& address, int length, bool fill) {
  auto bytes = bytesOf(address);
  const int width = address.isV4() ? 4 : 16;
  for (int i = 0; i < width; ++i) {
    const int bitsKept = std::max(0, std::min(8, length - 8 * i));
    const auto keepMask = static_cast<uint8_t>(bitsKept == 0 ? 0 : 0xff << (8 - bitsKept));
    bytes[i] = fill ? static_cast<uint8_t>(bytes[i] | ~keepMask)
                    : static_cast<uint8_t>(bytes[i] & keepMask);
  }
  return fromBytes(bytes, address.family());
}

}  // namespace

Result<IpPrefix> IpPrefix::make(const IpAddress& address, int length) {
  const int max = address.isV4() ? 32 : 128;
  if (length < 0 || length > max) {
    return Error::invalid("prefix length " + std::to_string(length) + " out of range 0-" +
                          std::to_string(max) + " for " + address.toString());
  }
  IpPrefix p;
  p.address_ = address;
  p.length_ = length;
  return p;
}

Result<IpPrefix> IpPrefix::parse(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    return Error::invalid("'" + std::string(text) + "' is not a CIDR (address/length)");
  }
  auto address = IpAddress::parse(text.substr(0, slash));
  if (!address) return Error::invalid("'" + std::string(text) + "': " + address.error().message);
  const auto lengthText = text.substr(slash + 1);
  int length = -1;
  auto [end, ec] = std::from_chars(lengthText.data(), lengthText.data() + lengthText.size(), length);
  if (ec != std::errc() || end != lengthText.data() + lengthText.size() || lengthText.empty()) {
    return Error::invalid("'" + std::string(text) + "': bad prefix length");
  }
  auto prefix = make(*address, length);
  if (!prefix) return Error::invalid("'" + std::string(text) + "': " + prefix.error().message);
  return prefix;
}

IpPrefix IpPrefix::host(const IpAddress& address) {
  IpPrefix p;
  p.address_ = address;
  p.length_ = address.isV4() ? 32 : 128;
  return p;
}

IpPrefix IpPrefix::network() const {
  IpPrefix p;
  p.address_ = masked(address_, length_, false);
  p.length_ = length_;
  return p;
}

IpAddress IpPrefix::last() const { return masked(address_, length_, true); }

bool IpPrefix::contains(const IpAddress& address) const {
  if (address.family() != family()) return false;
  return masked(address, length_, false) == masked(address_, length_, false);
}

std::string IpPrefix::toString() const {
  return address_.toString() + "/" + std::to_string(length_);
}

IpAddress nextAddress(const IpAddress& address) {
  auto bytes = bytesOf(address);
  for (int i = (address.isV4() ? 4 : 16) - 1; i >= 0; --i) {
    if (++bytes[i] != 0) break;
  }
  return fromBytes(bytes, address.family());
}

IpAddress previousAddress(const IpAddress& address) {
  auto bytes = bytesOf(address);
  for (int i = (address.isV4() ? 4 : 16) - 1; i >= 0; --i) {
    if (bytes[i]-- != 0) break;
  }
  return fromBytes(bytes, address.family());
}

uint64_t rangeSize(const IpAddress& first, const IpAddress& last) {
  const auto a = bytesOf(first);
  const auto b = bytesOf(last);
  const int width = first.isV4() ? 4 : 16;
  // Bytes above the low 8 must match, or the difference needs more than 64 bits.
  for (int i = 0; i + 8 < width; ++i) {
    if (a[i] != b[i]) return std::numeric_limits<uint64_t>::max();
  }
  uint64_t lo = 0;
  uint64_t hi = 0;
  for (int i = std::max(0, width - 8); i < width; ++i) {
    lo = (lo << 8) | a[i];
    hi = (hi << 8) | b[i];
  }
  const uint64_t diff = hi - lo;
  return diff == std::numeric_limits<uint64_t>::max() ? diff : diff + 1;
}

}  // namespace sluice::cni
