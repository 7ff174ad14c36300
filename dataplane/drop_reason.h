// DropReason: why a userspace datapath stage (packet parse, NAT, and the DPDK
// stages built on them) refuses a packet. There is one enum for every stage so
// that drops land in one per-lcore counter array indexed by the value, and a
// dump names each reason the same way whatever the mode (STYLE.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dataplane/drop_reasons.h"

namespace sluice {

// Generated from dataplane/drop_reasons.h, the list the BPF programs share:
// see there for what each reason means. Values index counter arrays and are
// stable (append only there). kNone is "not dropped" and is never counted.
enum class DropReason : uint8_t {
#define SL_DROP_CXX(c, cxx, name) k##cxx,
  SL_DROP_REASON_LIST(SL_DROP_CXX)
#undef SL_DROP_CXX
};

inline constexpr size_t kDropReasonCount = 0
#define SL_DROP_COUNT(c, cxx, name) +1
    SL_DROP_REASON_LIST(SL_DROP_COUNT)
#undef SL_DROP_COUNT
    ;

// snake_case name for counters and logs, e.g. "ipv4_options" (exported as
// "drop.ipv4_options"); "unknown" for a value outside the enum.
std::string_view toString(DropReason reason);

}  // namespace sluice
