// The per-lcore packet pipeline of the DPDK fast path:
//
//   burst of frames from one port
//     -> ARP / neighbor solicitations for service addresses answered
//     -> parse (dataplane/packet.h); malformed: dropped or passed (frame_ops.h)
//     -> steering: hand the frame to the worker owning its flow (steering.h)
//     -> conntrack lookup of the whole burst, prefetched (dataplane/conntrack.h)
//     -> hit: the flow's NAT; miss: frontend lookup in the RCU-published
//        tables, backend choice (affinity, Maglev or hash), SNAT port choice,
//        conntrack insert, NAT
//     -> Ethernet addresses for the next hop, and a verdict per frame.
//
// Ports. The pipeline sees two sides: the uplink (the NIC: outside clients,
// remote backends) and the kernel (a TAP: the node's own stack and, behind
// its routing, the pods). A frame that is not service traffic passes
// through unchanged: uplink -> kernel through the exception path, kernel ->
// uplink directly. Service flows are translated and sent to the side their
// new destination is on: a backend on this node (or the client itself:
// hairpin) is behind the kernel, any other behind the uplink.
//
// SNAT (full NAT) only where replies would not come back otherwise:
//   client behind the kernel, backend behind the kernel -> SNAT to the
//     kernel-side address (169.254.42.1 / fd73:6c75::1, routed to the TAP),
//     or the backend's reply would go straight to the client;
//   client on the uplink, backend behind the kernel -> the same, except
//     under externalTrafficPolicy Local (client address kept: the kernel
//     routes replies to outside clients through the TAP);
//   client on the uplink, backend on the uplink -> SNAT to the node address;
//   client behind the kernel, backend on the uplink -> none (the client's
//     address routes back to this node).
// TTL / hop limit are not decremented: as the eBPF mode, the pipeline is a
// translation on the way, not a router hop.
//
// Nothing here allocates, locks (but the affinity bucket of a new flow of
// an affinity service) or blocks; replies are built in the frame's own mbuf.
//
// Threading: one Worker per lcore; its conntrack and flow sides are its own.
// The shared parts (tables, affinity, steering, config) are safe to read
// from every worker (service_tables.h, affinity.h).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "dataplane/conntrack.h"
#include "dataplane/dpdk/affinity.h"
#include "dataplane/dpdk/counters.h"
#include "dataplane/dpdk/frame_ops.h"
#include "dataplane/dpdk/mac.h"
#include "dataplane/dpdk/neighbours.h"
#include "dataplane/dpdk/service_tables.h"
#include "dataplane/dpdk/steering.h"
#include "dataplane/nat.h"
#include "dataplane/packet.h"

struct rte_mbuf;

