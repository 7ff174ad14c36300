// EbpfMode: the `ebpf` ProxyMode. Loads the BPF objects through their
// skeletons (lxc: tc on pod veths; sock: cgroup socket hooks), pins their
// maps under a bpffs directory (adopting maps a previous agent pinned, so
// established flows survive restarts), and programs the ServiceTable
// through ServiceProgrammer (service_programmer.h: write discipline, ids).
// Both objects share every map through the pins: one write serves both
// paths. The uplink objects (host tc, XDP) and the cgroup hooks are
// attached here too (ebpf_mode_attach.cc); stale UDP sockets are destroyed
// by SocketTerminator; describe() and stats() read the maps
// (ebpf_mode_describe.cc, ebpf_mode_stats.cc).
//
// Threading: all methods may be called from any thread. Service entries
// (sync, apply and what they write) serialise on entriesMu_; the node
// attachments (uplink objects, cgroup links) on attachMu_; reads of the
// maps (dump, describe, counters) take no lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "bpf/abi/ct.h"
#include "bpf/abi/lb.h"
#include "bpf/abi/sock.h"
#include "bpf/loader/bpf_map.h"
#include "bpf/loader/ebpf_options.h"
#include "bpf/loader/lb_layout.h"
#include "bpf/loader/map_batch.h"
#include "bpf/loader/pinned_objects.h"
#include "bpf/loader/service_programmer.h"
#include "bpf/loader/socket_terminator.h"
#include "dataplane/ip_address.h"
#include "dataplane/maglev.h"
#include "dataplane/proxy_mode.h"

struct host_bpf;
struct lxc_bpf;
struct sock_bpf;
struct sock_term_bpf;
struct xdp_bpf;

namespace sluice {

// Every entry of the datapath maps as the kernel holds them now, for
// `sluice debug` (like `cilium bpf lb list` / `cilium bpf ct list`) and tests.
struct EbpfDump {
  std::map<sl_svc_key, sl_svc_value, bpf::BytesLess> services;
  std::map<sl_slot_key, uint32_t, bpf::BytesLess> slots;
  std::map<uint32_t, sl_backend> backends;
  std::map<uint32_t, std::vector<uint32_t>> maglev;  // set id -> backend id per slot
  std::map<sl_ct_key, sl_ct_entry, bpf::BytesLess> conntrack;
  std::map<sl_affinity_key, sl_affinity_value, bpf::BytesLess> affinity;
  std::map<sl_sock_rev_key, sl_svc_key, bpf::BytesLess> sockReverse;
};

class EbpfMode final : public ProxyMode {
 public:
  using Options = EbpfOptions;

  static Result<std::unique_ptr<EbpfMode>> create(Options options);
  ~EbpfMode() override;

  EbpfMode(const EbpfMode&) = delete;
  EbpfMode& operator=(const EbpfMode&) = delete;

  std::string_view name() const override { return "ebpf"; }
  // Reads the pinned maps, then converges them on `table`: writes only what
  // differs, deletes entries no service of `table` owns. Must run before
  // apply(); may run again at any time as a full resync. Reads and writes
  // go through the batch syscalls (O(entries / 8192) of them); if a batch
  // write fails, apply() is refused until a sync() succeeds.
  Result<void> sync(const ServiceTable& table) override;
  // Touches only the services in `diff`. On an error the failing service
  // may be partly written (maps have no transactions); the mirror records
  // exactly what was written, so retrying the diff, or sync(), converges.
  Result<void> apply(const ServiceDiff& diff) override;
  ProxyStats stats() const override;
  ModeCapabilities capabilities() const override;
  // From dump() (ebpf_mode_describe.cc).
  Result<std::vector<DescribedFrontend>> describeFrontends() const override;
  Result<DescribedSelection> describeSelection(const ServiceKey& key) const override;
  Result<std::vector<DescribedFlow>> describeFlows(size_t limit) const override;

  // Reads every map (O(entries) syscalls: for debugging, not hot paths).
  Result<EbpfDump> dump() const;

  // tc ingress on the host side of a pod's veth (bpf/lxc.bpf.c).
  Result<void> attachLxc(int ifindex);
  Result<void> detachLxc(int ifindex);
  // The loaded sl_lxc_ingress, for BPF_PROG_TEST_RUN and benchmarks.
  int lxcIngressFd() const;

