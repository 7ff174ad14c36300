// Store: the revisioned key-value interface the API server keeps objects in.
// Its contract is etcd v3's (as kine also offers): one cluster-wide revision
// that every write increments, range by prefix at a revision, compare-and-swap
// on a key's modRevision, watch from a revision, compaction. The embedded
// default is SQLite (sqlite_store.h); an etcd client implements the same.
//
// Keys are byte strings such as "/registry/pods/default/web-1"; values are
// opaque (the API server stores protobuf). Threading: every method may be
// called from any thread; a Watch is consumed by one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/result.h"

namespace sluice::store {

struct KeyValue {
  std::string key;
  std::string value;
  int64_t createRevision = 0;  // revision of the write that created the key
  int64_t modRevision = 0;     // revision of the last write to the key
};

enum class EventType : uint8_t { kPut, kDelete };

struct Event {
  EventType type = EventType::kPut;
  // For kPut the new value; for kDelete the key, empty value, and
  // modRevision = the deleting revision.
  KeyValue kv;
  // The value before this write (absent for a create), as etcd's prev_kv:
  // the API server needs it to send DELETED with the last object state.
  std::optional<KeyValue> prevKv;
};

struct ListResult {
  std::vector<KeyValue> kvs;  // sorted by key
  int64_t revision = 0;       // the store revision the list was read at
  bool more = false;          // limit cut the list; continue after kvs.back().key
};

// A stream of events in revision order, with no gaps and no duplicates.
class Watch {
 public:
  virtual ~Watch() = default;

  // Waits up to `timeout` for events; appends them to `out`. Returns an error
  // when the watch ended: kOutOfRange if it fell behind compaction or its
  // buffer overflowed (the client must re-list, as Kubernetes' 410 Gone), or
  // kUnavailable after cancel() or store shutdown.
  virtual Result<void> next(std::vector<Event>& out, std::chrono::milliseconds timeout) = 0;

  // Ends the watch; a blocked next() returns kUnavailable promptly.
  virtual void cancel() = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  virtual Result<int64_t> currentRevision() = 0;

  // The key at the current revision, or nullopt.
  virtual Result<std::optional<KeyValue>> get(std::string_view key) = 0;

  // Keys starting with `prefix`, sorted, strictly after `startAfter` when it
  // is non-empty; at most `limit` (0 = no limit). Read at one revision:
  // `atRevision` (0 = current; older than compaction -> kOutOfRange).
  virtual Result<ListResult> list(std::string_view prefix, int64_t limit = 0,
                                  std::string_view startAfter = {}, int64_t atRevision = 0) = 0;

  // Fails with kAlreadyExists if the key exists. Returns the new revision.
  // The write is durable (fsync'd) before this returns.
  virtual Result<int64_t> create(std::string_view key, std::string_view value) = 0;

  // Compare-and-swap: replaces the value only if the key's modRevision equals
  // `expectedModRevision`; kAborted if it differs, kNotFound if no key.
  // Returns the new KeyValue (with its new modRevision).
  virtual Result<KeyValue> update(std::string_view key, std::string_view value,
                                  int64_t expectedModRevision) = 0;

  // Deletes the key if its modRevision equals `expectedModRevision`
  // (0 = unconditionally). kNotFound if absent, kAborted if stale. Returns the
  // deleted KeyValue as it was.
  virtual Result<KeyValue> remove(std::string_view key, int64_t expectedModRevision = 0) = 0;

  // Events on keys under `prefix` with revision > `afterRevision`
  // (afterRevision = 0: from now on). kOutOfRange if afterRevision is older
  // than the compacted revision.
  virtual Result<std::unique_ptr<Watch>> watch(std::string_view prefix, int64_t afterRevision) = 0;

  // Forgets history at and below `revision` (never the current values).
  virtual Result<void> compact(int64_t revision) = 0;
  virtual Result<int64_t> compactedRevision() = 0;
};

}  // namespace sluice::store
