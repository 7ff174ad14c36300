// Conntrack: the userspace connection tracker of the DPDK fast path (and of
// tests that need flow state without a kernel). It maps a flow's 5-tuple, as
// seen in either direction, to one entry holding the NAT binding chosen for
// the flow's first packet, the chosen backend, a simplified protocol state
// and per-direction counters.
//
// Model (as Linux nf_conntrack): an entry has two tuples. `original` is the
// first packet as the client sent it (client -> frontend); `reply` is what the
// backend's answers look like on the wire *before* reverse NAT (backend ->
// client, or backend -> SNAT address). Both index the same entry, so one
// lookup on any packet of the flow says which entry and which direction. The
// NAT binding is not stored again: DNAT target = reply source, SNAT address =
// reply destination, address to restore on replies = original destination.
//
// Bounds: capacity is fixed at create(); every array is allocated then, so
// insert/lookup/update/erase never allocate. The arrays may instead live in
// a region the caller maps (createIn()), e.g. a shared-memory file, so that
// a restarted process re-attaches the flows with adopt(). When full, insert
// evicts by second chance (CLOCK) over an LRU list, as the kernel's BPF LRU
// maps do: entries join the list's front when inserted, a lookup only sets
// the entry's used mark (a hit writes nothing but its own entry), and the
// victim is the list's tail once up to kMaxSecondChances used entries there
// have had their mark cleared and moved to the front. Expired entries are
// treated as absent by lookup (and removed there), and reclaimed by a bounded
// incremental sweep, expire().
//
// Time is injected: every call that needs it takes `nowNs`, a monotonic clock
// in nanoseconds (in DPDK: rte_get_tsc_cycles() scaled; in tests: a number).
//
// Threading: none. One instance per lcore (or per test); the DPDK path must
// steer both directions of a flow to the same lcore (symmetric RSS) or share
// an instance under its own lock.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/flow.h"
#include "dataplane/ip_address.h"
#include "dataplane/result.h"

namespace sluice {

// TCP header flag bits as they sit in header byte 13 (RFC 9293 section 3.1),
// so the parser can pass that byte through unchanged.
inline constexpr uint8_t kTcpFlagFin = 0x01;
inline constexpr uint8_t kTcpFlagSyn = 0x02;
inline constexpr uint8_t kTcpFlagRst = 0x04;
inline constexpr uint8_t kTcpFlagAck = 0x10;

inline constexpr uint64_t kNsPerSecond = 1'000'000'000;

// Which of an entry's two tuples a packet matched. Values index the
// per-direction counters.
enum class ConntrackDirection : uint8_t {
  kOriginal = 0,  // client -> frontend: needs DNAT (and SNAT, if bound)
  kReply = 1,     // backend -> client: needs reverse NAT
};

// Simplified per-protocol states, Linux/Cilium style. TCP sequence numbers
// and windows are not tracked: this table decides NAT and lifetime, not
// acceptance (that is the endpoints' job).
enum class ConntrackState : uint8_t {
  kTcpSynSent,      // SYN seen, nothing from the backend yet
  kTcpEstablished,  // the backend answered (or the flow was picked up mid-stream)
  kTcpFinWait,      // FIN from one side: half-closed, the other side may still send
  kTcpTimeWait,     // FIN from both sides: the last ACKs are in flight
  kTcpClose,        // RST from either side
  kUdpUnreplied,    // datagrams one way only
  kUdpReplied,      // the backend answered: a "stream"
  kIcmp,            // ICMP / ICMPv6 echo, keyed by identifier
  kOther,           // any other protocol (SCTP): no state machine
};
inline constexpr size_t kConntrackStateCount = 9;

std::string_view toString(ConntrackState state);

// Idle timeouts in nanoseconds: an entry is removed once `nowNs - lastSeenNs`
// reaches the timeout of its state. Defaults and their sources:
struct ConntrackTimeouts {
  // Linux nf_conntrack_tcp_timeout_syn_sent. Also applies to an entry picked
  // up mid-stream until the backend answers, so one-way ACK floods cannot
  // pin entries for the established timeout (cf. Linux's "unassured").
  uint64_t tcpSynSentNs = 120 * kNsPerSecond;
  // kube-proxy's conntrack.tcpEstablishedTimeout default (24h), which it
  // writes over Linux's 5 days; we replace kube-proxy, so we match it.
  // (Cilium uses 6h.)
  uint64_t tcpEstablishedNs = 86'400 * kNsPerSecond;
  // kube-proxy's conntrack.tcpCloseWaitTimeout default (1h): a half-closed
  // connection can legitimately stay idle while the other side still sends.
  uint64_t tcpFinWaitNs = 3'600 * kNsPerSecond;
  // Linux nf_conntrack_tcp_timeout_time_wait: 2 * MSL.
  uint64_t tcpTimeWaitNs = 120 * kNsPerSecond;
  // Linux nf_conntrack_tcp_timeout_close; Cilium's CT_CLOSE_TIMEOUT is also 10s.
  uint64_t tcpCloseNs = 10 * kNsPerSecond;
  // Linux nf_conntrack_udp_timeout.
  uint64_t udpUnrepliedNs = 30 * kNsPerSecond;
  // Linux nf_conntrack_udp_timeout_stream (120s in current kernels; older
  // ones used 180s).
  uint64_t udpRepliedNs = 120 * kNsPerSecond;
  // Linux nf_conntrack_icmp_timeout / nf_conntrack_icmpv6_timeout.
  uint64_t icmpNs = 30 * kNsPerSecond;
  // Linux nf_conntrack_generic_timeout.
  uint64_t otherNs = 600 * kNsPerSecond;
};

struct ConntrackConfig {
  // Maximum live entries, 1..Conntrack::kMaxCapacity. All memory is
  // allocated at create(): 128 B entry + 16 B links + 2-4 index slots of 8 B,
  // i.e. 165-187 B per unit of capacity (Conntrack::memoryBytes()).
  uint32_t capacity = 0;
  ConntrackTimeouts timeouts;
};

// An address and host-order port: one side of a NAT binding.
struct NatEndpoint {
  IpAddress address;
  uint16_t port = 0;  // host order; for ICMP echo, the identifier

