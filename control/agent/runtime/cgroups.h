// Pod and container cgroups (the kubelet's cgroup manager, reduced to what
// the pod runtime needs): create them, write resource limits the way the
// kubelet maps them, read usage for PodMetrics, notice OOM kills, remove them.
//
// Detected, not assumed: cgroup v2 when the unified hierarchy is mounted and
// its root offers the cpu and memory controllers (cgroup.controllers);
// otherwise cgroup v1, with cpu, cpuacct and memory hierarchies found in
// /proc/self/mountinfo (separate or co-mounted as "cpu,cpuacct"). A machine
// with neither gets no manager (CgroupManager::detect fails, saying why).
//
// Placement: cgroups live under a parent path; an absolute parent ("/sluice",
// the kubelet's --cgroup-root style) is taken from each hierarchy's root, a
// relative one ("sluice") from the agent's own cgroup in that hierarchy, so
// an agent confined to a cgroup keeps its pods inside it. Under v2 the
// relative form needs an agent cgroup that holds no processes of its own
// (the "no internal processes" rule), so there an absolute parent is usual.
//
// Layout: <parent>/pod<uid>/<container>. A pod's directories are recorded
// in its state file, so a restarted agent (even in another cgroup) finds them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/result.h"

namespace sluice::agent {

enum class CgroupVersion { kV1, kV2 };

// The kubelet's constants (pkg/kubelet/cm/helpers_linux.go).
constexpr int64_t kCfsPeriodUs = 100000;  // 100 ms, the CFS default period
constexpr int64_t kMinCfsQuotaUs = 1000;  // the kernel rejects quotas below 1 ms
constexpr uint64_t kMinCpuShares = 2;     // the kernel's minimum cpu.shares
constexpr uint64_t kMaxCpuShares = 262144;

// requests.cpu in millicores -> cpu.shares (1 CPU = 1024), as MilliCPUToShares.
uint64_t cpuSharesForMilli(int64_t milli);
// cpu.shares -> cpu.weight (1..10000), runc's linear conversion
// (libcontainer/cgroups/utils.go ConvertCPUSharesToCgroupV2Value).
uint64_t cpuWeightForShares(uint64_t shares);
// limits.cpu in millicores -> CFS quota per kCfsPeriodUs, as MilliCPUToQuota.
int64_t cfsQuotaForMilli(int64_t milli);

// A container's resources, from its spec.
struct ResourceLimits {
  std::optional<int64_t> memoryLimitBytes;  // limits.memory
  std::optional<int64_t> cpuLimitMilli;     // limits.cpu
  int64_t cpuRequestMilli = 0;              // requests.cpu (defaulted to limits.cpu)
};
// Parses a container spec's `resources`; the error names the field
// ("resources.limits.memory: ...").
Result<ResourceLimits> parseResourceLimits(const nlohmann::json& resources);

// One cgroup's directory in each hierarchy that matters. Under v2 all three
// are the same directory; under v1 cpu and cpuacct coincide when co-mounted.
struct CgroupDirs {
  std::string cpu, cpuacct, memory;
  bool empty() const { return cpu.empty(); }
  CgroupDirs child(const std::string& name) const {
    return {cpu + "/" + name, cpuacct + "/" + name, memory + "/" + name};
  }
  // Each distinct directory once.
  std::vector<std::string> unique() const;
};

struct CgroupUsage {
  uint64_t cpuNanos = 0;               // cumulative CPU time of every task ever in it
  uint64_t memoryWorkingSetBytes = 0;  // usage - inactive_file, as cAdvisor
  uint64_t oomKills = 0;               // processes the OOM killer killed in it
};

// The cgroup.procs files of the cgroups `pid` was placed in, in each
// hierarchy where that differs from the caller's own cgroup: what a process
// joins to be confined and accounted like `pid` (exec probes, kubectl exec).
std::vector<std::string> cgroupProcsOf(pid_t pid);

class CgroupManager {
 public:
  static Result<CgroupManager> detect(const std::string& parent);
  // The same from the text of /proc/self/mountinfo, /proc/self/cgroup and
  // whether the v2 root offers cpu+memory (the unit tests' entry point).
  static Result<CgroupManager> fromProc(const std::string& mountinfo, const std::string& selfCgroup,
                                        bool v2HasControllers, const std::string& parent);

  CgroupVersion version() const { return version_; }
  // The parent's directories (not created until a pod needs them).
  const CgroupDirs& parentDirs() const { return parent_; }
  CgroupDirs podDirs(const std::string& uid) const { return parent_.child("pod" + uid); }

  // mkdir -p in every hierarchy (and, under v2, enables cpu and memory for
  // the children on the way down).
  Result<void> create(const CgroupDirs& dirs) const;
  // Writes the limits (unset ones as "unlimited", so a changed spec never
  // leaves an old limit behind).
  Result<void> apply(const CgroupDirs& dirs, const ResourceLimits& limits) const;
  Result<CgroupUsage> usage(const CgroupDirs& dirs) const;
  // The cgroup.procs files a process writes "0" to, to join this cgroup.
  std::vector<std::string> procsFiles(const CgroupDirs& dirs) const;
  // SIGKILLs whatever still runs in dirs (and below), then removes the
  // directories bottom-up. A missing directory is not an error.
  static Result<void> remove(const CgroupDirs& dirs);

 private:
  CgroupVersion version_ = CgroupVersion::kV1;
  CgroupDirs parent_;
  std::string v2Mount_;
};

}  // namespace sluice::agent