namespace sluice::dpdk {

enum class PortRole : uint8_t { kUplink = 0, kKernel = 1 };

struct PipelineConfig {
  MacAddr uplinkMac{};  // this node's MAC on the uplink (the NIC's)
  MacAddr kernelMac{};  // the kernel's TAP interface: translated frames for it go here
  MacAddr routerMac{};  // what ARP/ND answers carry towards the kernel
  // Where frames for remote backends go while SharedState::nextHops has no
  // next hop for them (the uplink's gateway or a switch that knows the pod
  // networks); without one they are dropped no_next_hop.
  std::optional<MacAddr> gatewayMac;
  // The node's addresses: SNAT source towards remote backends.
  std::optional<IpAddress> nodeV4;
  std::optional<IpAddress> nodeV6;
  // The kernel-side SNAT addresses, the eBPF mode's hairpin addresses.
  IpAddress kernelSnatV4 = IpAddress::v4({169, 254, 42, 1});
  IpAddress kernelSnatV6 =
      IpAddress::v6({0xfd, 0x73, 0x6c, 0x75, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
  // Ports handed out on the node address. Linux's ephemeral range
  // (net.ipv4.ip_local_port_range) is 32768-60999 by default; the node's own
  // connections use it on the same address, so SNAT stays above it.
  PortRange nodeSnatPorts{61000, 65535};
  // The kernel-side addresses are ours alone: any port above the
  // well-known ones.
  PortRange kernelSnatPorts{1024, 65535};
  // The uplink's IP MTU: a DSR packet whose outer header would pass it is
  // dropped encap_failed (the backend's MSS should leave room: 20 B IPv4,
  // 40 B IPv6).
  uint32_t uplinkMtu = 1500;
  // From this conntrack capacity up, a burst's first packets are all
  // planned before any is inserted, so the index lines of their reply
  // tuples are fetched together (Worker::planFlow). A smaller table stays
  // in cache, where the extra pass only costs (bench/dpdk/pipeline_bench,
  // first packets: 0.62x the cycles at 1M flows, 1.2-1.4x at 1k).
  uint32_t planAheadMinCapacity = uint32_t{1} << 16;
};

// The SNAT addresses of a config with their ranges, for Steering.
std::vector<std::pair<IpAddress, PortRange>> snatAddresses(const PipelineConfig& c);

// Per-flow data kept beside each conntrack entry (same pool index), in the
// same memory region, so it survives a restart with the entry.
struct alignas(32) FlowSide {
  MacAddr
      clientMac{};  // source MAC of the flow's first frame: replies to uplink clients go back to it
  PortRole clientRole = PortRole::kUplink;
  PortRole backendRole = PortRole::kUplink;
  // The entry has a SNAT binding (ConntrackEntry::snat() without its two
  // address compares per packet).
  bool snat = false;
  // Direct server return: the original direction is encapsulated to the
  // backend, not NATed (replies never pass here). Zero in state files of
  // processes before DSR, which had no such flows.
  bool dsr = false;
  bool toClientReady = false;  // toClient is computed (at the first reply)
  uint8_t reserved[1]{};
  uint32_t serviceId = 0;  // the flow's service (the tables' id), for describe
  // The checksum changes of the flow's TCP/UDP translation, client to
  // backend (computed when the flow opens) and back (at its first reply,
  // which many flows never have): a packet then only writes its fields and
  // adds these (applyTranslation).
  TranslationDeltas toBackend;
  TranslationDeltas toClient;
  uint8_t reserved2[8]{};
};
// Two per cache line, never across one (the state file's region and the
// heap arrays are at least 32 B aligned).
static_assert(sizeof(FlowSide) == 32);

enum class Action : uint8_t {
  kTxUplink,
  kTxKernel,           // a translated frame (or a reply) into the kernel's TAP
  kException,          // to the kernel through the exception path, unchanged
  kExceptionPriority,  // ... control-plane traffic: its own ring, never starved
  kHandoff,            // to worker `worker`, which owns the flow
  kDrop,
};

struct Verdict {
  Action action = Action::kDrop;
  uint8_t worker = 0;
  DropReason reason = DropReason::kNone;
  // Four bytes, not three: a 3-byte return value is assembled in memory
  // byte by byte and read back as a word, a store-forwarding stall per
  // packet; four travel in a register.
  uint8_t unused = 0;

  // kDrop without a reason: nothing decided yet, the caller goes on
  // (what Worker::early() and Worker::planFlow() return to say so).
  bool undecided() const { return action == Action::kDrop && reason == DropReason::kNone; }
};
static_assert(sizeof(Verdict) == 4);
inline constexpr Verdict kUndecided{Action::kDrop, 0, DropReason::kNone, 0};

// What every worker shares.
struct SharedState {
  const ServiceTables* tables = nullptr;
  AffinityTable* affinity = nullptr;
  const Steering* steering = nullptr;
  const PipelineConfig* config = nullptr;
  // The next hops of remote backends as the node's kernel resolved them
  // (neighbours.h); nullptr: every remote backend takes the gateway MAC.
  const NextHops* nextHops = nullptr;
};

// The worker owning the flow of a frame received on `from` outside any
// worker (the TAP, which the control thread polls): what Worker::process
// would hand it to. Frames that are not a parseable flow go to worker 0.
uint32_t steerOwner(rte_mbuf* frame, PortRole from, const SharedState& shared);

class Worker {
 public:
  static constexpr uint16_t kMaxBurst = 64;
  // A table smaller than this would often evict, during one burst, an
  // entry a later frame of the same burst matched (process() then looks
  // the burst's remaining flows up again: Conntrack::evictedFromBatch).
  static constexpr uint32_t kMinConntrackCapacity = 4 * kMaxBurst;

  // `flowSides` has conntrack.capacity() elements; both stay this worker's.
  static Result<Worker> create(uint32_t index, SharedState shared, Conntrack conntrack,
                               std::span<FlowSide> flowSides, LcoreCounters& counters);

  // Runs the pipeline over n <= kMaxBurst frames received on `from`,
  // rewriting them in place; out[i] says where frame i goes. `steered`:
  // the frames were handed to this worker, which owns their flows (no
  // second steering decision).
  void process(rte_mbuf* const* frames, uint16_t n, PortRole from, uint64_t nowNs, Verdict* out,
               bool steered = false);

  // Reclaims up to `budget` expired conntrack entries (between bursts).
  size_t expire(uint64_t nowNs, size_t budget) { return conntrack_.expire(nowNs, budget); }

  uint32_t index() const { return index_; }
  Conntrack& conntrack() { return conntrack_; }
  const Conntrack& conntrack() const { return conntrack_; }
  const FlowSide& flowSide(const ConntrackEntry& e) const { return sides_[conntrack_.indexOf(e)]; }
  LcoreCounters& counters() { return *counters_; }

 private:
  Worker(uint32_t index, SharedState shared, Conntrack conntrack, std::span<FlowSide> sides,
         LcoreCounters& counters);

  Verdict early(Frame& f, PortRole from, ParsedPacket& p, FlowTuple& key, bool steered);
  Verdict established(Frame& f, PortRole from, ParsedPacket& p, const ConntrackMatch& m,
                      uint64_t nowNs);
  // `hash`: the flow's conntrack hash, as its lookup reported it.
  // planFlow() then commitFlow().
  Verdict newFlow(Frame& f, PortRole from, ParsedPacket& p, uint32_t hash, uint64_t nowNs,
                  bool reselect);
  // What a first packet's flow will be, decided before conntrack is
  // touched: service, backend, SNAT address, DSR. Returns the frame's
  // verdict when that settles it (not a service, refused, dropped), else
  // kUndecided and `plan` filled. process() plans every first
  // packet of a burst before inserting any, and `prefetch` then starts the
  // fetch of the index lines the flow's reply tuple will be checked and
  // inserted in, as the lookups' were.
  struct FlowPlan;
  Verdict planFlow(Frame& f, PortRole from, const ParsedPacket& p, uint64_t nowNs, FlowPlan& plan,
                   bool prefetch);
  Verdict commitFlow(Frame& f, PortRole from, ParsedPacket& p, uint32_t hash, uint64_t nowNs,
                     bool reselect, const FlowPlan& plan);
  Verdict pass(const Frame& f, PortRole from);
  // A DSR flow's packet, encapsulated from the node address to `backend`
  // (whose id names its next hop).
  Verdict encapsulateTo(Frame& f, const ParsedPacket& p, const IpAddress& backend,
                        uint32_t backendId, const FlowSide& side, uint32_t hash);
  Verdict replyBack(PortRole from) const;
  // `backendId`: whose next hop a frame for a remote backend takes
  // (SharedState::nextHops; else the gateway MAC).
  Verdict toSide(Frame& f, PortRole side, const FlowSide& flow, bool towardsClient,
                 uint32_t backendId = 0);
  Verdict drop(DropReason r);
  bool answersFor(const IpAddress& a, PortRole from) const;
  bool isServiceDestination(const PeekedDestination& d) const;

  // Per-burst scratch, kept here rather than on the stack: building ~9 KiB
  // of value-initialised arrays per burst cost ~40 cycles a packet.
  struct Scratch;
  struct FreeScratch {
    void operator()(Scratch* s) const;
  };

  uint32_t index_;
  SharedState shared_;
  Conntrack conntrack_;
  std::span<FlowSide> sides_;
  LcoreCounters* counters_;
  std::unique_ptr<Scratch, FreeScratch> scratch_;
  uint32_t snatCursor_ = 0;  // where the next SNAT port search starts in each range
  // snatCursor_ as the burst's commits will advance it if their first
  // candidate port is free: which reply tuple planFlow() prefetches.
  uint32_t plannedCursor_ = 0;
};

}  // namespace sluice::dpdk
