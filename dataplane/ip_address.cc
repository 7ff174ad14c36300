#include "dataplane/ip_address.h"

#include <arpa/inet.h>

#include <cstring>
#include <string>

namespace sluice {

Result<IpAddress> IpAddress::parse(std::string_view text) {
  // inet_pton needs a NUL-terminated string; longest IPv6 text is 45 chars.
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof(buf)) {
    return Error::invalid("'" + std::string(text) + "' is not an IP address");
  }
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress addr;
  if (inet_pton(AF_INET, buf, addr.bytes_.data()) == 1) {
    addr.family_ = IpFamily::kV4;
    return addr;
  }
  if (inet_pton(AF_INET6, buf, addr.bytes_.data()) == 1) {
    addr.family_ = IpFamily::kV6;
    return addr;
  }
  return Error::invalid("'" + std::string(text) + "' is not an IP address");
}

IpAddress IpAddress::v4(std::array<uint8_t, 4> bytes) {
  IpAddress addr;
  std::memcpy(addr.bytes_.data(), bytes.data(), 4);
  return addr;
}

IpAddress IpAddress::v6(const std::array<uint8_t, 16>& bytes) {
  IpAddress addr;
  addr.bytes_ = bytes;
  addr.family_ = IpFamily::kV6;
  return addr;
}

IpAddress IpAddress::v4FromHost(uint32_t hostOrder) {
  return v4({static_cast<uint8_t>(hostOrder >> 24), static_cast<uint8_t>(hostOrder >> 16),
             static_cast<uint8_t>(hostOrder >> 8), static_cast<uint8_t>(hostOrder)});
}

uint32_t IpAddress::v4Host() const {
  return (uint32_t{bytes_[0]} << 24) | (uint32_t{bytes_[1]} << 16) | (uint32_t{bytes_[2]} << 8) |
         uint32_t{bytes_[3]};
}

std::string IpAddress::toString() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(isV4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof(buf));
  return buf;
}

Result<IpPrefix> IpPrefix::parse(std::string_view text) {
  const size_t slash = text.find('/');
  auto a = IpAddress::parse(text.substr(0, slash));
  if (!a) return a.error();
  const unsigned max = a->isV4() ? 32 : 128;
  unsigned len = max;
  if (slash != std::string_view::npos) {
    const std::string_view n = text.substr(slash + 1);
    if (n.empty() || n.size() > 3 || n.find_first_not_of("0123456789") != std::string_view::npos ||
        std::stoul(std::string(n)) > max) {
      return Error::invalid("'" + std::string(text) + "': prefix length must be 0-" +
                            std::to_string(max));
    }
    len = static_cast<unsigned>(std::stoul(std::string(n)));
  }
  return IpPrefix{*a, static_cast<uint8_t>(len)};
}

bool IpPrefix::contains(const IpAddress& a) const {
  if (a.family() != address.family()) return false;
  const auto x = a.bytes();
  const auto y = address.bytes();
  unsigned left = length;
  for (size_t i = 0; i < x.size() && left > 0; ++i, left = left >= 8 ? left - 8 : 0) {
    const uint8_t mask = left >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - left));
    if ((x[i] & mask) != (y[i] & mask)) return false;
  }
  return true;
}

std::string IpPrefix::toString() const { return address.toString() + "/" + std::to_string(length); }

std::string_view toString(Protocol protocol) {
  switch (protocol) {
    case Protocol::kIcmp: return "ICMP";
    case Protocol::kTcp: return "TCP";
    case Protocol::kUdp: return "UDP";
    case Protocol::kIcmpV6: return "ICMPv6";
    case Protocol::kSctp: return "SCTP";
  }
  return "unknown";
}

}  // namespace sluice