  friend bool operator==(const NatEndpoint&, const NatEndpoint&) = default;
};

// The translation chosen for a flow's first packet.
struct ConntrackNat {
  // DNAT: the original packet's destination (the frontend) becomes this.
  NatEndpoint backend;
  // SNAT: the original packet's source (the client) becomes this, so replies
  // come back through this node (externalTrafficPolicy Cluster, hairpin).
  std::optional<NatEndpoint> snat;

  friend bool operator==(const ConntrackNat&, const ConntrackNat&) = default;
};

// What insert() needs to create an entry.
struct ConntrackFlow {
  FlowTuple original;  // the first packet, as received from the client
  ConntrackNat nat;
  uint32_t backendId = 0;  // caller's id for the backend, for eraseByBackend()
};

// One tracked flow: 128 bytes, two 64 B lines in the (64 B aligned) pool.
// Callers only see it const; change it through Conntrack::update(). A hit
// reads the first line (the original tuple, most of the reply tuple) and
// the second (the rest of the reply tuple, what the expiry check reads,
// what update() writes). Data of the caller's own, such as a service id,
// belongs in an array parallel to the pool (Conntrack::indexOf).
struct ConntrackEntry {
  FlowTuple original;  // client -> frontend, as the client sent it
  FlowTuple reply;     // backend -> client (or SNAT address), as the backend sends it
  uint64_t lastSeenNs = 0;
  ConntrackState state = ConntrackState::kOther;
  bool seenReply = false;  // a packet matched `reply` at least once
  uint8_t tcpFinSeen = 0;  // bit (1 << direction) per direction that sent a FIN
  // Conntrack's own: bit 7, used since it last reached the LRU tail (the
  // second chance); bits 0-6, the lookup batch that last used or inserted it.
  uint8_t useMark = 0;
  uint32_t backendId = 0;
  // Indexed by ConntrackDirection; bytes are L3 lengths as the caller passed them.
  std::array<uint64_t, 2> packets{};
  std::array<uint64_t, 2> bytes{};

