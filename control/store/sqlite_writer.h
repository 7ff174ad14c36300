// SqliteStore internals (not part of the store's API): one write as it waits
// in the group-commit queue. The queue and the transactions its leader runs
// (SqliteStore::submit, runBatch, applyWrite, runCompaction) are in
// sqlite_writer.cc.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "control/store/store.h"
#include "dataplane/result.h"

namespace sluice::store::detail {

enum class OpKind : uint8_t { kCreate, kUpdate, kRemove, kCompact };

// One caller's write, queued for the batch leader. Lives on the caller's
// stack; the caller blocks in submit() until `done`, so the views stay valid.
struct WriteOp {
  OpKind kind = OpKind::kCreate;
  std::string_view key;
  std::string_view value;
  // update/remove: the expected modRevision (remove: 0 = any);
  // compact: the revision to compact to.
  int64_t revision = 0;

  // Outcome, written by the leader before `done` is set under writeMu_.
  std::optional<Error> error;
  KeyValue result;  // create/update: the new KeyValue; remove: the old one
  std::shared_ptr<const Event> event;
  bool done = false;
  std::condition_variable wake;
};

}  // namespace sluice::store::detail
