// LabMode: one proxy mode as the lab drives it. sluice's modes come from
// the agent's mode factory through one adapter (datapath_lab_mode.cc), so a
// new mode joins the lab with no lab code; the kube-proxy baselines
// (iptables, nftables, kube-ipvs) are one file each.
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

// The largest table a mode instance will be asked to hold, for modes whose
// kernel state is sized at load (the ebpf maps).
struct LabScale {
  uint32_t services = 0;
  uint32_t endpoints = 0;  // per service
  uint32_t maglevTableSize = 0;  // 0: random selection; else Maglev with M slots
};

// What the mode itself reports once a table is programmed. The kernel
// memory every mode uses is measured by the runner (lab_measure.h) from
// /proc/meminfo, not here.
struct ModeMemory {
  uint64_t objects = 0;  // iptables rules, nft rules + map elements, BPF map entries
  std::optional<uint64_t> bpfMapBytes;  // BPF maps: memlock from /proc/self/fdinfo
  // Modes that program through a tool: the peak RSS (bytes) of the tool's
  // processes over the full sync (wait4's ru_maxrss).
  std::optional<uint64_t> toolPeakRssBytes;
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
  // Requests to the kernel's IPVS netlink family the last
  // applyOneEndpointChange() sent (modes that program IPVS; else nullopt).
  virtual std::optional<double> netlinkRequestsPerChange() const { return std::nullopt; }
  // Removes what setUp and sync added; the topology goes next.
  virtual void tearDown() = 0;
};

std::vector<std::string> labModeNames();
// scale: the table this instance will program (one instance per point).
std::unique_ptr<LabMode> makeLabMode(std::string_view name, LabScale scale);

// sluice's own modes (the agent's mode factory), one adapter for all.
std::unique_ptr<LabMode> makeDatapathLabMode(std::string_view name, LabScale scale);
// The kube-proxy baselines.
std::unique_ptr<LabMode> makeIptablesLabMode();
std::unique_ptr<LabMode> makeNftablesLabMode();
std::unique_ptr<LabMode> makeKubeIpvsLabMode();

// Shared by the rule-based modes.
// Runs `program` with `input` on its stdin; the error carries its stderr
// tail. The program is SIGKILLed at `deadline` (coreutils timeout). If
// peakRssBytes is set, it is raised to the peak RSS of the program's
// process tree (ru_maxrss, see runRusageWrapper).
Result<void> pipeTo(const std::string& program, const std::string& input, Deadline deadline,
                    uint64_t* peakRssBytes = nullptr);

// pipeTo runs `sh -c "timeout ... program"` through a freshly exec'd copy
// of sluice-bench in this role, because ru_maxrss of a direct child is
// useless here: exec records the RSS high-water mark of the address space
// it replaces, and a child spawned by the lab replaces the lab's (1 GB at
// S = 100,000). The wrapper is small when it forks, so what wait4 reports
// to it is the tool's peak (floor: about 1 MiB, what /bin/true reports
// through it). argv: [exe, kRusageWrapperArg, report fd, program...];
// writes "<ru_maxrss KiB>\n" to the report fd and returns the exit code
// to exit with (the child's, or 128 + its signal). main() dispatches here
// before anything else.
inline constexpr const char* kRusageWrapperArg = "__rusage-exec";
int runRusageWrapper(char** argv);
// Runs `command` and returns its stdout.
Result<std::string> capture(const std::string& command);
// kube-proxy-style chain name suffix: 16 base32 characters of a hash of `text`.
std::string chainHash(const std::string& text);

}  // namespace sluice::lab
