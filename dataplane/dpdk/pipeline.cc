#include "dataplane/dpdk/pipeline.h"

#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>

#include "dataplane/nat.h"

namespace sluice::dpdk {
namespace {

// New flows try at most this many SNAT ports that collide with a live
// flow before giving up (kSnatPortsExhausted), and look at most this many
// candidates for eligibility: a burst's worst case stays bounded even when
// a backend's share of ports is nearly used up.
constexpr int kMaxSnatInserts = 64;
constexpr uint32_t kMaxSnatCandidates = 4096;

Frame frameOf(rte_mbuf* m) {
  auto* data = static_cast<uint8_t*>(m->buf_addr) + m->data_off;
  return Frame{data, m->data_len, static_cast<uint32_t>(m->buf_len - m->data_off), m->data_off};
}

// Writes what the pipeline made of a frame back to its mbuf: its start (an
// encapsulation grows it into the headroom) and length.
void storeFrame(rte_mbuf* m, const Frame& f) {
  m->data_off = static_cast<uint16_t>(f.headroom);
  m->data_len = static_cast<uint16_t>(f.length);
  m->pkt_len = f.length;
}

void setMacs(Frame& f, const MacAddr& dst, const MacAddr& src) {
  std::memcpy(f.data, dst.data(), 6);
  std::memcpy(f.data + 6, src.data(), 6);
}

uint8_t tcpFlagsOf(const Frame& f, const ParsedPacket& p) {
  return p.protocol == Protocol::kTcp && !p.isIcmpError ? f.data[p.l4Offset + 13] : 0;
}

}  // namespace

std::vector<std::pair<IpAddress, PortRange>> snatAddresses(const PipelineConfig& c) {
  std::vector<std::pair<IpAddress, PortRange>> out = {{c.kernelSnatV4, c.kernelSnatPorts},
                                                      {c.kernelSnatV6, c.kernelSnatPorts}};
  if (c.nodeV4) out.push_back({*c.nodeV4, c.nodeSnatPorts});
  if (c.nodeV6) out.push_back({*c.nodeV6, c.nodeSnatPorts});
  return out;
}

uint32_t steerOwner(rte_mbuf* m, PortRole from, const SharedState& shared) {
  const Steering& st = *shared.steering;
  if (st.workers() == 1) return 0;
  const Frame f = frameOf(m);
  ParsedPacket p;
  if (parsePacket(f.bytes(), Framing::kEthernet, p) != DropReason::kNone) return 0;
  const FlowTuple key = p.isIcmpError ? p.tuple.reversed() : p.tuple;
  const bool toFrontend = shared.tables->frontend(key.dst, key.dstPort, key.protocol) != nullptr;
  return st.owner(
      key, toFrontend,
      from == PortRole::kUplink && st.rss() ? std::optional<uint32_t>(0) : std::nullopt);
}

struct Worker::FlowPlan {
  const FrontendEntry* frontend = nullptr;
  const BackendRef* backend = nullptr;
  const PortRange* snatRange = nullptr;  // with snatAddress
  std::optional<IpAddress> snatAddress;
  PortRole backendRole = PortRole::kUplink;
  bool dsr = false;
  bool hairpin = false;
  // The reply tuple planFlow() prefetched: its SNAT (or client) port and
  // its conntrack hash, which the commit's insert of that tuple reuses.
  uint16_t predictedPort = 0;
  std::optional<uint32_t> replyHash;
};

struct Worker::Scratch {
  std::array<ParsedPacket, kMaxBurst> parsed;
  std::array<FlowTuple, kMaxBurst> keys;
  std::array<uint16_t, kMaxBurst> lookupOf;  // key index -> frame index
  std::array<ConntrackMatch, kMaxBurst> matches;
  // Per key: the first packet's plan, or the verdict planning settled.
  enum class Planned : uint8_t { kNo, kSettled, kReady };
  std::array<Planned, kMaxBurst> planned;
  std::array<Verdict, kMaxBurst> settled;
  std::array<FlowPlan, kMaxBurst> plans;
  // The original-tuple hashes of the flows this burst inserted, as a
  // 256-bit filter: a frame whose hash is not in it has a flow the burst
  // lookup proved absent (Conntrack::insertAbsent); one whose hash may be
  // (a repeat of a flow, or 1 in 8 by chance with 32 new flows) goes
  // through insert(), which checks.
  std::array<uint64_t, 4> inserted{};