  NatEndpoint client() const { return {original.src, original.srcPort}; }
  // Where replies' source is restored to (reverse DNAT).
  NatEndpoint frontend() const { return {original.dst, original.dstPort}; }
  NatEndpoint backend() const { return {reply.src, reply.srcPort}; }
  // The SNAT endpoint, or nullopt when replies go straight to the client.
  std::optional<NatEndpoint> snat() const;
  ConntrackNat nat() const { return {backend(), snat()}; }
};

// The result of a lookup: the entry (nullptr when absent) and the direction
// the tuple matched. The pointer stays valid until the next insert (which may
// evict it), erase, eraseByBackend or expire call, or a lookup that finds the
// entry expired.
struct ConntrackMatch {
  const ConntrackEntry* entry = nullptr;
  ConntrackDirection direction = ConntrackDirection::kOriginal;
  // The looked-up tuple's table hash, hit or miss (lookup, lookupBurst):
  // insertAbsent() takes it back instead of hashing the tuple again.
  uint32_t hash = 0;

  explicit operator bool() const { return entry != nullptr; }
};

enum class ConntrackInsertStatus : uint8_t {
  kInserted,        // a new entry; match.direction is kOriginal
  kExists,          // the tuple is already tracked (either direction): match is that entry
  kReplyCollision,  // the reply tuple belongs to another live flow; nothing changed
};

// 16 bytes, so it comes back in two registers: a larger result is written
// to memory field by field and read back wide by the caller, a
// store-forwarding stall on every new flow.
struct ConntrackInsertResult {
  ConntrackInsertStatus status = ConntrackInsertStatus::kInserted;
  ConntrackDirection direction = ConntrackDirection::kOriginal;
  uint32_t hash = 0;
  const ConntrackEntry* entry = nullptr;  // nullptr for kReplyCollision

  ConntrackMatch match() const { return {entry, direction, hash}; }
  static ConntrackInsertResult of(ConntrackInsertStatus s, const ConntrackMatch& m) {
    return {s, m.direction, m.hash, m.entry};
  }
};
static_assert(sizeof(ConntrackInsertResult) == 16);

struct ConntrackStats {
  uint64_t entries = 0;           // live + not yet reclaimed entries now
  uint64_t inserts = 0;           // entries created
  uint64_t insertExisting = 0;    // insert found the flow already tracked
  uint64_t insertCollisions = 0;  // insert refused: reply tuple taken
  uint64_t evictions = 0;         // live entries dropped to make room
  uint64_t expirations = 0;       // entries removed because their timeout passed
  uint64_t erased = 0;            // entries removed by erase()/eraseByBackend()
  uint64_t lookupHits = 0;
  uint64_t lookupMisses = 0;      // includes lookups that found an expired entry
};

class Conntrack {
 public:
  // Entry index, direction bit and "empty" must fit the 32-bit slot
  // reference, and the hash index (2 slots per entry at <= 75% load, in
  // buckets of 8, rounded to a power of two) must stay below 2^32 slots.
  // 2^28 entries is ~50 GB,
  // far past any userspace table we run.
  static constexpr uint32_t kMaxCapacity = uint32_t{1} << 28;
  // Used entries an eviction moves from the LRU tail to the front before it
  // takes the tail, used or not: bounds one insert's work when the whole
  // table is in use (each move is a few cache misses).
  static constexpr uint32_t kMaxSecondChances = 8;

  // Fails on capacity 0 or > kMaxCapacity, or a zero timeout, or when the
  // memory cannot be mapped. Tables of 2 MB and more ask for transparent
  // huge pages (madvise): a random flow then costs no page walk.
  static Result<Conntrack> create(const ConntrackConfig& config);

  // Bytes, and the alignment, a region for createIn()/adopt() of this
  // capacity needs: a 64 B header, the entry pool, its links, the index.
  static size_t regionBytes(uint32_t capacity);
  static constexpr size_t kRegionAlignment = 64;
  // An empty table whose arrays live in `region` (regionBytes(capacity)
  // bytes, kRegionAlignment-aligned), which the caller owns and must keep
  // mapped for the table's life. Fails as create() does, or on a region too
  // small or misaligned.
  static Result<Conntrack> createIn(std::span<std::byte> region, const ConntrackConfig& config);
  // Re-attaches a region a table of the same capacity and layout formatted
  // earlier, possibly in another process that was killed mid-update: the
  // entry pool is authoritative, the index, LRU order (most recently seen
  // first) and free list are rebuilt from it, and an entry whose tuple
  // another live entry already holds (a torn update) is dropped. O(capacity
  // log capacity). Fails, leaving the region untouched, when its header
  // names another capacity or layout (a binary with another ConntrackEntry):
  // the caller then starts over with createIn().
  static Result<Conntrack> adopt(std::span<std::byte> region, const ConntrackConfig& config);

