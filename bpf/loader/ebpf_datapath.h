// The eBPF mode as the agent holds it (dataplane/datapath.h): EbpfMode for
// the service entries, plus what the mode does to its node — a bpffs for
// the pins (mounted when missing, as systemd and Cilium do), the cgroup
// socket hooks, tc on pod veths, the uplink programs (tc, XDP in front),
// and the LoadBalancer/externalIP addresses on the uplink so the node
// answers ARP/ND for them.
//
// Flags (`--ebpf-<name>`): pin-dir, cgroup, xdp, socket-lb,
// allow-untested-kernel and the map capacities; ebpfFlags() in the .cc
// lists them with their help.
//
// create() first checks the kernel (kernel_features.h: checkKernel()):
// below the tested minimum, or without a required feature, it refuses and
// says why, before touching the node.
//
// Threading: as EbpfMode; claimServiceAddresses() runs on the agent's sync
// thread, attach/detach on the pod runtime's threads.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "bpf/loader/ebpf_mode.h"
#include "bpf/loader/uplink_addresses.h"
#include "dataplane/datapath.h"

namespace sluice::bpf {

struct EbpfDatapathOptions {
  EbpfOptions mode;
  // cgroup v2 directory whose processes get socket-level load balancing;
  // "" = the root of the cgroup2 mount (mounted at /run/sluice/cgroupv2
  // when the machine has none).
  std::string cgroupPath;
  bool uplinkXdp = true;  // XDP early drop in front of the uplink's tc program
  bool socketLb = true;   // the cgroup socket hooks (off: per-packet translation only)
  // Start below kTestedMinimumKernel when every required probe passes.
  bool allowUntestedKernel = false;

  static Result<EbpfDatapathOptions> fromFlags(const ModeFlagValues& values);
};

class EbpfDatapath final : public Datapath {
 public:
  static Result<std::unique_ptr<EbpfDatapath>> create(const NodeConfig& node,
                                                      EbpfDatapathOptions options);
  // Removes what an instance with these options left: the pins (which
  // detaches the pinned cgroup links and drops the maps) and the tagged
  // uplink addresses.
  static Result<void> cleanupLeftovers(const NodeConfig& node, const EbpfDatapathOptions& options);

  ~EbpfDatapath() override;
  EbpfDatapath(const EbpfDatapath&) = delete;
  EbpfDatapath& operator=(const EbpfDatapath&) = delete;

  ProxyMode& mode() override { return *mode_; }
  EbpfMode& ebpf() { return *mode_; }
  Result<void> attachPodInterface(const std::string& ifname) override;
  Result<void> detachPodInterface(const std::string& ifname) override;
  Result<void> claimServiceAddresses(const ServiceDiff& diff, bool full) override;
  std::set<IpAddress> claimedAddresses() const override;
  void stop() override {}
  Result<void> cleanup() override;

  int uplinkIfindex() const { return uplink_; }

 private:
  EbpfDatapath(const NodeConfig& node, EbpfDatapathOptions options, std::unique_ptr<EbpfMode> mode)
      : node_(node), options_(std::move(options)), mode_(std::move(mode)) {}

  const NodeConfig node_;
  const EbpfDatapathOptions options_;
  std::unique_ptr<EbpfMode> mode_;
  std::string cgroup_;  // where the socket hooks are attached ("" = not)
  int uplink_ = 0;      // ifindex, 0 without one
  mutable std::mutex addressesMu_;
  std::unique_ptr<UplinkAddresses> addresses_;  // with an uplink only
  int lockFd_ = -1;  // flock() on the pin directory: one agent per directory
};

// The `ebpf` entry of the agent's mode factory.
ModeDriver ebpfModeDriver();

// The first cgroup2 mount's directory, mounting one at `fallback` if there
// is none (as Cilium mounts /run/cilium/cgroupv2).
Result<std::string> cgroup2Root(const std::string& fallback = "/run/sluice/cgroupv2");

}  // namespace sluice::bpf