  static uint32_t bitOf(uint32_t hash) { return (hash >> 12) & 255; }
  bool maybeInserted(uint32_t hash) const {
    return (inserted[bitOf(hash) >> 6] >> (bitOf(hash) & 63)) & 1;
  }
  void noteInserted(uint32_t hash) { inserted[bitOf(hash) >> 6] |= uint64_t{1} << (bitOf(hash) & 63); }
};

void Worker::FreeScratch::operator()(Scratch* s) const { delete s; }

Worker::Worker(uint32_t index, SharedState shared, Conntrack conntrack, std::span<FlowSide> sides,
               LcoreCounters& counters)
    : index_(index),
      shared_(shared),
      conntrack_(std::move(conntrack)),
      sides_(sides),
      counters_(&counters),
      scratch_(new Scratch()) {}

Result<Worker> Worker::create(uint32_t index, SharedState shared, Conntrack conntrack,
                              std::span<FlowSide> flowSides, LcoreCounters& counters) {
  if (conntrack.capacity() < kMinConntrackCapacity) {
    return Error::invalid("worker " + std::to_string(index) + ": conntrack capacity " +
                          std::to_string(conntrack.capacity()) + " is below " +
                          std::to_string(kMinConntrackCapacity));
  }
  if (flowSides.size() < conntrack.capacity()) {
    return Error::invalid("worker " + std::to_string(index) +
                          ": flow sides smaller than conntrack");
  }
  if (shared.tables == nullptr || shared.affinity == nullptr || shared.steering == nullptr ||
      shared.config == nullptr) {
    return Error::invalid("worker: shared state incomplete");
  }
  return Worker(index, shared, std::move(conntrack), flowSides, counters);
}

Verdict Worker::drop(DropReason r) {
  counters_->drop(r);
  return {Action::kDrop, 0, r};
}

Verdict Worker::pass(const Frame& f, PortRole from) {
  counters_->event(Event::kPassNonService);
  if (from == PortRole::kKernel) return {Action::kTxUplink, 0, DropReason::kNone};
  return {isControlTraffic(f) ? Action::kExceptionPriority : Action::kException, 0,
          DropReason::kNone};
}

Verdict Worker::replyBack(PortRole from) const {
  return {from == PortRole::kUplink ? Action::kTxUplink : Action::kTxKernel, 0, DropReason::kNone};
}

Verdict Worker::toSide(Frame& f, PortRole side, const FlowSide& flow, bool towardsClient,
                       uint32_t backendId) {
  const PipelineConfig& c = *shared_.config;
  if (side == PortRole::kKernel) {
    setMacs(f, c.kernelMac, c.routerMac);
    return {Action::kTxKernel, 0, DropReason::kNone};
  }
  if (towardsClient) {
    setMacs(f, flow.clientMac, c.uplinkMac);
  } else if (const std::optional<MacAddr> hop =
                 shared_.nextHops != nullptr ? shared_.nextHops->of(backendId) : std::nullopt) {
    // The next hop the node's kernel resolved for this backend.
    setMacs(f, *hop, c.uplinkMac);
  } else {
    if (!c.gatewayMac) return drop(DropReason::kNoNextHop);
    setMacs(f, *c.gatewayMac, c.uplinkMac);
  }
  return {Action::kTxUplink, 0, DropReason::kNone};
}

bool Worker::answersFor(const IpAddress& a, PortRole from) const {
  const PipelineConfig& c = *shared_.config;
  if (from == PortRole::kKernel && (a == c.kernelSnatV4 || a == c.kernelSnatV6)) return true;
  const AddressEntry* e = shared_.tables->address(a);
  return e != nullptr && (from == PortRole::kKernel || e->announceUplink);
}

bool Worker::isServiceDestination(const PeekedDestination& d) const {
  if (d.port) {
    return shared_.tables->frontend(d.address, *d.port, static_cast<Protocol>(d.protocol)) !=
               nullptr ||
           shared_.steering->snatRange(d.address) != nullptr;
  }
  return shared_.tables->address(d.address) != nullptr ||
         shared_.steering->snatRange(d.address) != nullptr;
}

// Everything decided before the conntrack lookup: ARP/ND, malformed
// frames, what is not service traffic, and steering. Returns kUndecided
// to mean "continue with the lookup of `key`".
Verdict Worker::early(Frame& f, PortRole from, ParsedPacket& p, FlowTuple& key, bool steered) {
  const PipelineConfig& c = *shared_.config;
  const MacAddr& ours = from == PortRole::kUplink ? c.uplinkMac : c.routerMac;
  // EtherType (past one VLAN tag) decides which of the checks below apply:
  // IPv4, the common case, goes straight to the parser.
  const uint16_t type = f.length >= kEthernetHeaderLength + kVlanTagLength
                            ? static_cast<uint16_t>(f.data[12] << 8 | f.data[13])
                            : 0;
  const bool maybeArp = type != kEtherTypeIpv4;
  const bool maybeNd = type == kEtherTypeIpv6 || type == kEtherTypeVlan;
  if (!maybeArp) {
    // fall through to the parser
  } else if (auto target = arpRequestTarget(f)) {
    if (answersFor(*target, from)) {
      makeArpReply(f, ours);
      counters_->event(Event::kArpReply);
      return replyBack(from);
    }
    return pass(f, from);
  }
  if (!maybeNd) {
    // not IPv6: no neighbor discovery
  } else if (auto target = ndSolicitationTarget(f)) {
    if (answersFor(*target, from) && makeNdAdvertisement(f, ours)) {
      counters_->event(Event::kNdReply);
      return replyBack(from);
    }
    return pass(f, from);
  }
  const DropReason reason = parsePacket(f.bytes(), Framing::kEthernet, p);
  if (reason != DropReason::kNone) {
    const auto v = judgeMalformed(
        f, reason, [this](const PeekedDestination& d) { return isServiceDestination(d); });
    return v == MalformedVerdict::kDrop ? drop(reason) : pass(f, from);
  }
  // ICMP that is not an error (echo) is not balanced: the stack answers it;
  // an error we could not translate passes too.
  if ((p.protocol == Protocol::kIcmp || p.protocol == Protocol::kIcmpV6) &&
      (!p.isIcmpError || !isTranslatableIcmpError(f, p))) {
    return pass(f, from);
  }
  // An ICMP error travels like a packet of its flow going the other way
  // from the packet it quotes.
  // (Not a conditional expression: that builds the tuple in a temporary
  // whose narrow stores a wide copy then waits on, ~20 cycles a packet.)
  if (p.isIcmpError) {
    key = p.tuple.reversed();
  } else {
    key = p.tuple;
  }
  if (!steered && shared_.steering->workers() > 1) {
    const bool toFrontend = shared_.tables->frontend(key.dst, key.dstPort, key.protocol) != nullptr;
    const Steering& st = *shared_.steering;
    const uint32_t owner = st.owner(
        key, toFrontend,
        from == PortRole::kUplink && st.rss() ? std::optional<uint32_t>(index_) : std::nullopt);
    if (owner != index_) {
      counters_->event(Event::kHandoff);
      return {Action::kHandoff, static_cast<uint8_t>(owner), DropReason::kNone};
    }
  }
  return kUndecided;
}

void Worker::process(rte_mbuf* const* frames, uint16_t n, PortRole from, uint64_t nowNs,
                     Verdict* out, bool steered) {
  Scratch& s = *scratch_;
  uint16_t nKeys = 0;
  counters_->rxPackets.add(n);

  for (uint16_t i = 0; i < n; ++i) {
    Frame f = frameOf(frames[i]);
    out[i] = early(f, from, s.parsed[i], s.keys[nKeys], steered);
    storeFrame(frames[i], f);
    if (out[i].undecided())
      s.lookupOf[nKeys++] = i;
  }
  // The flows' side data is a second random access per packet: fetched
  // with the entries.
  const size_t hits = conntrack_.lookupBurst({s.keys.data(), nKeys}, {s.matches.data(), nKeys},
                                             nowNs, sides_.data(), sizeof(FlowSide));
  s.inserted = {};
  // First packets each evict the flow at the LRU tail of a full table:
  // start those misses now, as the lookups' were. In a large table, then
  // plan every first packet, which starts the fetch of its reply tuple's
  // index lines: each is a cache miss the inserts would otherwise wait on
  // one after the other.
  if (hits < nKeys) conntrack_.prefetchVictims(nKeys - hits);
  if (hits < nKeys && conntrack_.capacity() >= shared_.config->planAheadMinCapacity) {
    plannedCursor_ = snatCursor_;
    for (uint16_t k = 0; k < nKeys; ++k) {
      const uint16_t i = s.lookupOf[k];
      s.planned[k] = Scratch::Planned::kNo;
      if (s.matches[k] || s.parsed[i].isIcmpError) continue;
      Frame f = frameOf(frames[i]);
      const Verdict v = planFlow(f, from, s.parsed[i], nowNs, s.plans[k], true);
      storeFrame(frames[i], f);
      if (v.undecided()) {
        s.planned[k] = Scratch::Planned::kReady;
      } else {
        s.planned[k] = Scratch::Planned::kSettled;
        s.settled[k] = v;
      }
    }
  } else {
    std::fill_n(s.planned.begin(), nKeys, Scratch::Planned::kNo);
  }

  // An erase while finishing the burst (a flow whose backend left), or an
  // insert's eviction of an entry of this burst, may recycle an entry a
  // later frame's match points at: from then on each frame looks its flow
  // up again.
  bool relookup = false;
  for (uint16_t k = 0; k < nKeys; ++k) {
    const uint16_t i = s.lookupOf[k];
    Frame f = frameOf(frames[i]);
    ParsedPacket& p = s.parsed[i];
    if (s.planned[k] == Scratch::Planned::kSettled) {
      out[i] = s.settled[k];
      continue;
    }
    relookup = relookup || conntrack_.evictedFromBatch();
    ConntrackMatch m = relookup ? conntrack_.lookup(s.keys[k], nowNs) : s.matches[k];
    if (m && m.direction == ConntrackDirection::kOriginal &&
        !shared_.tables->backends().isLive(m.entry->backendId)) {
      // The backend is gone: the flow chooses again (an ICMP error about
      // it has nothing left to translate to).
      counters_->event(Event::kSvcReselect);
      conntrack_.erase(m.entry->original);
      relookup = true;
      out[i] = p.isIcmpError ? pass(f, from) : newFlow(f, from, p, m.hash, nowNs, true);
    } else if (m) {
      out[i] = established(f, from, p, m, nowNs);
    } else if (p.isIcmpError) {
      out[i] = pass(f, from);  // about no flow of ours
    } else if (s.planned[k] == Scratch::Planned::kReady) {
      out[i] = commitFlow(f, from, p, m.hash, nowNs, false, s.plans[k]);
    } else {
      out[i] = newFlow(f, from, p, m.hash, nowNs, false);
    }
    storeFrame(frames[i], f);
  }
}

Verdict Worker::established(Frame& f, PortRole from, ParsedPacket& p, const ConntrackMatch& m,
                            uint64_t nowNs) {
  const ConntrackEntry& e = *m.entry;
  FlowSide& side = sides_[conntrack_.indexOf(e)];
  if (!p.isIcmpError) conntrack_.update(m, tcpFlagsOf(f, p), p.l3End - p.l3Offset, nowNs);
  DropReason r = DropReason::kNone;
  if (m.direction == ConntrackDirection::kOriginal && side.dsr) {
    // The packet (or an ICMP error about the backend's replies, which the
    // backend needs for path MTU) goes to the backend as it came.
    return encapsulateTo(f, p, e.reply.src, e.backendId, side, m.hash);
  }
  if (m.direction == ConntrackDirection::kOriginal) {
    // A TCP/UDP packet with the deltas prepared when the flow opened; an
    // ICMP echo or error with the general functions.
    if (!applyTranslation(f.bytes(), p, e.reply.reversed(), side.toBackend)) {
      const NatEndpoint backend = e.backend();
      r = side.snat
              ? fullNat(f.bytes(), p, backend.address, backend.port, e.reply.dst, e.reply.dstPort)
              : dnat(f.bytes(), p, backend.address, backend.port);
      if (r != DropReason::kNone) return drop(r);
    }
    counters_->event(p.isIcmpError ? Event::kIcmpErrRev : Event::kSvcEstablished);
    return toSide(f, side.backendRole, side, false, e.backendId);
  }
  const FlowTuple toClient = e.original.reversed();
  if (!side.toClientReady) {
    side.toClient = translationDeltas(e.reply, toClient);
    side.toClientReady = true;
  }
  if (!applyTranslation(f.bytes(), p, toClient, side.toClient)) {
    r = reverseNat(f.bytes(), p, e.original);
    if (r != DropReason::kNone) return drop(r);
  }
  counters_->event(p.isIcmpError ? Event::kIcmpErrRev : Event::kRevNat);
  (void)from;
  return toSide(f, side.clientRole, side, true);
}

Verdict Worker::encapsulateTo(Frame& f, const ParsedPacket& p, const IpAddress& backend,
                              uint32_t backendId, const FlowSide& side, uint32_t hash) {
  const PipelineConfig& c = *shared_.config;
  const std::optional<IpAddress>& source = backend.isV6() ? c.nodeV6 : c.nodeV4;
  if (!source) return drop(DropReason::kNoNextHop);
  const DropReason r = encapsulate(f, p, *source, backend, hash, c.uplinkMtu);
  if (r != DropReason::kNone) return drop(r);
  counters_->event(Event::kDsr);
  return toSide(f, PortRole::kUplink, side, false, backendId);
}

Verdict Worker::newFlow(Frame& f, PortRole from, ParsedPacket& p, uint32_t hash, uint64_t nowNs,
                        bool reselect) {
  FlowPlan plan;
  const Verdict v = planFlow(f, from, p, nowNs, plan, false);
  if (!v.undecided()) return v;
  return commitFlow(f, from, p, hash, nowNs, reselect, plan);
}

Verdict Worker::planFlow(Frame& f, PortRole from, const ParsedPacket& p, uint64_t nowNs,
                         FlowPlan& plan, bool prefetch) {
  const ServiceTables& tables = *shared_.tables;
  const PipelineConfig& c = *shared_.config;
  const FlowTuple& t = p.tuple;
  const FrontendEntry* fe = tables.frontend(t.dst, t.dstPort, t.protocol);
  // ClusterIPs are not served from outside the cluster.
  if (fe == nullptr ||
      (from == PortRole::kUplink && fe->frontend.scope == FrontendScope::kClusterIp)) {
    return pass(f, from);
  }
  const ServiceEntry& svc = *fe->service;
  const Service& model = svc.source;
  // Inside the cluster (the kernel side: pods, the node) only ClusterIPs
  // follow a Local policy; a pod reaching a NodePort is balanced over all.
  const bool local =
      fe->frontend.scope == FrontendScope::kClusterIp
          ? model.internalPolicy == TrafficPolicy::kLocal
          : from == PortRole::kUplink && model.externalPolicy == TrafficPolicy::kLocal;
  const SelectionSet& set = svc.set(t.src.family(), local);
  if (set.empty()) {
    if (local && svc.hasBackends[t.src.isV6()]) return drop(DropReason::kNoLocalBackend);
    counters_->drop(DropReason::kNoBackend);
    const DropReason r = makeRefusal(f, p);
    if (r != DropReason::kNone) {
      if (r != DropReason::kNoBackend) counters_->drop(r);
      return {Action::kDrop, 0, r};
    }
    counters_->event(p.protocol == Protocol::kTcp ? Event::kRejectTcpRst : Event::kRejectIcmp);
    return replyBack(from);
  }

  uint32_t chosen = UINT32_MAX;
  if (svc.affinity) {
    if (auto id = shared_.affinity->lookup(t.src, svc.id, svc.affinityTimeoutNs, nowNs);
        id && set.hasMember(*id)) {
      for (uint32_t i : set.members) {
        if (svc.backends[i].id == *id) chosen = i;
      }
      if (chosen != UINT32_MAX) counters_->event(Event::kAffinityHit);
    }
  }
  if (chosen == UINT32_MAX) {
    const uint32_t h = selectionHash(t);
    chosen = svc.maglev ? set.maglev[set.maglevMod.of(h)] : set.members[set.membersMod.of(h)];
  }
  const BackendRef& be = svc.backends[chosen];
  if (svc.affinity) shared_.affinity->remember(t.src, svc.id, be.id, nowNs);
  if (set.terminatingFallback) counters_->event(Event::kTerminatingFallback);

  const bool hairpin = from == PortRole::kKernel && be.address == t.src;
  const PortRole backendRole = be.nodeLocal || hairpin ? PortRole::kKernel : PortRole::kUplink;
  // Direct server return: a VIP (LoadBalancer, externalIP) reached from
  // outside, a remote backend that answers from the VIP on the same port.
  const bool dsr = svc.dsr && from == PortRole::kUplink && backendRole == PortRole::kUplink &&
                   (fe->frontend.scope == FrontendScope::kLoadBalancer ||
                    fe->frontend.scope == FrontendScope::kExternalIp) &&
                   be.port == t.dstPort;
  std::optional<IpAddress> snatAddr;
  const PortRange* range = nullptr;
  if (dsr) {
    // no SNAT: replies go from the backend to the client directly
  } else if (backendRole == PortRole::kKernel) {
    if (from == PortRole::kKernel || !local) {
      snatAddr = t.src.isV6() ? c.kernelSnatV6 : c.kernelSnatV4;
      range = &c.kernelSnatPorts;
    }
  } else if (from == PortRole::kUplink) {
    snatAddr = t.src.isV6() ? c.nodeV6 : c.nodeV4;
    range = &c.nodeSnatPorts;
    if (!snatAddr) return drop(DropReason::kNoNextHop);
  }

  plan.frontend = fe;
  plan.backend = &be;
  plan.snatRange = range;
  plan.snatAddress = snatAddr;
  plan.backendRole = backendRole;
  plan.dsr = dsr;
  plan.hairpin = hairpin;
  if (prefetch) {
    // The reply tuple of the first SNAT candidate (the client's own port,
    // else the cursor's next), which is what the commit tries first.
    uint16_t port = t.srcPort;
    if (range != nullptr && !range->contains(port)) {
      const uint32_t span = uint32_t{range->last} - range->first + 1;
      port = static_cast<uint16_t>(range->first + (plannedCursor_++ % span));
    }
    plan.predictedPort = port;
    plan.replyHash =
        conntrack_.prefetch({be.address, snatAddr ? *snatAddr : t.src, be.port, port, t.protocol});
  }
  return kUndecided;
}

Verdict Worker::commitFlow(Frame& f, PortRole from, ParsedPacket& p, uint32_t hash,
                           uint64_t nowNs, bool reselect, const FlowPlan& plan) {
  const ServiceTables& tables = *shared_.tables;
  const FlowTuple& t = p.tuple;
  const ServiceEntry& svc = *plan.frontend->service;
  const BackendRef& be = *plan.backend;
  const std::optional<IpAddress>& snatAddr = plan.snatAddress;
  const PortRange* range = plan.snatRange;
  const PortRole backendRole = plan.backendRole;
  const bool dsr = plan.dsr;
  const bool hairpin = plan.hairpin;
  ConntrackFlow flow;
  flow.original = t;
  flow.nat.backend = {be.address, be.port};
  flow.backendId = be.id;
  const uint8_t tcpFlags = tcpFlagsOf(f, p);
  const uint32_t bytes = p.l3End - p.l3Offset;
  Scratch& scratch = *scratch_;
  const bool absent = !scratch.maybeInserted(hash);
  // `replyPort`: the reply tuple's last port (the SNAT port, or the
  // client's); the rest of it is the plan's, so the port alone says
  // whether it is the tuple planFlow() hashed.
  auto insert = [&](uint16_t replyPort) {
    const std::optional<uint32_t> replyHash =
        replyPort == plan.predictedPort ? plan.replyHash : std::nullopt;
    return absent ? conntrack_.insertAbsent(flow, hash, tcpFlags, bytes, nowNs, replyHash)
                  : conntrack_.insert(flow, tcpFlags, bytes, nowNs);
  };
  ConntrackInsertResult ins;
  if (!snatAddr) {
    ins = insert(t.srcPort);
  } else {
    // The client's own port first (as Linux masquerading keeps it when
    // free), then this worker's next eligible ports.
    ins.status = ConntrackInsertStatus::kReplyCollision;
    int inserts = 0;
    const uint32_t span = uint32_t{range->last} - range->first + 1;
    for (uint32_t k = 0; k <= kMaxSnatCandidates && inserts < kMaxSnatInserts; ++k) {
      uint16_t port = t.srcPort;
      if (k > 0) {
        port = static_cast<uint16_t>(range->first + (snatCursor_++ % span));
      } else if (!range->contains(port)) {
        continue;
      }
      const FlowTuple reply{be.address, *snatAddr, be.port, port, t.protocol};
      if (!shared_.steering->snatPortEligible(reply, index_)) continue;
      // A port that is a frontend of the SNAT address would turn the
      // backend's reply into a new request to that frontend.
      if (tables.frontend(*snatAddr, port, t.protocol) != nullptr) continue;
      flow.nat.snat = NatEndpoint{*snatAddr, port};
      ins = insert(port);
      ++inserts;
      if (ins.status != ConntrackInsertStatus::kReplyCollision) break;
    }
  }
  if (ins.status == ConntrackInsertStatus::kReplyCollision)
    return drop(DropReason::kSnatPortsExhausted);
  if (ins.status == ConntrackInsertStatus::kExists) {
    // An earlier frame of this burst opened the flow.
    return established(f, from, p, ins.match(), nowNs);
  }
  scratch.noteInserted(hash);
  FlowSide& side = sides_[conntrack_.indexOf(*ins.match().entry)];
  std::memcpy(side.clientMac.data(), f.data + 6, 6);
  side.clientRole = from;
  side.backendRole = backendRole;
  side.snat = flow.nat.snat.has_value();
  side.dsr = dsr;
  side.serviceId = svc.id;
  const ConntrackEntry& entry = *ins.match().entry;
  const FlowTuple toBackend = entry.reply.reversed();
  side.toBackend = translationDeltas(entry.original, toBackend);
  side.toClientReady = false;
  if (dsr) {
    if (!reselect) counters_->event(Event::kSvcNew);
    return encapsulateTo(f, p, be.address, be.id, side, hash);
  }

  DropReason r = DropReason::kNone;
  if (!applyTranslation(f.bytes(), p, toBackend, side.toBackend)) {
    r = flow.nat.snat ? fullNat(f.bytes(), p, be.address, be.port, flow.nat.snat->address,
                                flow.nat.snat->port)
                      : dnat(f.bytes(), p, be.address, be.port);
  }
  if (r != DropReason::kNone) {
    conntrack_.erase(t);
    return drop(r);
  }
  if (!reselect) counters_->event(Event::kSvcNew);
  if (hairpin) {
    counters_->event(Event::kHairpin);
  } else if (snatAddr) {
    counters_->event(Event::kSnat);
  }
  return toSide(f, backendRole, side, false, be.id);
}

}  // namespace sluice::dpdk
