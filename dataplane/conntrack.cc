#include "dataplane/conntrack.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cerrno>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <sys/mman.h>

#include "dataplane/conntrack_index.h"

namespace sluice {

using conntrack_index::hash32;
using conntrack_index::matchMask8;
using conntrack_index::tagOf;

// The memory figures in conntrack.h (128 B per entry, 165-187 B per unit of
// capacity) assume this, and a hit reads two lines only because the pool is
// 64 B aligned (layoutFor) and entries are two lines each; update them if
// FlowTuple grows.
static_assert(sizeof(ConntrackEntry) == 128);

namespace {

// Two-choice buckets of 8 with one cuckoo step almost never overflow below
// this load (an overflow evicts, see insertRefEvicting); the index is sized
// for it when the table is full, then rounded up to a power of two.
constexpr size_t kMaxLoadNumerator = 3;
constexpr size_t kMaxLoadDenominator = 4;
// At least two buckets, so that a tuple's two buckets differ.
constexpr size_t kMinSlots = 16;

constexpr uint8_t dirBit(ConntrackDirection dir) {
  return static_cast<uint8_t>(1u << static_cast<unsigned>(dir));
}
constexpr uint8_t kBothFins =
    dirBit(ConntrackDirection::kOriginal) | dirBit(ConntrackDirection::kReply);

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

// The region's first 64 bytes: what adopt() checks before trusting the rest.
// Only identity lives here; the LRU/free-list heads are rebuilt on adopt().
struct Conntrack::RegionHeader {
  uint64_t magic;
  uint32_t layoutVersion;
  uint32_t capacity;
  uint64_t slotCount;
  uint32_t entryBytes;
  uint32_t nodeBytes;
  uint64_t reserved[4];
};

namespace {
constexpr uint64_t kRegionMagic = 0x6b6374656369756cULL;  // "luicetck" little-endian: sluice ct
// Bump whenever ConntrackEntry or Node change meaning (not only size). The
// index is not part of it: adopt() rebuilds the index from the pool and
// trusts nothing in it (the index became two-choice buckets, where it was
// linear probing, without a bump: flows stay across that upgrade).
// Version 2: entries of 128 B (the service id left them for the caller's
// parallel array; useMark took a padding byte). A process of version 1
// leaves a state file this one starts over from: its flows are lost once.
constexpr uint32_t kLayoutVersion = 2;

constexpr size_t alignUp(size_t n, size_t a) { return (n + a - 1) / a * a; }

size_t slotCountFor(uint32_t capacity) {
  const size_t keys = size_t{2} * capacity;
  const size_t minSlots = (keys * kMaxLoadDenominator + kMaxLoadNumerator - 1) / kMaxLoadNumerator;
  return std::bit_ceil(std::max(minSlots, kMinSlots));
}

Result<void> validateConfig(const ConntrackConfig& config) {
  if (config.capacity == 0 || config.capacity > Conntrack::kMaxCapacity) {
    return Error::invalid("conntrack: capacity " + std::to_string(config.capacity) +
                          ": must be 1-" + std::to_string(Conntrack::kMaxCapacity));
  }
  return validateTimeouts(config.timeouts);
}
}  // namespace

// Offsets of the arrays in a region, each 64-byte aligned.
struct Conntrack::Layout {
  size_t entries;
  size_t nodes;
  size_t slots;
  size_t slotCount;
  size_t total;
};

Conntrack::Layout Conntrack::layoutFor(uint32_t capacity) {
  static_assert(sizeof(RegionHeader) == kRegionAlignment);
  Layout l{};
  l.slotCount = slotCountFor(capacity);
  l.entries = sizeof(RegionHeader);
  l.nodes = alignUp(l.entries + size_t{capacity} * sizeof(ConntrackEntry), kRegionAlignment);
  l.slots = alignUp(l.nodes + size_t{capacity} * sizeof(Node), kRegionAlignment);
  l.total = alignUp(l.slots + l.slotCount / kBucketSlots * sizeof(Bucket), kRegionAlignment);
  return l;
}

size_t Conntrack::regionBytes(uint32_t capacity) { return layoutFor(capacity).total; }

void Conntrack::Unmap::operator()(std::byte* p) const { ::munmap(p, bytes); }

Result<Conntrack> Conntrack::create(const ConntrackConfig& config) {
  if (auto ok = validateConfig(config); !ok) return ok.error();
  const size_t bytes = regionBytes(config.capacity);
  // Large tables start on a 2 MB boundary, so that every 2 MB of them can
  // be one huge page; the slack before and after is unmapped.
  constexpr size_t kHuge = size_t{2} << 20;
  const bool huge = bytes >= kHuge;
  const size_t mapped = huge ? bytes + kHuge : bytes;
  void* p = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return Error::internal("conntrack: mapping " + std::to_string(bytes) + " bytes: " +
                           std::strerror(errno));
  }
  auto* region = static_cast<std::byte*>(p);
  size_t length = mapped;
  if (huge) {
    const auto addr = reinterpret_cast<uintptr_t>(p);
    const size_t head = alignUp(addr, kHuge) - addr;
    if (head > 0) ::munmap(p, head);
    region += head;
    const size_t tail = mapped - head - bytes;
    if (tail > 0) ::munmap(region + bytes, tail);
    length = bytes;
    // Best effort: without THP (or with it off) the table works on 4 KB pages.
    ::madvise(region, bytes, MADV_HUGEPAGE);
  }
  Conntrack ct(config, region, config.capacity);
  ct.owned_ = std::unique_ptr<std::byte, Unmap>(region, Unmap{length});
  ct.formatEmpty();
  return ct;
}

Result<Conntrack> Conntrack::createIn(std::span<std::byte> region, const ConntrackConfig& config) {
  if (auto ok = validateConfig(config); !ok) return ok.error();
  const size_t need = regionBytes(config.capacity);
  if (region.size() < need) {
    return Error::invalid("conntrack: region of " + std::to_string(region.size()) +
                          " bytes, capacity " + std::to_string(config.capacity) + " needs " +
                          std::to_string(need));
  }
  if (reinterpret_cast<uintptr_t>(region.data()) % kRegionAlignment != 0) {
    return Error::invalid("conntrack: region not 64-byte aligned");
  }
  Conntrack ct(config, region.data(), config.capacity);
  ct.formatEmpty();
  return ct;
}

Result<Conntrack> Conntrack::adopt(std::span<std::byte> region, const ConntrackConfig& config) {
  if (auto ok = validateConfig(config); !ok) return ok.error();
  const Layout l = layoutFor(config.capacity);
  if (region.size() < l.total || reinterpret_cast<uintptr_t>(region.data()) % kRegionAlignment != 0) {
    return Error::invalid("conntrack: region too small or misaligned for capacity " +
                          std::to_string(config.capacity));
  }
  RegionHeader h;
  std::memcpy(&h, region.data(), sizeof h);
  if (h.magic != kRegionMagic || h.layoutVersion != kLayoutVersion) {
    return Error{ErrorCode::kFailedPrecondition,
                 "conntrack: region holds no table of this layout (version " +
                     std::to_string(h.magic == kRegionMagic ? h.layoutVersion : 0) +
                     ", this binary writes " + std::to_string(kLayoutVersion) + ")"};
  }
  if (h.capacity != config.capacity || h.slotCount != l.slotCount ||
      h.entryBytes != sizeof(ConntrackEntry) || h.nodeBytes != sizeof(Node)) {
    return Error{ErrorCode::kFailedPrecondition,
                 "conntrack: region holds a table of capacity " + std::to_string(h.capacity) +
                     ", asked for " + std::to_string(config.capacity)};
  }
  Conntrack ct(config, region.data(), config.capacity);
  ct.rebuildFromPool();
  return ct;
}

Conntrack::Conntrack(const ConntrackConfig& config, std::byte* region, uint32_t capacity)
    : timeouts_(config.timeouts), capacity_(capacity) {
  const Layout l = layoutFor(capacity);
  entries_ = reinterpret_cast<ConntrackEntry*>(region + l.entries);
  nodes_ = reinterpret_cast<Node*>(region + l.nodes);
  buckets_ = reinterpret_cast<Bucket*>(region + l.slots);
  bucketMask_ = l.slotCount / kBucketSlots - 1;
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
}

void Conntrack::formatEmpty() {
  const Layout l = layoutFor(capacity_);
  std::byte* region = reinterpret_cast<std::byte*>(entries_) - l.entries;
  const RegionHeader h{kRegionMagic, kLayoutVersion, capacity_, l.slotCount,
                       sizeof(ConntrackEntry), sizeof(Node), {}};
  std::memcpy(region, &h, sizeof h);
  std::uninitialized_default_construct_n(entries_, capacity_);
  // Free list in index order, so a filling table walks the pool sequentially.
  for (uint32_t i = 0; i < capacity_; ++i) {
    nodes_[i] = Node{kFreeMark, i + 1 < capacity_ ? i + 1 : kNil, {0, 0}};
  }
  clearIndex();
  freeHead_ = 0;
}

size_t Conntrack::rebuildFromPool() {
  clearIndex();
  std::vector<uint32_t> live;
  for (uint32_t i = 0; i < capacity_; ++i) {
    if (nodes_[i].prev != kFreeMark) live.push_back(i);
  }
  // Most recently seen first: that order is the LRU order rebuilt below.
  std::stable_sort(live.begin(), live.end(), [this](uint32_t a, uint32_t b) {
    return entries_[a].lastSeenNs > entries_[b].lastSeenNs;
  });
  lruHead_ = lruTail_ = kNil;
  size_ = 0;
  size_t dropped = 0;
  std::vector<bool> kept(capacity_, false);
  // Walked least recent first, each linked at the front, so the most
  // recent ends at the head; a duplicate keeps the more recent entry.
  for (auto it = live.rbegin(); it != live.rend(); ++it) {
    const uint32_t i = *it;
    const ConntrackEntry& e = entries_[i];
    // A state outside the enum would index stateTimeoutNs_ out of bounds:
    // only a torn write leaves one.
    if (e.original == e.reply || static_cast<size_t>(e.state) >= kConntrackStateCount) {
      ++dropped;
      continue;
    }
    const uint32_t oh = hash32(e.original), rh = hash32(e.reply);
    for (;;) {
      uint32_t ref = findRef(e.original, oh);
      if (ref == kEmptyRef) ref = findRef(e.reply, rh);
      if (ref == kEmptyRef) break;
      const uint32_t older = ref >> 1;
      remove(older);
      kept[older] = false;
      ++dropped;
    }
    // Moving a resident to its other bucket reads its hash here.
    nodes_[i].hash = {oh, rh};
    // An index with no room left for this entry's tuples (never seen at
    // the sizing load) drops it rather than an entry already kept.
    if (!insertRef(oh, i << 1)) {
      ++dropped;
      continue;
    }
    if (!insertRef(rh, (i << 1) | 1)) {
      eraseRef(oh, i << 1);
      ++dropped;
      continue;
    }
    linkFront(i);
    entries_[i].useMark = batch_;  // live, not used since
    ++size_;
    kept[i] = true;
  }
  freeHead_ = kNil;
  for (uint32_t i = capacity_; i-- > 0;) {
    if (kept[i]) continue;
    nodes_[i] = Node{kFreeMark, freeHead_, {0, 0}};
    entries_[i].useMark = 0;
    freeHead_ = i;
  }
  sweepCursor_ = 0;
  return dropped;
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

uint32_t Conntrack::pickVictim(uint64_t nowNs) {
  for (uint32_t chance = 0; chance < kMaxSecondChances; ++chance) {
    const uint32_t v = lruTail_;
    ConntrackEntry& e = entries_[v];
    if ((e.useMark & kUsedBit) == 0 || isExpired(e, nowNs)) return v;
    e.useMark &= ~kUsedBit;
    unlink(v);
    linkFront(v);
  }
  return lruTail_;
}

inline void Conntrack::evict(uint32_t index, uint64_t nowNs) {
  ++(isExpired(entries_[index], nowNs) ? stats_.expirations : stats_.evictions);
  if ((entries_[index].useMark & kBatchBits) == batch_) evictedFromBatch_ = true;
  remove(index);
}

void Conntrack::remove(uint32_t index) {
  Node& n = nodes_[index];
  assert(n.prev != kFreeMark);
  eraseRef(n.hash[0], index << 1);
  eraseRef(n.hash[1], (index << 1) | 1);
  unlink(index);
  n.prev = kFreeMark;
  n.next = freeHead_;
  freeHead_ = index;
  entries_[index].useMark = 0;
  --size_;
}

void Conntrack::insertRefEvicting(uint32_t hash, uint32_t ref, uint64_t nowNs) {
  while (!insertRef(hash, ref)) {
    const Bucket& k = buckets_[primaryBucket(hash)];
    uint32_t victim = kNil;
    for (const uint32_t r : k.ref) {
      if ((r >> 1) != (ref >> 1)) {
        victim = r >> 1;
        break;
      }
    }
    assert(victim != kNil);  // 8 full slots, at most 2 of them this entry's
    evict(victim, nowNs);
  }
}

ConntrackInsertResult Conntrack::insert(const ConntrackFlow& flow, uint8_t tcpFlags,
                                        uint32_t bytes, uint64_t nowNs) {
  const FlowTuple reply = replyTupleOf(flow.original, flow.nat);
  if (reply == flow.original) {
    ++stats_.insertCollisions;
    return {ConntrackInsertStatus::kReplyCollision};
  }
  const uint32_t originalHash = hash32(flow.original);

  // Either tuple may already key a live entry; an expired one is absent and
  // is reclaimed now so its tuples are free.
  if (const uint32_t ref = findRef(flow.original, originalHash); ref != kEmptyRef) {
    if (!isExpired(entries_[ref >> 1], nowNs)) {
      ++stats_.insertExisting;
      markUsed(ref >> 1);
      return ConntrackInsertResult::of(
          ConntrackInsertStatus::kExists,
          {&entries_[ref >> 1], static_cast<ConntrackDirection>(ref & 1), originalHash});
    }
    remove(ref >> 1);
    ++stats_.expirations;
  }
  return insertNew(flow, reply, originalHash, hash32(reply), tcpFlags, bytes, nowNs);
}

ConntrackInsertResult Conntrack::insertAbsent(const ConntrackFlow& flow, uint32_t originalHash,
                                              uint8_t tcpFlags, uint32_t bytes, uint64_t nowNs,
                                              std::optional<uint32_t> replyHash) {
  // The precondition is not asserted: checking it costs what this call
  // saves (tests/dpdk's repeated-flow burst test catches a caller that
  // breaks it: two entries for one flow).
  const FlowTuple reply = replyTupleOf(flow.original, flow.nat);
  if (reply == flow.original) {
    ++stats_.insertCollisions;
    return {ConntrackInsertStatus::kReplyCollision};
  }
  // Nor is `replyHash` checked (asserts are on in the test build, where
  // pipeline_bench runs too): a wrong one files the reply tuple under the
  // wrong buckets, and the planned packet cases' replies then miss.
  return insertNew(flow, reply, originalHash, replyHash ? *replyHash : hash32(reply), tcpFlags,
                   bytes, nowNs);
}

void Conntrack::prefetchVictims(size_t inserts) const {
  if (freeHead_ != kNil) return;  // room left: the first inserts evict nothing
  uint32_t v = lruTail_;
  for (size_t i = 0; i < inserts && v != kNil; ++i) {
    const Node& n = nodes_[v];
    // Most refs sit in their primary bucket.
    __builtin_prefetch(&buckets_[primaryBucket(n.hash[0])]);
    __builtin_prefetch(&buckets_[primaryBucket(n.hash[1])]);
    // isExpired() reads lastSeenNs and state, past the two tuples.
    __builtin_prefetch(reinterpret_cast<const char*>(&entries_[v]) + offsetof(ConntrackEntry, lastSeenNs));
    v = n.prev;
  }
}

ConntrackInsertResult Conntrack::insertNew(const ConntrackFlow& flow, const FlowTuple& reply,
                                           uint32_t originalHash, uint32_t replyHash,
                                           uint8_t tcpFlags, uint32_t bytes, uint64_t nowNs) {
  if (const uint32_t ref = findRef(reply, replyHash); ref != kEmptyRef) {
    const uint32_t index = ref >> 1;
    if (!isExpired(entries_[index], nowNs)) {
      ++stats_.insertCollisions;
      return {ConntrackInsertStatus::kReplyCollision};
    }
    remove(index);
    ++stats_.expirations;
  }

  if (freeHead_ == kNil) {
    // An unused tail (nearly always, with new flows arriving) is the victim.
    const uint32_t tail = lruTail_;
    evict((entries_[tail].useMark & kUsedBit) == 0 ? tail : pickVictim(nowNs), nowNs);
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
  e.state = initialState(flow.original.protocol, tcpFlags);
  e.seenReply = false;
  e.tcpFinSeen = 0;
  e.useMark = batch_;
  advance(e, ConntrackDirection::kOriginal, tcpFlags);

  insertRefEvicting(originalHash, index << 1, nowNs);
  insertRefEvicting(replyHash, (index << 1) | 1, nowNs);
  ++size_;
  ++stats_.inserts;
  return ConntrackInsertResult::of(ConntrackInsertStatus::kInserted,
                                   {&e, ConntrackDirection::kOriginal, originalHash});
}

ConntrackMatch Conntrack::lookup(const FlowTuple& tuple, uint64_t nowNs) {
  return lookupHashed(tuple, hash32(tuple), nowNs);
}

size_t Conntrack::lookupBurst(std::span<const FlowTuple> tuples, std::span<ConntrackMatch> out,
                              uint64_t nowNs, const void* parallel, size_t parallelStride) {
  assert(tuples.size() <= out.size());
  // A new batch: what it finds is marked with it (see evictedFromBatch()).
  batch_ = batch_ == kBatchBits ? 1 : batch_ + 1;
  evictedFromBatch_ = false;
  // Bursts are processed in chunks that fit on the stack; 64 covers DPDK's
  // usual 32-packet bursts in one pass.
  constexpr size_t kChunk = 64;
  std::array<uint32_t, kChunk> hashes;
  // Pass 2's guess per tuple: the ref of the first slot whose tag matched.
  std::array<uint32_t, kChunk> guesses;
  size_t hits = 0;
  for (size_t base = 0; base < tuples.size(); base += kChunk) {
    const size_t n = std::min(kChunk, tuples.size() - base);
    // Pass 1: hash everything and pull in each tuple's primary bucket.
    for (size_t i = 0; i < n; ++i) {
      hashes[i] = hash32(tuples[base + i]);
      __builtin_prefetch(&buckets_[primaryBucket(hashes[i])]);
    }
    // Pass 2: the first slot whose tag matches names the likely entry (a
    // wrong guess only wastes a prefetch); pull in the entry.
    for (size_t i = 0; i < n; ++i) {
      const uint32_t h = hashes[i];
      guesses[i] = kEmptyRef;
      const Bucket& k = buckets_[primaryBucket(h)];
      const uint32_t m = matchMask8(k.tag, tagOf(h));
      if (m == 0) {
        // Not in its primary bucket: a first packet, or (when the bucket
        // has overflowed refs) maybe in its secondary, which pass 3 reads.
        if (k.overflow != 0) __builtin_prefetch(&buckets_[secondaryBucket(h)]);
        continue;
      }
      const uint32_t ref = k.ref[static_cast<size_t>(std::countr_zero(m))];
      if (ref == kEmptyRef) continue;
      guesses[i] = ref;
      // Two 64 B lines; a hit reads both, and no link: it moves nothing.
      const auto* e = reinterpret_cast<const char*>(&entries_[ref >> 1]);
      __builtin_prefetch(e);
      __builtin_prefetch(e + 64);
      if (parallel != nullptr) {
        __builtin_prefetch(static_cast<const char*>(parallel) + size_t{ref >> 1} * parallelStride);
      }
    }
    // Pass 3: the real lookups, in order, so the effects (use marks, removal
    // of expired entries, stats) are exactly those of lookup() calls. A
    // guess is only a shortcut: it is used when its entry is still live
    // (an earlier lookup of the burst may have removed an expired entry;
    // none inserts) and its tuple is the one looked up; otherwise the index
    // is searched.
    for (size_t i = 0; i < n; ++i) {
      out[base + i] = lookupHashed(tuples[base + i], hashes[i], nowNs, guesses[i]);
      hits += static_cast<bool>(out[base + i]);
    }
  }
  return hits;
}

ConntrackMatch Conntrack::lookupHashed(const FlowTuple& tuple, uint32_t hash, uint64_t nowNs,
                                       uint32_t guess) {
  uint32_t ref = kEmptyRef;
  // A live entry whose tuple is this one is the only such entry (its own
  // mark says it is live: no read of its links).
  if (guess != kEmptyRef) {
    const ConntrackEntry& e = entries_[guess >> 1];
    if ((e.useMark & kBatchBits) != 0 && (guess & 1 ? e.reply : e.original) == tuple) ref = guess;
  }
  if (ref == kEmptyRef) ref = findRef(tuple, hash);
  if (ref == kEmptyRef) {
    ++stats_.lookupMisses;
    return {nullptr, ConntrackDirection::kOriginal, hash};
  }
  const uint32_t index = ref >> 1;
  if (isExpired(entries_[index], nowNs)) {
    remove(index);
    ++stats_.expirations;
    ++stats_.lookupMisses;
    return {nullptr, ConntrackDirection::kOriginal, hash};
  }
  markUsed(index);
  ++stats_.lookupHits;
  return {&entries_[index], static_cast<ConntrackDirection>(ref & 1), hash};
}

ConntrackMatch Conntrack::peek(const FlowTuple& tuple, uint64_t nowNs) const {
  const uint32_t ref = findRef(tuple, hash32(tuple));
  if (ref == kEmptyRef) return {};
  const ConntrackEntry& e = entries_[ref >> 1];
  if (isExpired(e, nowNs)) return {};
  return {&e, static_cast<ConntrackDirection>(ref & 1)};
}

ConntrackState Conntrack::update(const ConntrackMatch& match, uint8_t tcpFlags, uint32_t bytes,
                                 uint64_t nowNs) {
  assert(match.entry >= entries_ && match.entry < entries_ + capacity_);
  const auto index = static_cast<size_t>(match.entry - entries_);
  ConntrackEntry& e = entries_[index];
  assert((e.useMark & kBatchBits) != 0);  // live
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
  const uint32_t ref = findRef(tuple, hash32(tuple));
  if (ref == kEmptyRef) return false;
  remove(ref >> 1);
  ++stats_.erased;
  return true;
}

size_t Conntrack::eraseByBackend(uint32_t backendId) {
  size_t removed = 0;
  for (uint32_t i = 0; i < capacity_ && size_ > 0; ++i) {
    if (nodes_[i].prev != kFreeMark && entries_[i].backendId == backendId) {
      remove(i);
      ++removed;
    }
  }
  stats_.erased += removed;
  return removed;
}

size_t Conntrack::expire(uint64_t nowNs, size_t maxToScan) {
  const uint32_t capacity = capacity_;
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

std::array<size_t, 2> Conntrack::indexBuckets(const FlowTuple& tuple, uint32_t capacity) {
  const size_t mask = layoutFor(capacity).slotCount / kBucketSlots - 1;
  const uint32_t h = hash32(tuple);
  return {primaryBucket(h, mask), secondaryBucket(h, mask)};
}

size_t Conntrack::memoryBytes() const {
  return layoutFor(capacity_).total;
}

}  // namespace sluice
