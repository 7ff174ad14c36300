// EbpfMode: the `ebpf` ProxyMode. Loads the BPF objects through their
// skeletons (lxc: tc on pod veths; sock: cgroup socket hooks), pins their
// maps under a bpffs directory (adopting maps a previous agent pinned, so
// established flows survive restarts), and programs the ServiceTable into
// sl_services / sl_slots / sl_backends / sl_maglev (bpf/abi/lb.h). Both
// objects share every map through the pins: one write serves both paths.
//
// Write discipline: the loader keeps a mirror of every entry it owns and
// writes only entries whose value differs, so apply() of one changed
// endpoint touches that service's entries only (its backend, the slots that
// move, its frontends' counts, the Maglev slots MaglevBuilder::rebuild()
// reports changed). sync() reads the pinned maps first, so a restart with
// an unchanged table writes nothing.
//
// Ids: service ids (30 bits) and backend ids (32 bits) are allocated
// upwards from one past the highest id found in the pinned maps, and not
// reused within a run before the space wraps, so conntrack entries naming a
// deleted backend do not resolve to a new one. After a restart an id freed
// in the previous run can come back; the datapath honours a conntrack entry
// only while its backend belongs to the packet's service, so such an entry
// at worst sends a flow to a current backend of the same frontend.
//
// Threading: all methods may be called from any thread; they serialise on
// one mutex (stats() is cheap enough for a metrics scrape).
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
#include "bpf/loader/lb_layout.h"
#include "bpf/loader/map_batch.h"
#include "dataplane/ip_address.h"
#include "dataplane/maglev.h"
#include "dataplane/proxy_mode.h"

struct host_bpf;
struct lxc_bpf;
struct sock_bpf;
struct sock_term_bpf;
struct xdp_bpf;

namespace sluice {

struct EbpfOptions {
  // bpffs directory for the pinned maps; created if missing. One per node
  // agent: two agents sharing it would fight over the entries.
  std::string pinDir = "/sys/fs/bpf/sluice";
  // Map capacities (entries). A pinned map of another size is not adopted:
  // create() fails and says so (resizing would drop conntrack).
  uint32_t maxFrontends = 65536;   // sl_services
  uint32_t maxSlots = 262144;      // sl_slots: sum over sets of their backends
  uint32_t maxBackends = 262144;   // sl_backends
  uint32_t maxMaglevTables = 1024; // sl_maglev: Maglev services x families x locality
  uint32_t maxConntrack = 262144;  // sl_ct: two entries per flow (LRU)
  uint32_t maxAffinity = 65536;    // sl_affinity (LRU)
  uint32_t maxSockReverse = 262144;  // sl_sock_rev: sockets sent to a backend (LRU)
  // The network namespace whose sockets the cgroup hooks translate (its
  // SO_NETNS_COOKIE); unset: the namespace of the thread calling create(),
  // 0: every namespace in the cgroup.
  std::optional<uint64_t> netnsCookie;
};

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
  // drop, everything else XDP_PASS. Optional: attachUplink() works alone.
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
  // links; bpf_set_retval, which the object calls, needs 5.18).
  Result<void> attachCgroup(const std::string& cgroupPath);
  // Detaches and unpins what attachCgroup() pinned; nothing pinned is not
  // an error. Run it before removing the cgroup: a removed cgroup's links
  // go defunct but their pins stay until the pin dir goes.
  Result<void> detachCgroup(const std::string& cgroupPath);
  // <pinDir>/links/cgroup-<id>, id the cgroup's inode number (its cgroup
  // id, never reused while the system runs).
  Result<std::string> cgroupLinkDir(const std::string& cgroupPath) const;

  // Stale connected UDP sockets (bpf/sock_term.bpf.c): after apply()
  // removes backends from a service with a UDP frontend, the sockets
  // bpf_sock connected to those backends through that service are
  // destroyed (their next recv()/send() fails with ECONNABORTED, so the
  // application reconnects to a live backend). Sockets are found in the
  // network namespace of the thread that calls apply() (the node's, for
  // the agent): pods' own namespaces are not searched. apply() does not
  // fail when this does: the maps are programmed either way.
  //
  // OK when the iterator is loaded; otherwise the error says why (needs
  // Linux 6.5 for the bpf_sock_destroy kfunc, 5.9 for iter/udp).
  Result<void> socketTermination() const;
  // The last sweep's error, or OK (also OK before any sweep).
  Result<void> lastSocketTermination() const;

  const Options& options() const { return options_; }

 private:
  struct SkeletonDeleter {
    void operator()(lxc_bpf* skel) const;
    void operator()(sock_bpf* skel) const;
    void operator()(host_bpf* skel) const;
    void operator()(xdp_bpf* skel) const;
    void operator()(sock_term_bpf* skel) const;
  };
  template <typename Skel>
  using SkeletonPtr = std::unique_ptr<Skel, SkeletonDeleter>;
  // Opens one object with the pin root, sizes its maps from the options,
  // checks pins an earlier run left, loads it.
  // configure, if set, runs between open and load (load-time constants).
  template <typename Skel>
  static Result<SkeletonPtr<Skel>> loadObject(const Options& options, const char* file,
                                              const std::function<void(Skel&)>& configure = {});

