// Runs the eBPF packet tables (tests/bpf/*_cases.h) through the DPDK
// pipeline. The scenarios, inputs and expected L3/L4 output are the same;
// what differs is where a frame enters and leaves, so the runner maps them:
//
//   input side: a frame whose source is behind the kernel (the pods and the
//     kernel-side SNAT addresses of the table: `kernelSide`) comes in on the
//     kernel port, any other on the uplink;
//   tc verdict -> DPDK action:
//     TC_ACT_SHOT                    -> kDrop
//     TC_ACT_REDIRECT (an answer)    -> back out of the input port
//     TC_ACT_OK, no output (a pass)  -> kernel -> uplink, uplink -> exception
//     TC_ACT_OK, translated          -> the port the new destination is behind
//   Ethernet addresses: a pass keeps the frame byte for byte; an answer
//   swaps them (as the eBPF expected frames do); a translated frame gets
//   the next hop's (checked here, not compared with the eBPF frame, whose
//   addresses the kernel's FIB rewrites later).
//
// Checksums are recomputed from scratch by the packet builder's verifier.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tests/bpf/packet_cases.h"
#include "tests/dpdk/pipeline_fixture.h"

namespace sluice::dpdk::testing {

using KernelSide = std::function<bool(const IpAddress&)>;

// Addresses by prefix: "10.0.0.0/24", "fd00::/64".
KernelSide addressesIn(std::vector<std::string> prefixes);

// The source address of an Ethernet frame, if its IP header is readable.
std::optional<IpAddress> sourceOf(const std::vector<uint8_t>& frame);

// Runs `cases` in order through `p` (time advancing 1 ms a case), checking
// action, output and counter. `defaultSide` is the input side of frames
// whose source cannot be read.
void runCases(TestPipeline& p, const std::vector<sluice::testing::PacketCase>& cases,
              const KernelSide& kernelSide, PortRole defaultSide);

}  // namespace sluice::dpdk::testing
