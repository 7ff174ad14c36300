// Datapath: one proxy mode as the node agent holds it — the ProxyMode that
// programs service entries, plus the mode's node-level half: what it does
// to the node beyond service entries (hooks on pod interfaces and the
// uplink, answering for service addresses, removing all of it). Each mode's
// folder implements it (bpf/, ipvs/, dataplane/dpdk/); the agent's mode
// factory is the only place that names one, so a new mode is one folder
// plus one line there (docs/architecture.md, "Adding a mode").
//
// Per-mode settings come in as ModeFlags: the mode declares its flags
// (name, help, default) and parses the values itself, so the agent's
// command line gains `--<mode>-<flag>` options without knowing any of them.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dataplane/ip_address.h"
#include "dataplane/proxy_mode.h"
#include "dataplane/result.h"
#include "dataplane/service_diff.h"

namespace sluice {

// What every mode is told about its node.
struct NodeConfig {
  std::string nodeName;
  // This node's addresses: NodePort frontends, the eTP=Cluster SNAT source
  // (the first of each family).
  std::vector<IpAddress> nodeAddresses;
  // The interface NodePort/LoadBalancer/externalIP traffic arrives on from
  // outside ("" = none: services are reachable from the node and pods only).
  std::string uplink;
  // A name unique among the agents of this host (several nodes of a lab or
  // a kind-style test share one kernel): modes key host-wide state (pin
  // directories, cgroup attachments, interface names) by it.
  std::string instance = "default";
};

// One mode flag: `--<mode>-<name>` on the agent's command line.
struct ModeFlag {
  std::string name;          // "pin-dir" (without the mode prefix)
  std::string help;
  std::string defaultValue;  // as text; "" = unset
};

// Flag values as given ("pin-dir" -> "/sys/fs/bpf/x"); a flag not given has
// its default. Modes parse them with their own checks and messages.
using ModeFlagValues = std::map<std::string, std::string>;

class Datapath {
 public:
  virtual ~Datapath() = default;

  virtual ProxyMode& mode() = 0;

  // A pod's host-side interface appeared (per-packet service translation
  // for the pod's traffic), or is about to go. Modes that need nothing per
  // interface (IPVS: the kernel sees every packet) return OK.
  virtual Result<void> attachPodInterface(const std::string& ifname) = 0;
  virtual Result<void> detachPodInterface(const std::string& ifname) = 0;

  // Called after every successful sync (full: `diff` lists every service)
  // and apply with what was programmed: the node starts or stops answering
  // for service addresses (eBPF: LoadBalancer/externalIP /32s on the
  // uplink; IPVS: every frontend address on its dummy interface; DPDK: its
  // ARP/ND responder). Errors name each address; the rest is still done.
  virtual Result<void> claimServiceAddresses(const ServiceDiff& diff, bool full) = 0;
  // The service addresses the node answers for now.
  virtual std::set<IpAddress> claimedAddresses() const = 0;

  // The agent stops: release file descriptors and threads but leave the
  // datapath programmed, so flows continue and the next agent adopts it.
  virtual void stop() = 0;
  // Remove everything the mode put on this node (entries, pins, hooks,
  // addresses, interfaces): `sluice up --cleanup`. Works on a stopped
  // datapath and on what a dead earlier instance left.
  virtual Result<void> cleanup() = 0;
};

// How the mode factory reaches one mode: each mode's folder defines one
// (e.g. bpf/loader/ebpf_datapath.h: ebpfModeDriver()).
struct ModeDriver {
  std::string name;  // what --mode= names
  std::vector<ModeFlag> flags;
  std::function<Result<std::unique_ptr<Datapath>>(const NodeConfig&, const ModeFlagValues&)> create;
  // cleanup() without a running datapath: removes what an instance with
  // this config left on the node (`sluice up --cleanup` after a crash).
  std::function<Result<void>(const NodeConfig&, const ModeFlagValues&)> cleanup;
};

// The value of flag `name` (its default when not given), for modes parsing
// their ModeFlagValues.
std::string flagValue(const ModeFlagValues& values, const std::vector<ModeFlag>& flags,
                      const std::string& name);

}  // namespace sluice