  Conntrack(Conntrack&&) noexcept = default;
  Conntrack& operator=(Conntrack&&) noexcept = default;
  Conntrack(const Conntrack&) = delete;
  Conntrack& operator=(const Conntrack&) = delete;

  // Tracks a new flow whose first packet (original direction) carried
  // `tcpFlags` (ignored for non-TCP) and `bytes`. If either the original or
  // the reply tuple is already tracked by a live entry, changes nothing
  // except the used mark of an existing match (see ConntrackInsertStatus).
  // A reply tuple equal to the original (client talking to itself, no NAT)
  // is a collision. When full, evicts (second chance, above).
  ConntrackInsertResult insert(const ConntrackFlow& flow, uint8_t tcpFlags, uint32_t bytes,
                               uint64_t nowNs);

  // insert() of a flow whose original tuple is known to be untracked: a
  // lookup of it (which reported `originalHash`, ConntrackMatch::hash)
  // missed, and nothing inserted it since. Skips hashing and probing that
  // tuple again (the per-packet first-packet path); everything else,
  // reply collisions and eviction included, is insert()'s.
  // `replyHash`, when given, is what prefetch() returned for this flow's
  // reply tuple (a caller that predicted it): not hashed again either.
  ConntrackInsertResult insertAbsent(const ConntrackFlow& flow, uint32_t originalHash,
                                     uint8_t tcpFlags, uint32_t bytes, uint64_t nowNs,
                                     std::optional<uint32_t> replyHash = std::nullopt);

  // Pulls into cache what evicting the `inserts` entries at the LRU tail
  // will touch (their index slots and entries), when the table is full; a
  // no-op otherwise. For a burst of first packets, called before
  // their inserts so the victims' misses overlap.
  void prefetchVictims(size_t inserts) const;

  // Pulls into cache the index line a lookup or insert of `tuple` reads
  // (its primary bucket; the secondary is read only when the primary has
  // overflowed): for a tuple known ahead of its insert, such as a new
  // flow's reply tuple. Returns the tuple's hash, for insertAbsent().
  uint32_t prefetch(const FlowTuple& tuple) const;

  // Finds the entry either of whose tuples equals `tuple` and marks it used.
  // An expired entry is removed and reported absent. Does not touch the
  // entry's lastSeenNs: update() does, once the packet is accepted.
  ConntrackMatch lookup(const FlowTuple& tuple, uint64_t nowNs);

  // lookup() of each tuple in order, with the same results and effects, but
  // the index slots and entries of the whole burst are prefetched first so
  // their cache misses overlap instead of queueing (DPDK rx bursts are 32).
  // tuples.size() must not exceed out.size(). Returns the number of hits.
  // Starts a new batch (evictedFromBatch()). `parallel`, when given, is
  // the caller's array parallel to the pool (indexOf()) with elements of
  // `parallelStride` bytes: each likely hit's element is prefetched with
  // its entry.
  size_t lookupBurst(std::span<const FlowTuple> tuples, std::span<ConntrackMatch> out,
                     uint64_t nowNs, const void* parallel = nullptr, size_t parallelStride = 0);

  // Whether an eviction since the last lookupBurst() may have removed an
  // entry found or inserted since then: a caller holding that batch's
  // matches must then look its remaining tuples up again. Evictions take
  // entries from the LRU tail, which a batch's entries reach only when the
  // table is small for the burst or wholly in use, so this is rare; it can
  // also say true for an entry of the batch 127 batches earlier (the mark
  // keeps 7 bits), which costs only the lookups.
  bool evictedFromBatch() const { return evictedFromBatch_; }

  // As lookup(), without side effects: no used mark, no removal, no stats.
  ConntrackMatch peek(const FlowTuple& tuple, uint64_t nowNs) const;

  // Accounts one packet of `bytes` in match.direction and advances the
  // state machine (tcpFlags ignored for non-TCP). Returns the new state.
  // `match` must come from this table and still be valid.
  ConntrackState update(const ConntrackMatch& match, uint8_t tcpFlags, uint32_t bytes,
                        uint64_t nowNs);

  // Removes the entry matching `tuple` in either direction.
  bool erase(const FlowTuple& tuple);

