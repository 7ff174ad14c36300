#include "dataplane/conntrack.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <string>

namespace sluice {

// The memory figures in conntrack.h (136 B per entry, 173-195 B per unit of
// capacity) assume this; update them if FlowTuple grows.
static_assert(sizeof(ConntrackEntry) == 136);

namespace {

// Linear probing stays short (expected ~2.5 probes for a hit, ~8.5 for a
// miss, mostly within one 64 B line of 8 slots) up to this load; the table
// is sized for it when full, then rounded up to a power of two.
constexpr size_t kMaxLoadNumerator = 3;
constexpr size_t kMaxLoadDenominator = 4;

constexpr uint8_t dirBit(ConntrackDirection dir) {
  return static_cast<uint8_t>(1u << static_cast<unsigned>(dir));
}
constexpr uint8_t kBothFins =
    dirBit(ConntrackDirection::kOriginal) | dirBit(ConntrackDirection::kReply);

// 32 bits of hashFlow() serve both as the home slot (low bits) and as the
// tag that skips most key compares (all bits). splitmix64's final avalanche
// makes the top half as good as any; 32 bits keep a slot at 8 B.
uint32_t hash32(const FlowTuple& tuple) { return static_cast<uint32_t>(hashFlow(tuple) >> 32); }

FlowTuple replyTupleOf(const FlowTuple& original, const ConntrackNat& nat) {
  // The backend answers from where the packet was sent to, towards where it
  // came from after SNAT.
  const NatEndpoint& to = nat.snat ? *nat.snat : NatEndpoint{original.src, original.srcPort};
  return {nat.backend.address, to.address, nat.backend.port, to.port, original.protocol};
}

ConntrackState initialState(Protocol protocol, uint8_t tcpFlags) {
  switch (protocol) {
    case Protocol::kTcp:
      // A first packet that is not a bare SYN means we joined mid-stream
      // (dataplane restart, flow moved here): carry on as established, as
      // Linux does with nf_conntrack_tcp_loose=1 (its default), so the
      // connection survives. advanceTcp() then applies any FIN/RST.
      return (tcpFlags & (kTcpFlagSyn | kTcpFlagAck)) == kTcpFlagSyn
                 ? ConntrackState::kTcpSynSent
                 : ConntrackState::kTcpEstablished;
    case Protocol::kUdp: return ConntrackState::kUdpUnreplied;
    case Protocol::kIcmp:
    case Protocol::kIcmpV6: return ConntrackState::kIcmp;
    case Protocol::kSctp: return ConntrackState::kOther;
  }
  return ConntrackState::kOther;
}

void advanceTcp(ConntrackEntry& e, ConntrackDirection dir, uint8_t tcpFlags) {
  if (tcpFlags & kTcpFlagRst) {
    e.state = ConntrackState::kTcpClose;
    return;
  }
  const bool closed =
      e.state == ConntrackState::kTcpTimeWait || e.state == ConntrackState::kTcpClose;
  if (closed) {
    // A bare SYN from the client on a closed tuple is the client reusing its
    // port for a new connection (Linux reopens TIME_WAIT the same way). It
    // keeps the NAT binding: the new connection goes to the same backend.
    if ((tcpFlags & (kTcpFlagSyn | kTcpFlagAck)) == kTcpFlagSyn &&
        dir == ConntrackDirection::kOriginal) {
      e.state = ConntrackState::kTcpSynSent;
      e.tcpFinSeen = 0;
      e.seenReply = false;
    }
    return;
  }
  if (tcpFlags & kTcpFlagFin) e.tcpFinSeen |= dirBit(dir);
  if (e.tcpFinSeen == kBothFins) {
    e.state = ConntrackState::kTcpTimeWait;
  } else if (e.tcpFinSeen != 0) {
    e.state = ConntrackState::kTcpFinWait;
  } else if (e.state == ConntrackState::kTcpSynSent && dir == ConntrackDirection::kReply) {
    // Any answer from the backend (normally SYN-ACK) establishes: sequence
    // numbers are not tracked, so SYN_RECV would add nothing here.
    e.state = ConntrackState::kTcpEstablished;
  }
}

void advance(ConntrackEntry& e, ConntrackDirection dir, uint8_t tcpFlags) {
  if (e.original.protocol == Protocol::kTcp) {
    advanceTcp(e, dir, tcpFlags);
  } else if (dir == ConntrackDirection::kReply && e.state == ConntrackState::kUdpUnreplied) {
    e.state = ConntrackState::kUdpReplied;
  }
  if (dir == ConntrackDirection::kReply) e.seenReply = true;
}

Result<void> validateTimeouts(const ConntrackTimeouts& t) {
  const std::pair<const char*, uint64_t> fields[] = {
      {"tcpSynSentNs", t.tcpSynSentNs},     {"tcpEstablishedNs", t.tcpEstablishedNs},
      {"tcpFinWaitNs", t.tcpFinWaitNs},     {"tcpTimeWaitNs", t.tcpTimeWaitNs},
      {"tcpCloseNs", t.tcpCloseNs},         {"udpUnrepliedNs", t.udpUnrepliedNs},
      {"udpRepliedNs", t.udpRepliedNs},     {"icmpNs", t.icmpNs},
      {"otherNs", t.otherNs},
  };
  for (const auto& [name, value] : fields) {
    if (value == 0) {
      return Error::invalid(std::string("conntrack: timeouts.") + name + ": must be > 0");
    }
  }
  return okResult();
}

}  // namespace

std::string_view toString(ConntrackState state) {
  switch (state) {
    case ConntrackState::kTcpSynSent: return "SYN_SENT";
    case ConntrackState::kTcpEstablished: return "ESTABLISHED";
    case ConntrackState::kTcpFinWait: return "FIN_WAIT";
    case ConntrackState::kTcpTimeWait: return "TIME_WAIT";
    case ConntrackState::kTcpClose: return "CLOSE";
    case ConntrackState::kUdpUnreplied: return "UNREPLIED";
    case ConntrackState::kUdpReplied: return "REPLIED";
    case ConntrackState::kIcmp: return "ICMP";
    case ConntrackState::kOther: return "OTHER";
  }
  return "unknown";
}

std::optional<NatEndpoint> ConntrackEntry::snat() const {
  if (reply.dst == original.src && reply.dstPort == original.srcPort) return std::nullopt;
  return NatEndpoint{reply.dst, reply.dstPort};
}

Result<Conntrack> Conntrack::create(const ConntrackConfig& config) {
  if (config.capacity == 0 || config.capacity > kMaxCapacity) {
    return Error::invalid("conntrack: capacity " + std::to_string(config.capacity) +
                          ": must be 1-" + std::to_string(kMaxCapacity));
  }
  if (auto ok = validateTimeouts(config.timeouts); !ok) return ok.error();
  const size_t keys = size_t{2} * config.capacity;
  const size_t minSlots = (keys * kMaxLoadDenominator + kMaxLoadNumerator - 1) / kMaxLoadNumerator;
  return Conntrack(config, std::bit_ceil(minSlots));
}

Conntrack::Conntrack(const ConntrackConfig& config, size_t slotCount)
    : timeouts_(config.timeouts),
      entries_(config.capacity),
      nodes_(config.capacity),
      slots_(slotCount, Slot{kEmptyRef, 0}),
      slotMask_(slotCount - 1) {
  const ConntrackTimeouts& t = timeouts_;
  auto at = [this](ConntrackState s) -> uint64_t& {
    return stateTimeoutNs_[static_cast<size_t>(s)];
  };
  at(ConntrackState::kTcpSynSent) = t.tcpSynSentNs;
  at(ConntrackState::kTcpEstablished) = t.tcpEstablishedNs;
  at(ConntrackState::kTcpFinWait) = t.tcpFinWaitNs;
  at(ConntrackState::kTcpTimeWait) = t.tcpTimeWaitNs;
  at(ConntrackState::kTcpClose) = t.tcpCloseNs;
  at(ConntrackState::kUdpUnreplied) = t.udpUnrepliedNs;
  at(ConntrackState::kUdpReplied) = t.udpRepliedNs;
  at(ConntrackState::kIcmp) = t.icmpNs;
  at(ConntrackState::kOther) = t.otherNs;
  // Free list in index order, so a filling table walks the pool sequentially.
  for (uint32_t i = 0; i < config.capacity; ++i) {
    nodes_[i] = Node{kFreeMark, i + 1 < config.capacity ? i + 1 : kNil, {0, 0}};
  }
  freeHead_ = 0;
}

uint64_t Conntrack::timeoutNs(const ConntrackEntry& entry) const {
  // Established but never answered: picked up mid-stream from one side only.
  if (entry.state == ConntrackState::kTcpEstablished && !entry.seenReply) {
    return timeouts_.tcpSynSentNs;
  }
  return stateTimeoutNs_[static_cast<size_t>(entry.state)];
}

bool Conntrack::isExpired(const ConntrackEntry& entry, uint64_t nowNs) const {
  // Expired from lastSeen + timeout on (Linux nf_ct_is_expired is the same);
  // a clock behind lastSeen (caller bug) never expires anything.
  return nowNs >= entry.lastSeenNs && nowNs - entry.lastSeenNs >= timeoutNs(entry);
}

uint64_t Conntrack::expiresAtNs(const ConntrackEntry& entry) const {
  return entry.lastSeenNs + timeoutNs(entry);
}

size_t Conntrack::findSlot(const FlowTuple& tuple, uint32_t hash) const {
  for (size_t i = hash & slotMask_;; i = (i + 1) & slotMask_) {
    const Slot& slot = slots_[i];
    if (slot.ref == kEmptyRef) return SIZE_MAX;
    if (slot.hash != hash) continue;
    const ConntrackEntry& e = entries_[slot.ref >> 1];
    if ((slot.ref & 1 ? e.reply : e.original) == tuple) return i;
  }
}

void Conntrack::insertSlot(uint32_t hash, uint32_t ref) {
  size_t i = hash & slotMask_;
  while (slots_[i].ref != kEmptyRef) i = (i + 1) & slotMask_;
  slots_[i] = Slot{ref, hash};
}

void Conntrack::eraseSlot(uint32_t hash, uint32_t ref) {
  size_t hole = hash & slotMask_;
  while (slots_[hole].ref != ref) {
    assert(slots_[hole].ref != kEmptyRef);
    hole = (hole + 1) & slotMask_;
  }
  // Backward-shift deletion: pull later members of the probe run into the
  // hole when their home allows it, so no tombstones accumulate under churn.
  for (size_t j = (hole + 1) & slotMask_; slots_[j].ref != kEmptyRef; j = (j + 1) & slotMask_) {
    const size_t home = slots_[j].hash & slotMask_;
    if (((j - home) & slotMask_) >= ((j - hole) & slotMask_)) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole].ref = kEmptyRef;
}

void Conntrack::unlink(uint32_t index) {
  Node& n = nodes_[index];
  (n.prev == kNil ? lruHead_ : nodes_[n.prev].next) = n.next;
  (n.next == kNil ? lruTail_ : nodes_[n.next].prev) = n.prev;
}

void Conntrack::linkFront(uint32_t index) {
  Node& n = nodes_[index];
  n.prev = kNil;
  n.next = lruHead_;
  (lruHead_ == kNil ? lruTail_ : nodes_[lruHead_].prev) = index;
  lruHead_ = index;
}

void Conntrack::touch(uint32_t index) {
  if (lruHead_ == index) return;
  unlink(index);
  linkFront(index);
}

void Conntrack::remove(uint32_t index) {
  Node& n = nodes_[index];
  assert(n.prev != kFreeMark);
  eraseSlot(n.hash[0], index << 1);
  eraseSlot(n.hash[1], (index << 1) | 1);
  unlink(index);
  n.prev = kFreeMark;
  n.next = freeHead_;
  freeHead_ = index;
  --size_;
}

ConntrackInsertResult Conntrack::insert(const ConntrackFlow& flow, uint8_t tcpFlags,
                                        uint32_t bytes, uint64_t nowNs) {
  const FlowTuple reply = replyTupleOf(flow.original, flow.nat);
  if (reply == flow.original) {
    ++stats_.insertCollisions;
    return {ConntrackInsertStatus::kReplyCollision, {}};
  }
  const uint32_t originalHash = hash32(flow.original);
  const uint32_t replyHash = hash32(reply);

  // Either tuple may already key a live entry; an expired one is absent and
  // is reclaimed now so its tuples are free.
  if (size_t s = findSlot(flow.original, originalHash); s != SIZE_MAX) {
    const uint32_t ref = slots_[s].ref;
    if (!isExpired(entries_[ref >> 1], nowNs)) {
      ++stats_.insertExisting;
      touch(ref >> 1);
      return {ConntrackInsertStatus::kExists,
              {&entries_[ref >> 1], static_cast<ConntrackDirection>(ref & 1)}};
    }
    remove(ref >> 1);
    ++stats_.expirations;
  }
  if (size_t s = findSlot(reply, replyHash); s != SIZE_MAX) {
    const uint32_t index = slots_[s].ref >> 1;
    if (!isExpired(entries_[index], nowNs)) {
      ++stats_.insertCollisions;
      return {ConntrackInsertStatus::kReplyCollision, {}};
    }
    remove(index);
    ++stats_.expirations;
  }

  if (freeHead_ == kNil) {
    const uint32_t victim = lruTail_;
    ++(isExpired(entries_[victim], nowNs) ? stats_.expirations : stats_.evictions);
    remove(victim);
  }
  const uint32_t index = freeHead_;
  Node& n = nodes_[index];
  freeHead_ = n.next;
  n.hash = {originalHash, replyHash};
  linkFront(index);

  ConntrackEntry& e = entries_[index];
  e.original = flow.original;
  e.reply = reply;
  e.lastSeenNs = nowNs;
  e.packets = {1, 0};
  e.bytes = {bytes, 0};
  e.backendId = flow.backendId;
  e.serviceId = flow.serviceId;
  e.state = initialState(flow.original.protocol, tcpFlags);
  e.seenReply = false;
  e.tcpFinSeen = 0;
  advance(e, ConntrackDirection::kOriginal, tcpFlags);

  insertSlot(originalHash, index << 1);
  insertSlot(replyHash, (index << 1) | 1);
  ++size_;
  ++stats_.inserts;
  return {ConntrackInsertStatus::kInserted, {&e, ConntrackDirection::kOriginal}};
}

ConntrackMatch Conntrack::lookup(const FlowTuple& tuple, uint64_t nowNs) {
  return lookupHashed(tuple, hash32(tuple), nowNs);
}

size_t Conntrack::lookupBurst(std::span<const FlowTuple> tuples, std::span<ConntrackMatch> out,
                              uint64_t nowNs) {
  assert(tuples.size() <= out.size());
  // Bursts are processed in chunks that fit on the stack; 64 covers DPDK's
  // usual 32-packet bursts in one pass.
  constexpr size_t kChunk = 64;
  std::array<uint32_t, kChunk> hashes;
  size_t hits = 0;
  for (size_t base = 0; base < tuples.size(); base += kChunk) {
    const size_t n = std::min(kChunk, tuples.size() - base);
    // Pass 1: hash everything and pull in each home slot.
    for (size_t i = 0; i < n; ++i) {
      hashes[i] = hash32(tuples[base + i]);
      __builtin_prefetch(&slots_[hashes[i] & slotMask_]);
    }
    // Pass 2: the first slot whose tag matches names the likely entry (a
    // wrong guess only wastes a prefetch); pull in the entry and its links.
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = hashes[i] & slotMask_; slots_[j].ref != kEmptyRef; j = (j + 1) & slotMask_) {
        if (slots_[j].hash == hashes[i]) {
          // An entry spans up to three 64 B lines (136 B, 8 B aligned).
          const auto* e = reinterpret_cast<const char*>(&entries_[slots_[j].ref >> 1]);
          __builtin_prefetch(e);
          __builtin_prefetch(e + 64);
          __builtin_prefetch(e + sizeof(ConntrackEntry) - 1);
          __builtin_prefetch(&nodes_[slots_[j].ref >> 1]);
          break;
        }
      }
    }
    // Pass 3: the real lookups, in order, so the effects (LRU moves, removal
    // of expired entries, stats) are exactly those of lookup() calls.
    for (size_t i = 0; i < n; ++i) {
      out[base + i] = lookupHashed(tuples[base + i], hashes[i], nowNs);
      hits += static_cast<bool>(out[base + i]);
    }
  }
  return hits;
}

