// PendingWrites: map writes collected during EbpfMode's start-up sync and
// written with the batch syscalls (MapRef::updateBatch / eraseBatch), so a
// full sync of N services costs O(maps x N / 8192) syscalls instead of
// O(entries): at 100,000 services x 10 backends that is 2.1M entries
// (a frontend, 10 slots and 10 backends each), ~260 batch syscalls.
//
// Ordering: the datapath reads the maps while they are written, so the
// flush keeps the per-service order of the unbatched path globally. Every
// target has a phase; updates go in ascending phase order (backends before
// the slots and Maglev tables naming them, frontends last), then deletes in
// descending order (frontends first: nothing still counts the slots and
// backends deleted after them).
//
// Per key, the last operation queued wins (an update after a delete of the
// same key is an update, and the reverse a delete): the maps end as the
// sequential writes would have left them. Updates are appended as they come
// (the kernel applies a batch in order, so a key written twice ends with the
// second value); deletes are few in a start-up sync (what a previous run
// left and nobody wants), so only they are indexed.
//
// Ownership: a target keeps a duplicate of its map fd, so a map closed by
// the caller between queueing and flush() is still the one written.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bpf/loader/bpf_map.h"
#include "dataplane/result.h"

namespace sluice::bpf {

class PendingWrites {
 public:
  // target: (phase, id); id tells apart maps of one phase (the Maglev inner
  // maps, by set id). The first call for a target fixes its map.
  template <typename K, typename V>
  Result<void> update(std::pair<int, uint64_t> target, const MapRef& map, const K& key,
                      const V& value) {
    Target* t = find(target, map, sizeof(K), sizeof(V));
    if (!t) return failure(map);
    append(t->keys, key);
    append(t->values, value);
    t->updateSeq.push_back(seq_++);
    return okResult();
  }
  template <typename K>
  Result<void> erase(std::pair<int, uint64_t> target, const MapRef& map, const K& key) {
    Target* t = find(target, map, sizeof(K), 0);
    if (!t) return failure(map);
    t->deletes[std::string(reinterpret_cast<const char*>(&key), sizeof(K))] = seq_++;
    return okResult();
  }

  // Writes everything queued in the order above and empties the queue (also
  // on an error: the caller re-reads the maps rather than retrying).
  Result<void> flush();
  size_t size() const;

 private:
  struct Target {
    FileDescriptor fd;  // a dup of the caller's
    MapRef map;         // on fd, with the caller's name and counters
    uint32_t keySize = 0;
    uint32_t valueSize = 0;
    // Updates in queue order, keys and values packed, and their sequence
    // numbers; deletes by key bytes with the sequence number of the last.
    std::vector<uint8_t> keys, values;
    std::vector<uint64_t> updateSeq;
    std::unordered_map<std::string, uint64_t> deletes;
  };

  template <typename T>
  static void append(std::vector<uint8_t>& out, const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  }
  Target* find(std::pair<int, uint64_t> target, const MapRef& map, uint32_t keySize,
               uint32_t valueSize);
  static Error failure(const MapRef& map);

  std::map<std::pair<int, uint64_t>, Target> targets_;
  uint64_t seq_ = 0;
};

}  // namespace sluice::bpf
