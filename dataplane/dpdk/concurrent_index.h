// ConcurrentIndex: an open-addressing hash index that one writer (the
// control thread) changes while any number of readers (the workers) look
// it up without locks, atomics with a lock prefix, or waiting.
//
// How readers stay safe: a slot holds a pointer to an immutable Entry that
// carries its own key. A slot is written once, from empty, with an entry;
// afterwards it is only ever replaced by an entry of the same key or by a
// tombstone, so a reader that loads a slot (acquire) and compares the key
// inside the entry can never pair one key with another's value. Replaced
// entries belong to the caller, which retires them through Rcu (rcu.h);
// the index retires its own arrays when it grows or sheds tombstones, by
// building a new array and publishing it with one pointer store.
//
// Load: the array is rebuilt at half full (live entries + tombstones), so
// a probe sequence is short and always ends at an empty slot.
//
// Threading: find()/prefetch() from readers registered with the Rcu, between
// quiescent states; everything else from the writer thread only.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "dataplane/dpdk/rcu.h"

namespace sluice::dpdk {

// Entry must have a `key` member of type Key with operator==; Hash maps a
// Key to a uint64_t.
template <typename Entry, typename Key, typename Hash>
class ConcurrentIndex {
 public:
  explicit ConcurrentIndex(Rcu& rcu, size_t initialSlots = 64)
      : rcu_(rcu), table_(newTable(std::bit_ceil(std::max<size_t>(initialSlots, 16)))) {}
  ~ConcurrentIndex() { delete table_.load(std::memory_order_relaxed); }
  ConcurrentIndex(const ConcurrentIndex&) = delete;
  ConcurrentIndex& operator=(const ConcurrentIndex&) = delete;

  static uint64_t hash(const Key& key) { return Hash{}(key); }

  // Readers.
  const Entry* find(const Key& key) const { return find(key, hash(key)); }
  const Entry* find(const Key& key, uint64_t h) const {
    const Table* t = table_.load(std::memory_order_acquire);
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
      const Entry* e = t->slots[i].load(std::memory_order_acquire);
      if (e == nullptr) return nullptr;
      if (e != tombstone() && e->key == key) return e;
    }
  }
  // Pulls the home slot into the cache ahead of find() (burst lookups).
  void prefetch(uint64_t h) const {
    const Table* t = table_.load(std::memory_order_acquire);
    __builtin_prefetch(&t->slots[h & t->mask]);
  }

  // Writer. Publishes `entry` under entry->key and returns the entry it
  // replaced (for the caller to retire), or nullptr.
  const Entry* upsert(const Entry* entry) {
    const uint64_t h = hash(entry->key);
    Table* t = table_.load(std::memory_order_relaxed);
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
      const Entry* e = t->slots[i].load(std::memory_order_relaxed);
      if (e == nullptr) break;
      if (e != tombstone() && e->key == entry->key) {
        t->slots[i].store(entry, std::memory_order_release);
        return e;
      }
    }
    if ((t->used + 1) * 2 > t->mask + 1) t = rebuild(t->live + 1);
    // A fresh (never used) slot: tombstones are never reused in place, or
    // a reader mid-probe could compare its key with a newcomer's entry.
    size_t i = h & t->mask;
    while (t->slots[i].load(std::memory_order_relaxed) != nullptr) i = (i + 1) & t->mask;
    t->slots[i].store(entry, std::memory_order_release);
    ++t->used;
    ++t->live;
    return nullptr;
  }

  // Writer. Unpublishes the entry of `key` and returns it (for the caller
  // to retire), or nullptr if there is none.
  const Entry* erase(const Key& key) {
    const uint64_t h = hash(key);
    Table* t = table_.load(std::memory_order_relaxed);
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
      const Entry* e = t->slots[i].load(std::memory_order_relaxed);
      if (e == nullptr) return nullptr;
      if (e != tombstone() && e->key == key) {
        t->slots[i].store(tombstone(), std::memory_order_release);
        --t->live;
        return e;
      }
    }
  }

  // Writer: every live entry, in slot order.
  template <typename F>
  void forEach(F&& fn) const {
    const Table* t = table_.load(std::memory_order_relaxed);
    for (size_t i = 0; i <= t->mask; ++i) {
      const Entry* e = t->slots[i].load(std::memory_order_relaxed);
      if (e != nullptr && e != tombstone()) fn(*e);
    }
  }

  size_t size() const { return table_.load(std::memory_order_relaxed)->live; }
  size_t slotCount() const { return table_.load(std::memory_order_relaxed)->mask + 1; }
  size_t memoryBytes() const { return slotCount() * sizeof(std::atomic<const Entry*>); }

 private:
  struct Table {
    size_t mask = 0;
    size_t used = 0;  // live + tombstones (writer's bookkeeping)
    size_t live = 0;
    std::unique_ptr<std::atomic<const Entry*>[]> slots;
  };

  // Never dereferenced: only compared against.
  static const Entry* tombstone() { return reinterpret_cast<const Entry*>(uintptr_t{1}); }

  static Table* newTable(size_t slots) {
    auto* t = new Table();
    t->mask = slots - 1;
    t->slots.reset(new std::atomic<const Entry*>[slots]);
    for (size_t i = 0; i < slots; ++i) t->slots[i].store(nullptr, std::memory_order_relaxed);
    return t;
  }

  // A new array sized for `live` entries at a quarter full, holding every
  // live entry of the current one, published in place of it.
  Table* rebuild(size_t live) {
    Table* old = table_.load(std::memory_order_relaxed);
    Table* t = newTable(std::bit_ceil(std::max<size_t>(16, live * 4)));
    for (size_t i = 0; i <= old->mask; ++i) {
      const Entry* e = old->slots[i].load(std::memory_order_relaxed);
      if (e == nullptr || e == tombstone()) continue;
      size_t j = hash(e->key) & t->mask;
      while (t->slots[j].load(std::memory_order_relaxed) != nullptr) j = (j + 1) & t->mask;
      t->slots[j].store(e, std::memory_order_relaxed);
      ++t->used;
      ++t->live;
    }
    table_.store(t, std::memory_order_release);
    rcu_.retire([old] { delete old; });
    return t;
  }

  Rcu& rcu_;
  std::atomic<Table*> table_;
};

}  // namespace sluice::dpdk
