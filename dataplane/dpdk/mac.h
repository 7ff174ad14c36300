// Ethernet MAC addresses as the DPDK path handles them: 6 bytes in wire
// order, parsed from and printed as "02:00:00:00:00:01".
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/result.h"

namespace sluice::dpdk {

using MacAddr = std::array<uint8_t, 6>;

inline constexpr MacAddr kBroadcastMac = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

Result<MacAddr> parseMac(std::string_view text);
std::string toString(const MacAddr& mac);

}  // namespace sluice::dpdk