  // One backend set's entries (bpf/abi/lb.h), as last written or adopted.
  struct SetState {
    std::map<uint32_t, uint32_t> slots;  // slot -> backend id, mirror of sl_slots
    uint16_t active = 0;                 // slots [0, active) are active backends
    // Maglev: the inner map, its contents as written, and the table they
    // came from (absent after a restart: then contents are compared).
    bpf::FileDescriptor maglevFd;
    std::vector<uint32_t> maglevIds;
    std::optional<MaglevTable> maglevTable;
  };

  struct ServiceState {
    uint32_t svcId = 0;
    std::map<bpf::EndpointKey, uint32_t> backendIds;
    std::map<uint32_t, sl_backend> backends;  // mirror of this service's sl_backends
    std::map<uint32_t, SetState> sets;        // by set id
    std::map<sl_svc_key, sl_svc_value, bpf::BytesLess> frontends;  // mirror of its sl_services
  };

  EbpfMode(Options options, SkeletonPtr<lxc_bpf> skel, SkeletonPtr<sock_bpf> sock);

  Result<void> program(const ServiceKey& key, ServiceState& st, const Service& svc);
  Result<void> programSet(ServiceState& st, const Service& svc, uint32_t setId,
                          const std::vector<uint32_t>& active,
                          const std::vector<uint32_t>& terminating,
                          const std::vector<MaglevBackend>& maglevBackends,
                          const std::vector<uint32_t>& maglevIds);
  Result<void> eraseSet(uint32_t setId, SetState& set);
  Result<void> remove(const ServiceKey& key);
  Result<void> applyChanges(const ServiceDiff& diff);
  // Queues the socket-termination target of a backend leaving service st
  // (svcId 0: the service itself is gone), if the service has UDP frontends.
  void queueSocketTermination(const ServiceState& st, const sl_backend& be, uint32_t svcId);
  // Runs bpf/sock_term.bpf.c over the queued targets and clears the queue.
  Result<void> terminateSockets();
  // Loads bpf/sock_term.bpf.o, or records in sockTermError_ why it cannot.
  void loadSocketTerminator();
  Result<void> adopt(const ServiceTable& table);
  // Map writes of program() and friends: straight to the kernel, or, while
  // sync() runs, into batch_ (one batch syscall per 8192 entries at the end,
  // see map_batch.h). Maglev inner maps are the phase kMaglevInner target
  // of their set id.
  enum Phase : int { kBackends, kSlots, kMaglevInner, kMaglevOuter, kFrontends };
  template <typename K, typename V>
  Result<void> put(bpf::MapRef& map, Phase phase, const K& key, const V& value,
                   uint64_t id = 0) {
    return batch_ ? batch_->update({phase, id}, map, key, value) : map.update(key, value);
  }
  template <typename K>
  Result<void> del(bpf::MapRef& map, Phase phase, const K& key) {
    return batch_ ? batch_->erase({phase, 0}, map, key) : map.erase(key);
  }
  uint32_t allocateServiceId();
  uint32_t allocateBackendId();
  uint64_t sumCounter(const bpf::MapRef& map, uint32_t index) const;

  const Options options_;
  SkeletonPtr<lxc_bpf> skel_;
  SkeletonPtr<sock_bpf> sock_;
  // The uplink object, once loaded, the addresses it was loaded with, and
  // the uplinks it is attached to (by ifindex).
  SkeletonPtr<host_bpf> host_;
  SkeletonPtr<xdp_bpf> xdp_;  // loaded with host_, never reloaded (no config)
  // The UDP socket terminator; null with the reason in sockTermError_ when
  // this kernel cannot load it.
  SkeletonPtr<sock_term_bpf> sockTerm_;
  std::string sockTermError_;
  std::vector<sl_sock_term_key> pendingTerm_;  // filled by program()/remove()
  std::optional<Error> lastTermError_;
  std::vector<IpAddress> hostAddresses_;
  std::set<int> uplinks_;
  mutable std::mutex mu_;
  bpf::MapOpCounters ops_;
  bpf::MapRef services_, slots_, backends_, maglev_, ct_, affinity_, sockRev_, drops_, events_;

  std::map<ServiceKey, ServiceState> programmed_;
  // Which service wrote each sl_services entry: a frontend moving between
  // services in one diff must not be deleted by the service it left.
  std::map<sl_svc_key, ServiceKey, bpf::BytesLess> frontendOwner_;
  std::map<uint32_t, ServiceKey> serviceIds_;
  uint32_t nextServiceId_ = 1;
  uint32_t nextBackendId_ = 1;
  bool backendIdsWrapped_ = false;
  bool synced_ = false;  // apply() needs the pinned state sync() adopts
  uint64_t netnsCookie_ = 0;  // the socket hooks' namespace (0: all)
  bpf::PendingWrites* batch_ = nullptr;  // set while sync() runs
  uint64_t applies_ = 0;
  uint64_t applyErrors_ = 0;
};

}  // namespace sluice