  // Removes every entry bound to `backendId`, so flows to a removed backend
  // stop at once instead of timing out (UDP has no RST to end them). O(capacity).
  size_t eraseByBackend(uint32_t backendId);

  // Visits up to `maxToScan` slots of the entry pool, continuing where the
  // previous call stopped and wrapping around, and removes the expired
  // entries found. Returns how many it removed. A cursor over the pool (like
  // Linux's gc_worker over hash buckets) rather than over the LRU tail,
  // because LRU order is not expiry order: timeouts range from 10 s to 24 h,
  // and a live long-timeout entry at the tail would stall a tail sweep while
  // expired short-timeout entries sit behind it. capacity/maxToScan calls
  // visit every entry.
  size_t expire(uint64_t nowNs, size_t maxToScan);

  // Calls `fn` for every live entry in LRU list order: newest first, where
  // an entry is new when inserted or given a second chance (the next
  // victims come last). Slow path (`sluice debug`): O(size).
  void forEach(uint64_t nowNs, const std::function<void(const ConntrackEntry&)>& fn) const;

  // When `entry` expires if it sees no more packets.
  uint64_t expiresAtNs(const ConntrackEntry& entry) const;

  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  // The entry's position in the pool, 0..capacity()-1: stable for the
  // entry's life (and across adopt()), so callers can keep per-flow data of
  // their own in a parallel array. `entry` must come from this table.
  uint32_t indexOf(const ConntrackEntry& entry) const {
    return static_cast<uint32_t>(&entry - entries_);
  }
  ConntrackStats stats() const;
  // The two index buckets `tuple` can sit in, in a table of `capacity`
  // (tests crowd one pair of buckets with it).
  static std::array<size_t, 2> indexBuckets(const FlowTuple& tuple, uint32_t capacity);
  // The first broken invariant of the index, or "" (tests; O(capacity)):
  // each live entry's two tuples indexed once, in one of their two
  // buckets, under their hash's tag; nothing else indexed; each bucket's
  // overflow count right.
  std::string indexFault() const;
  const ConntrackTimeouts& timeouts() const { return timeouts_; }
  // Bytes held by the entry pool, the LRU links and the hash index.
  size_t memoryBytes() const;

 private:
  // The index (conntrack_index.cc): buckets of 8 slots, one 64 B line each.
  // A tuple's 32-bit hash names two buckets (primaryBucket, secondaryBucket:
  // two-choice hashing, as DPDK's rte_hash); a 16-bit tag of it in the slot
  // filters key compares 8 at a time. A slot's `ref` is entry index << 1 |
  // direction, or kEmptyRef. Lookups read at most two lines and erasing
  // clears one slot: no probe runs to walk or shift, whatever the load.
  //
  // A bucket also counts the refs whose primary it is that sit in their
  // secondary (`overflow`): while that is 0, which at the index's load is
  // nearly always, a tuple absent from its primary is absent, so lookups,
  // first packets included, read one line. Tags are 16 bits (of the hash,
  // mixed) to make room for it; moving a resident to its other bucket
  // reads the resident's full hash from its node.
  static constexpr size_t kBucketSlots = 8;
  struct alignas(64) Bucket {
    std::array<uint32_t, kBucketSlots> ref;
    std::array<uint16_t, kBucketSlots> tag;
    uint32_t overflow;
    std::array<uint8_t, 12> unused;
  };
  static_assert(sizeof(Bucket) == 64);
  // Per-entry bookkeeping kept apart from ConntrackEntry so the public type
  // carries no internals. prev == kFreeMark marks an unused pool slot.
  struct Node {
    uint32_t prev;
    uint32_t next;
    std::array<uint32_t, 2> hash;  // of original and reply, for removal without rehashing
  };

  static constexpr uint32_t kNil = UINT32_MAX;
  static constexpr uint32_t kFreeMark = UINT32_MAX - 1;
  static constexpr uint32_t kEmptyRef = UINT32_MAX;

  struct RegionHeader;
  struct Layout;
  static Layout layoutFor(uint32_t capacity);

  Conntrack(const ConntrackConfig& config, std::byte* region, uint32_t capacity);
  void formatEmpty();
  void clearIndex();
  size_t rebuildFromPool();

  bool isExpired(const ConntrackEntry& entry, uint64_t nowNs) const;
  uint64_t timeoutNs(const ConntrackEntry& entry) const;