  // The node's uplink (bpf/host.bpf.c, tc ingress): NodePort, LoadBalancer
  // and externalIP traffic from outside clients. nodeAddresses: this node's
  // addresses; the first of each family is the SNAT source of
  // externalTrafficPolicy=Cluster flows (a family without one is DNATed
  // only). The object is loaded on first use and reloaded, and re-attached
  // to every uplink, when the addresses change (they are load-time
  // constants: no map lookup per packet).
  //
  // LoadBalancer ingress IPs and externalIPs must also be answered for in
  // ARP/ND: that is the caller's job (sluice-agent adds them to the uplink
  // as /32 and /128 addresses, the netns suite does the same), since this
  // class does not own the node's addresses.
  Result<void> attachUplink(int ifindex, const std::vector<IpAddress>& nodeAddresses);
  Result<void> detachUplink(int ifindex);
  // Loads the uplink object without attaching it (tests, benchmarks).
  Result<void> loadUplink(const std::vector<IpAddress>& nodeAddresses);
  // The loaded sl_host_ingress, or -1 before loadUplink()/attachUplink().
  int uplinkIngressFd() const;
  // XDP in front of it (bpf/xdp.bpf.c): early drop of what bpf_host would
  // drop, everything else XDP_PASS. Optional: attachUplink() works alone,
  // and a kernel without what bpf_xdp needs (kXdpEarlyDrop missing from
  // capabilities()) gets no XDP object: attachUplinkXdp() then fails.
  // Native (driver) mode where the driver has it, else generic; replaces
  // whatever XDP program the device had. Needs loadUplink() first.
  Result<void> attachUplinkXdp(int ifindex);
  Result<void> detachUplinkXdp(int ifindex);
  // The loaded sl_xdp_uplink, or -1 before loadUplink()/attachUplink().
  int uplinkXdpFd() const;

  // Socket-level load balancing (bpf/sock.bpf.c) for every process in the
  // cgroup v2 directory cgroupPath and its descendants (the cgroup root for
  // the whole node): the eight connect/sendmsg/recvmsg/getpeername hooks,
  // as bpf_links pinned under cgroupLinkDir(). Pinned links stay attached
  // when the agent exits, so sockets keep being balanced (through the
  // pinned maps) while it is down; attaching again from a new EbpfMode
  // swaps each link's program in place (BPF_LINK_UPDATE): no window
  // without a hook, and never two copies of one. Links coexist with other
  // programs on the same hooks (multi-attach). Needs Linux 5.7 (cgroup
  // links; without getpeername hooks (5.8) or bpf_set_retval (5.18) the
  // variant create() loaded leaves them out: see capabilities()).
  Result<void> attachCgroup(const std::string& cgroupPath);
  // Detaches and unpins what attachCgroup() pinned; nothing pinned is not
  // an error. Run it before removing the cgroup: a removed cgroup's links
  // go defunct but their pins stay until the pin dir goes.
  Result<void> detachCgroup(const std::string& cgroupPath);
  // <pinDir>/links/cgroup-<id>, id the cgroup's inode number (its cgroup
  // id, never reused while the system runs).
  Result<std::string> cgroupLinkDir(const std::string& cgroupPath) const;

  // Stale connected UDP sockets (socket_terminator.h): after apply() or
  // sync() removes backends of a service with a UDP frontend, the sockets
  // bpf_sock connected to them are destroyed, in the network namespace of
  // the calling thread (the node's, for the agent). apply() does not fail
  // when this does: the maps are programmed either way.
  // OK when the iterator is loaded; otherwise the error says why.
  Result<void> socketTermination() const;
  // The last sweep's error, or OK (also OK before any sweep).
  Result<void> lastSocketTermination() const;

  const Options& options() const { return options_; }
  // What the kernel offers, as create() probed it (or was given it).
  const bpf::KernelFeatures& kernel() const { return *options_.kernel; }

 private:
  EbpfMode(Options options, bpf::Skeleton<lxc_bpf> skel, bpf::Skeleton<sock_bpf> sock);
  // Destroys the sockets of backends the last sync/apply removed.
  void terminateRemovedSockets();
  uint64_t sumCounter(const bpf::MapRef& map, uint32_t index) const;

  const Options options_;
  bpf::Skeleton<lxc_bpf> skel_;
  bpf::Skeleton<sock_bpf> sock_;
  uint64_t netnsCookie_ = 0;  // the socket hooks' namespace (0: all); set once
  // Every map of the objects, by name; the lxc skeleton's fds serve (both
  // objects hold the same pinned maps). Immutable after create().
  bpf::MapRef services_, slots_, backends_, maglev_, ct_, affinity_, sockRev_, drops_, events_;

  // Service entries.
  mutable std::mutex entriesMu_;
  bpf::MapOpCounters ops_;                        // guarded by entriesMu_
  std::unique_ptr<bpf::ServiceProgrammer> programmer_;  // guarded by entriesMu_
  bool synced_ = false;  // apply() needs the pinned state sync() adopts
  uint64_t applies_ = 0;
  uint64_t applyErrors_ = 0;

  // Node attachments: the uplink object, once loaded, the addresses it was
  // loaded with, and the uplinks it is attached to (by ifindex).
  mutable std::mutex attachMu_;
  bpf::Skeleton<host_bpf> host_;
  bpf::Skeleton<xdp_bpf> xdp_;  // loaded with host_, never reloaded (no config)
  std::vector<IpAddress> hostAddresses_;
  std::set<int> uplinks_;

  std::unique_ptr<bpf::SocketTerminator> terminator_;  // thread-safe itself
};

}  // namespace sluice