ConntrackMatch Conntrack::lookupHashed(const FlowTuple& tuple, uint32_t hash, uint64_t nowNs) {
  const size_t s = findSlot(tuple, hash);
  if (s == SIZE_MAX) {
    ++stats_.lookupMisses;
    return {};
  }
  const uint32_t ref = slots_[s].ref;
  const uint32_t index = ref >> 1;
  if (isExpired(entries_[index], nowNs)) {
    remove(index);
    ++stats_.expirations;
    ++stats_.lookupMisses;
    return {};
  }
  touch(index);
  ++stats_.lookupHits;
  return {&entries_[index], static_cast<ConntrackDirection>(ref & 1)};
}

ConntrackMatch Conntrack::peek(const FlowTuple& tuple, uint64_t nowNs) const {
  const size_t s = findSlot(tuple, hash32(tuple));
  if (s == SIZE_MAX) return {};
  const uint32_t ref = slots_[s].ref;
  const ConntrackEntry& e = entries_[ref >> 1];
  if (isExpired(e, nowNs)) return {};
  return {&e, static_cast<ConntrackDirection>(ref & 1)};
}

ConntrackState Conntrack::update(const ConntrackMatch& match, uint8_t tcpFlags, uint32_t bytes,
                                 uint64_t nowNs) {
  assert(match.entry >= entries_.data() && match.entry < entries_.data() + entries_.size());
  const auto index = static_cast<size_t>(match.entry - entries_.data());
  assert(nodes_[index].prev != kFreeMark);
  ConntrackEntry& e = entries_[index];
  const auto dir = static_cast<size_t>(match.direction);
  ++e.packets[dir];
  e.bytes[dir] += bytes;
  // Never move time backwards: callers on different clocks must not shorten
  // an entry's life.
  if (nowNs > e.lastSeenNs) e.lastSeenNs = nowNs;
  advance(e, match.direction, tcpFlags);
  return e.state;
}