  // `guess`: a ref that may hold `tuple` (lookupBurst's prefetch pass found
  // its tag), checked before searching the index; kEmptyRef for none.
  ConntrackMatch lookupHashed(const FlowTuple& tuple, uint32_t hash, uint64_t nowNs,
                              uint32_t guess = kEmptyRef);
  // insert() once the original tuple is known to be untracked.
  ConntrackInsertResult insertNew(const ConntrackFlow& flow, const FlowTuple& reply,
                                  uint32_t originalHash, uint32_t replyHash, uint8_t tcpFlags,
                                  uint32_t bytes, uint64_t nowNs);
  static size_t primaryBucket(uint32_t hash, size_t mask) { return hash & mask; }
  // Never the primary bucket: XOR with an odd number flips the low bit.
  static size_t secondaryBucket(uint32_t hash, size_t mask) {
    return (hash ^ (((hash >> 16) * 0x9e3779b1u) | 1u)) & mask;
  }
  size_t primaryBucket(uint32_t hash) const { return primaryBucket(hash, bucketMask_); }
  size_t secondaryBucket(uint32_t hash) const { return secondaryBucket(hash, bucketMask_); }
  // The ref whose tuple equals `tuple`, or kEmptyRef.
  uint32_t findRef(const FlowTuple& tuple, uint32_t hash) const;
  uint32_t findIn(const Bucket& bucket, const FlowTuple& tuple, uint16_t tag) const;
  // The hash a live ref was indexed under.
  uint32_t hashOfRef(uint32_t ref) const;
  // Puts `ref` in one of its two buckets, moving one resident to its other
  // bucket if both are full (one cuckoo step). False when that fails too.
  bool insertRef(uint32_t hash, uint32_t ref);
  // insertRef(), evicting entries of the primary bucket (never `ref`'s own)
  // until it succeeds. Counted as evictions, as LRU's are.
  void insertRefEvicting(uint32_t hash, uint32_t ref, uint64_t nowNs);
  bool placeIn(size_t bucket, uint32_t hash, uint32_t ref);
  void eraseRef(uint32_t hash, uint32_t ref);

  void unlink(uint32_t index);
  void linkFront(uint32_t index);
  void markUsed(uint32_t index) { entries_[index].useMark = kUsedBit | batch_; }
  // The LRU tail after up to kMaxSecondChances used entries there moved to
  // the front, their marks cleared; an expired tail is taken as it is.
  // Out of line: the tail is seldom used.
  [[gnu::cold, gnu::noinline]] uint32_t pickVictim(uint64_t nowNs);
  // remove() of a live entry to make room, counted as an eviction (or an
  // expiration, when its time is up).
  void evict(uint32_t index, uint64_t nowNs);
  void remove(uint32_t index);

  ConntrackTimeouts timeouts_;
  // Timeout per ConntrackState, from timeouts_.
  std::array<uint64_t, kConntrackStateCount> stateTimeoutNs_{};
  // create() owns its region (an anonymous mapping); createIn()/adopt()
  // borrow the caller's.
  struct Unmap {
    size_t bytes;  // no initializer: it would keep Unmap from being default-constructible here
    void operator()(std::byte* p) const;
  };
  std::unique_ptr<std::byte, Unmap> owned_;
  ConntrackEntry* entries_ = nullptr;  // the pool, `capacity_` entries
  Node* nodes_ = nullptr;              // parallel to entries_
  Bucket* buckets_ = nullptr;          // bucketMask_ + 1 (a power of two) buckets
  uint32_t capacity_ = 0;
  size_t bucketMask_ = 0;
  uint32_t lruHead_ = kNil;  // newest: the last inserted or given a second chance
  uint32_t lruTail_ = kNil;  // oldest: where evictions look first
  uint32_t freeHead_ = kNil;  // singly linked through Node::next
  uint32_t sweepCursor_ = 0;
  // ConntrackEntry::useMark: kUsedBit, and the batch in kBatchBits (1..127;
  // 0 marks a free entry).
  static constexpr uint8_t kUsedBit = 0x80;
  static constexpr uint8_t kBatchBits = 0x7f;
  uint8_t batch_ = 1;
  bool evictedFromBatch_ = false;
  size_t size_ = 0;
  ConntrackStats stats_;
};

}  // namespace sluice
