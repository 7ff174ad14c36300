// The agent's mode factory: the one place that chooses a ProxyMode
// (DESIGN.md). `--mode=ebpf` loads EbpfMode (adopting the maps a previous
// agent pinned), attaches the cgroup socket hooks for the node's processes
// and, if configured, the uplink programs; pod veths are attached one by
// one as the pod runtime creates them (Datapath::attachPodInterface).
// ipvs and dpdk are named but not built into the agent yet: a clear error.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dataplane/ip_address.h"
#include "dataplane/proxy_mode.h"
#include "dataplane/result.h"

namespace sluice {
class EbpfMode;
}

namespace sluice::agent {

struct ModeOptions {
  std::string mode = "ebpf";  // ebpf | ipvs | dpdk
  // ebpf: bpffs directory of the pinned maps (on a mounted bpffs).
  std::string pinDir = "/sys/fs/bpf/sluice";
  // ebpf: cgroup v2 directory whose processes get socket-level load
  // balancing; "" = the root of the cgroup2 mount (mounted at
  // /run/sluice/cgroupv2 when the machine has none).
  std::string cgroupPath;
  // The node's uplink interface for NodePort/LoadBalancer/externalIP
  // traffic from outside ("" = none) and whether XDP runs in front of it.
  std::string uplink;
  bool uplinkXdp = true;
  // This node's addresses: NodePort frontends and the eTP=Cluster SNAT source.
  std::vector<IpAddress> nodeAddresses;
};

// What the agent holds: the chosen ProxyMode and the node-level
// attachments of its mode.
class Datapath {
 public:
  virtual ~Datapath() = default;
  virtual ProxyMode& mode() = 0;
  // A pod's host-side interface appeared (per-packet service translation
  // for the pod's traffic) or is about to go.
  virtual Result<void> attachPodInterface(const std::string& ifname) = 0;
  virtual Result<void> detachPodInterface(const std::string& ifname) = 0;
  // The uplink's ifindex, 0 without one.
  virtual int uplinkIfindex() const = 0;
  // The eBPF mode for introspection (`sluice debug`), nullptr for others.
  virtual EbpfMode* ebpf() { return nullptr; }
};

Result<std::unique_ptr<Datapath>> createDatapath(const ModeOptions& options);

// The first cgroup2 mount's directory, mounting one at `fallback` if there
// is none (as Cilium mounts /run/cilium/cgroupv2).
Result<std::string> cgroup2Root(const std::string& fallback = "/run/sluice/cgroupv2");

}  // namespace sluice::agent
