// Classic tc attachment (clsact qdisc + direct-action BPF filter) through
// libbpf's bpf_tc_* API, which libbpf 1.1 has (tcx links need 1.3 and 6.6).
//
// sluice owns one filter per hook, at kTcHandle / kTcPriority; attach
// replaces whatever sluice attached there before (a restarted agent swaps
// programs without a window where the hook is empty) and leaves other
// filters and the qdisc alone.
#pragma once

#include <cstdint>

#include "dataplane/result.h"

namespace sluice::bpf {

enum class TcDirection : uint8_t { kIngress, kEgress };

inline constexpr uint32_t kTcHandle = 0x51;   // arbitrary, fixed: "ours"
inline constexpr uint32_t kTcPriority = 1;    // first among clsact filters

// Creates the clsact qdisc if missing and attaches progFd.
Result<void> tcAttach(int ifindex, TcDirection dir, int progFd);
// Removes sluice's filter; absent is not an error. The qdisc stays.
Result<void> tcDetach(int ifindex, TcDirection dir);
// The id of the program sluice has attached there, or 0.
Result<uint32_t> tcAttachedProgramId(int ifindex, TcDirection dir);

}  // namespace sluice::bpf
