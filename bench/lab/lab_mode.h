// LabMode: one proxy mode as the lab drives it. A mode is one file
// (<name>_lab_mode.cc) and one line in labModeNames()/makeLabMode(); ipvs
// and dpdk join the same way.
//
// Threading: every call comes from the lab's main thread while it sits in
// the node network namespace (so netlink, tc, iptables-restore and nft
// reach the node without `ip netns exec`, whose remount would be timed).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench/lab/lab_topology.h"
#include "dataplane/result.h"
#include "dataplane/service.h"

namespace sluice::lab {

using Deadline = std::chrono::steady_clock::time_point;

// What the mode holds in the kernel once a table is programmed.
struct ModeMemory {
  uint64_t objects = 0;  // iptables rules, nft rules + map elements, BPF map entries
  std::optional<uint64_t> kernelBytes;  // when measurable (BPF maps: memlock from fdinfo)
};

class LabMode {
 public:
  virtual ~LabMode() = default;
  virtual std::string_view name() const = 0;
  // Untimed: load, attach, create base chains. Called on a fresh topology.
  virtual Result<void> setUp(const LabTopology& topology) = 0;
  // Timed by the runner: program `table` from the empty state setUp left.
  // Gives up (killing its tool) at `deadline`: a point's time budget.
  virtual Result<void> sync(const ServiceTable& table, Deadline deadline) = 0;
  // Timed (up to traffic seeing it): `after` is `before` with one service's
  // endpoints changed; program that change the way the real mode would.
  virtual Result<void> applyOneEndpointChange(const ServiceTable& after, const Service& before,
                                              const Service& changed, Deadline deadline) = 0;
  virtual ModeMemory memory() = 0;
  // Removes what setUp and sync added; the topology goes next.
  virtual void tearDown() = 0;
};

std::vector<std::string> labModeNames();
// endpointCapacity: the most endpoints (services x endpoints) any point
// programs, for modes whose kernel state is sized at load.
std::unique_ptr<LabMode> makeLabMode(std::string_view name, uint32_t endpointCapacity);

std::unique_ptr<LabMode> makeEbpfLabMode(uint32_t endpointCapacity);
std::unique_ptr<LabMode> makeIptablesLabMode();
std::unique_ptr<LabMode> makeNftablesLabMode();

// Shared by the rule-based modes.
// Runs `program` with `input` on its stdin; the error carries its stderr
// tail. The program is SIGKILLed at `deadline` (coreutils timeout).
Result<void> pipeTo(const std::string& program, const std::string& input, Deadline deadline);
// Runs `command` and returns its stdout.
Result<std::string> capture(const std::string& command);
// kube-proxy-style chain name suffix: 16 base32 characters of a hash of `text`.
std::string chainHash(const std::string& text);

}  // namespace sluice::lab
