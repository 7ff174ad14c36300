#include "dataplane/dpdk/mac.h"

#include <cstdio>

namespace sluice::dpdk {

Result<MacAddr> parseMac(std::string_view text) {
  MacAddr mac{};
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (text.size() != 17)
    return Error::invalid("MAC address " + std::string(text) + ": want xx:xx:xx:xx:xx:xx");
  for (size_t i = 0; i < 6; ++i) {
    const int hi = hex(text[i * 3]), lo = hex(text[i * 3 + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && text[i * 3 + 2] != ':')) {
      return Error::invalid("MAC address " + std::string(text) + ": want xx:xx:xx:xx:xx:xx");
    }
    mac[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return mac;
}

std::string toString(const MacAddr& mac) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                mac[4], mac[5]);
  return buf;
}

}  // namespace sluice::dpdk