bool Conntrack::erase(const FlowTuple& tuple) {
  const size_t s = findSlot(tuple, hash32(tuple));
  if (s == SIZE_MAX) return false;
  remove(slots_[s].ref >> 1);
  ++stats_.erased;
  return true;
}

size_t Conntrack::eraseByBackend(uint32_t backendId) {
  size_t removed = 0;
  for (uint32_t i = 0; i < entries_.size() && size_ > 0; ++i) {
    if (nodes_[i].prev != kFreeMark && entries_[i].backendId == backendId) {
      remove(i);
      ++removed;
    }
  }
  stats_.erased += removed;
  return removed;
}

size_t Conntrack::expire(uint64_t nowNs, size_t maxToScan) {
  const auto capacity = static_cast<uint32_t>(entries_.size());
  const size_t toScan = maxToScan < capacity ? maxToScan : capacity;
  size_t removed = 0;
  for (size_t n = 0; n < toScan; ++n) {
    const uint32_t i = sweepCursor_;
    sweepCursor_ = i + 1 == capacity ? 0 : i + 1;
    if (nodes_[i].prev != kFreeMark && isExpired(entries_[i], nowNs)) {
      remove(i);
      ++removed;
    }
  }
  stats_.expirations += removed;
  return removed;
}

void Conntrack::forEach(uint64_t nowNs,
                        const std::function<void(const ConntrackEntry&)>& fn) const {
  for (uint32_t i = lruHead_; i != kNil; i = nodes_[i].next) {
    if (!isExpired(entries_[i], nowNs)) fn(entries_[i]);
  }
}

ConntrackStats Conntrack::stats() const {
  ConntrackStats s = stats_;
  s.entries = size_;
  return s;
}

size_t Conntrack::memoryBytes() const {
  return entries_.capacity() * sizeof(ConntrackEntry) + nodes_.capacity() * sizeof(Node) +
         slots_.capacity() * sizeof(Slot);
}

}  // namespace sluice
