// KernelFeatures: what this kernel offers the eBPF mode, found by probing it
// (program, attach and map types, helpers per program type, kfuncs, socket
// options), never inferred from the version number: distribution kernels
// backport BPF features and configure others out. The loader picks objects
// and program variants from it; what is missing becomes ModeCapabilities
// (what a user loses: a log line at start, the debug API, a metric), and
// `sluice-bpf-probe` prints it as rows of docs/kernels.md.
//
// Each probe is a small trial that attaches nothing and changes nothing on
// the node: libbpf's probes (a map created, or a two-instruction program
// calling the helper loaded and discarded), a trial load with an expected
// attach type, a bpf_link_create() against an invalid target (the errno
// tells whether the kernel has the command), or a BTF lookup (kfuncs and
// iterator targets are BTF functions of the running kernel).
//
// Threading: KernelFeatures is a value; probe() may be called from any
// thread (it probes once per process: the kernel does not change under it).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/proxy_mode.h"
#include "dataplane/result.h"

namespace sluice::bpf {

// Everything the objects in bpf/ rely on (kernelProbes() describes each).
enum class KernelProbe : uint8_t {
  kBtf,
  kProgSchedCls,
  kProgCgroupSockAddr,
  kProgXdp,
  kAttachConnect,
  kAttachSendmsg,
  kAttachRecvmsg,
  kAttachGetpeername,
  kCgroupLinks,
  kMapHash,
  kMapArray,
  kMapPercpuArray,
  kMapLruHash,
  kMapHashOfMaps,
  kMapInnerMapFlag,
  kMapBatch,
  kTcSkbLoadBytes,
  kTcSkbStoreBytes,
  kTcL3CsumReplace,
  kTcL4CsumReplace,
  kTcCsumDiff,
  kTcSkbChangeTail,
  kTcSkbPullData,
  kTcRedirect,
  kTcFibLookup,
  kTcRedirectNeigh,
  kTcKtimeGetNs,
  kXdpLoadBytes,
  kXdpGetBuffLen,
  kSockSocketCookie,
  kSockNetnsCookie,
  kSockSetRetval,
  kIterUdp,
  kKfuncSockDestroy,
  kSoNetnsCookie,
  kCount,
};
inline constexpr size_t kKernelProbeCount = static_cast<size_t>(KernelProbe::kCount);

// A Linux release as `uname -r` begins: "6.1.0-57-amd64" is 6.1.0.
struct KernelVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;

  static std::optional<KernelVersion> parse(std::string_view release);
  std::string toString() const;  // "6.1"
  friend auto operator<=>(const KernelVersion&, const KernelVersion&) = default;
};

// The oldest kernel the eBPF mode is tested on: Debian 12's default 6.1,
// which the vm suite boots (tests/vm/). The required probes alone would
// accept 5.10 (requiredSince()), untested: the verifiers of older releases
// refuse programs newer ones accept (bpf_host's SNAT loop did, on 6.1).
inline constexpr KernelVersion kTestedMinimumKernel{6, 1, 0};

struct KernelProbeInfo {
  KernelProbe probe;
  std::string_view id;       // stable key for tools: "helper:tc:redirect_neigh"
  std::string_view name;     // for people: "bpf_redirect_neigh() in tc programs"
  std::string_view since;    // upstream Linux release that added it
  std::string_view usedFor;  // what the mode does with it
  bool required;             // without it the mode refuses to start
  // For an optional probe with a user-visible effect: the feature lost.
  // Optional probes without one only cost speed (batched map syscalls).
  std::optional<ModeFeature> degrades;
};

// Every probe, in report order.
std::span<const KernelProbeInfo> kernelProbes();
const KernelProbeInfo& kernelProbe(KernelProbe p);
// The newest `since` among the required probes: the oldest upstream release
// with everything the mode cannot do without.
KernelVersion requiredSince();

class KernelFeatures {
 public:
  // This kernel, probed once per process. Needs CAP_BPF (root): without it
  // every trial fails and says so.
  static KernelFeatures probe();
  // Every probe supported, for `release` (tests derive variants from it).
  static KernelFeatures all(std::string release);

  const std::string& release() const { return release_; }
  bool has(KernelProbe p) const { return supported_[index(p)]; }
  // Why a probe failed ("" when supported).
  const std::string& why(KernelProbe p) const { return why_[index(p)]; }
  void set(KernelProbe p, bool supported, std::string why = {});

  std::vector<KernelProbe> missingRequired() const;
  // What a user loses: one entry per feature a missing optional probe
  // degrades, its effect followed by what the kernel lacks.
  std::map<ModeFeature, std::string> degradations() const;

 private:
  static size_t index(KernelProbe p) { return static_cast<size_t>(p); }
  std::string release_;
  std::array<bool, kKernelProbeCount> supported_{};
  std::array<std::string, kKernelProbeCount> why_;
};

// What the loader needs whatever the version: every required probe. The
// error names each missing one with the release that added it.
Result<void> checkRequired(const KernelFeatures& features);
// What `sluice agent --mode=ebpf` accepts: checkRequired(), and a release
// not older than kTestedMinimumKernel unless allowUntested (an honest
// override: the probes found everything the mode requires; what remains
// unknown is whether older verifiers accept the programs, and the load
// itself then says so).
Result<void> checkKernel(const KernelFeatures& features, bool allowUntested);

}  // namespace sluice::bpf
