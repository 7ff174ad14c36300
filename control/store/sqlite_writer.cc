#include "control/store/sqlite_writer.h"

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/store/sqlite_db.h"
#include "control/store/sqlite_store.h"
#include "control/store/sqlite_watch.h"

namespace sluice::store {
namespace detail {
namespace {

std::string_view opName(OpKind kind) {
  switch (kind) {
    case OpKind::kCreate:
      return "create";
    case OpKind::kUpdate:
      return "update";
    case OpKind::kRemove:
      return "remove";
    case OpKind::kCompact:
      return "compact";
  }
  return "write";
}

}  // namespace
}  // namespace detail

using detail::Connection;
using detail::OpKind;
using detail::Stmt;
using detail::WriteOp;

// The writer queue (LevelDB's group commit): each caller enqueues its op and
// sleeps until either its op is done or it reaches the front. The front op's
// thread is the leader: it takes the ops queued behind it (the followers),
// runs them in one transaction with one fsync, publishes their events, then
// marks them done and wakes the next front. writeMu_ is held only to touch
// the queue, so followers keep queuing while the leader is in fsync, which
// is what forms the next batch.
void SqliteStore::submit(WriteOp& op) {
  std::unique_lock lock(writeMu_);
  writers_.push_back(&op);
  op.wake.wait(lock, [&] { return op.done || writers_.front() == &op; });
  if (op.done) {
    return;
  }

  std::vector<WriteOp*> batch;
  if (op.kind == OpKind::kCompact) {
    batch.push_back(&op);
  } else {
    size_t most = options_.groupCommit ? options_.maxBatch : 1;
    for (WriteOp* w : writers_) {
      if (w->kind == OpKind::kCompact || batch.size() >= most) {
        break;
      }
      batch.push_back(w);
    }
  }
  lock.unlock();

  if (op.kind == OpKind::kCompact) {
    runCompaction(op);
  } else {
    runBatch(batch);
  }

  lock.lock();
  for (size_t i = 0; i < batch.size(); ++i) {
    WriteOp* w = writers_.front();
    writers_.pop_front();
    w->done = true;
    if (w != &op) {
      w->wake.notify_one();
    }
  }
  if (!writers_.empty()) {
    writers_.front()->wake.notify_one();
  }
}

void SqliteStore::runBatch(const std::vector<WriteOp*>& batch) {
  Connection& w = *writer_;
  const int64_t base = revision_.load();
  int64_t next = base;

  // A SQLite failure rolls back the whole batch: nobody was acknowledged,
  // and revisions are reassigned from `base` next time.
  auto failAll = [&](std::string_view what, const Error& cause) {
    w.rollback();
    for (WriteOp* op : batch) {
      if (!op->error) {
        op->error = sqliteError(std::string(detail::opName(op->kind)) + " " + std::string(op->key) +
                                    ": " + std::string(what),
                                cause);
      }
    }
  };

  if (Result<void> r = w.exec("BEGIN IMMEDIATE"); !r) {
    failAll("begin", r.error());
    return;
  }
  for (WriteOp* op : batch) {
    Result<bool> used = applyWrite(*op, next + 1);
    if (!used) {
      failAll("write", used.error());
      return;
    }
    if (*used) {
      ++next;
    }
  }
  if (next == base) {
    w.rollback();  // every op failed its own check; nothing to commit
    return;
  }
  if (Result<void> r = w.exec("COMMIT"); !r) {
    failAll("commit", r.error());
    return;
  }
  revision_.store(next);

  std::vector<std::shared_ptr<const Event>> events;
  events.reserve(batch.size());
  for (WriteOp* op : batch) {
    if (op->event) {
      events.push_back(op->event);
    }
  }
  hub_->publish(events, next);
}

Result<bool> SqliteStore::applyWrite(WriteOp& op, int64_t revision) {
  Connection& w = *writer_;
  const std::string key(op.key);
  const std::string_view name = detail::opName(op.kind);

  bool exists = false;  // the key has a live (non-delete) latest row
  int64_t prevRevision = 0;
  KeyValue prev;
  {
    Result<Stmt> latest = w.statement(detail::kLatestSql);
    if (!latest) {
      return latest.error();
    }
    latest->bind(1, op.key);
    int rc = latest->step();
    if (rc == SQLITE_ROW) {
      prevRevision = latest->int64(0);
      exists = latest->int64(1) == 0;
      if (exists) {
        prev = KeyValue{key, std::string(latest->blob(3)), latest->int64(2), prevRevision};
      }
    } else if (rc != SQLITE_DONE) {
      return w.failure("read latest", rc);
    }
  }

  Event event;
  int64_t createRevision = revision;
  switch (op.kind) {
    case OpKind::kCreate:
      if (exists) {
        op.error = Error::exists(std::string(name) + " " + key + ": already exists (modRevision " +
                                 std::to_string(prev.modRevision) + ")");
        return false;
      }
      op.result = KeyValue{key, std::string(op.value), revision, revision};
      event.type = EventType::kPut;
      event.kv = op.result;
      break;
    case OpKind::kUpdate:
    case OpKind::kRemove:
      if (!exists) {
        op.error = Error::notFound(std::string(name) + " " + key + ": not found");
        return false;
      }
      if ((op.kind == OpKind::kUpdate || op.revision != 0) && op.revision != prev.modRevision) {
        op.error = Error::aborted(std::string(name) + " " + key + ": modRevision is " +
                                  std::to_string(prev.modRevision) + ", expected " +
                                  std::to_string(op.revision));
        return false;
      }
      createRevision = prev.createRevision;
      if (op.kind == OpKind::kUpdate) {
        op.result = KeyValue{key, std::string(op.value), createRevision, revision};
        event.type = EventType::kPut;
        event.kv = op.result;
      } else {
        event.type = EventType::kDelete;
        event.kv = KeyValue{key, "", 0, revision};
        op.result = prev;
      }
      event.prevKv = std::move(prev);
      break;
    case OpKind::kCompact:
      return Error::internal("compaction in a write batch");
  }

  Result<Stmt> insert = w.statement(detail::kInsertSql);
  if (!insert) {
    return insert.error();
  }
  bool isDelete = op.kind == OpKind::kRemove;
  int rc = SQLITE_OK;
  // The revision is assigned here, not by SQLite: the leader is the only
  // writer (the lock file keeps other processes out), so revision_ + 1 is
  // the next id, and the row's create_revision can be filled in the same
  // statement. A clash would fail the primary key, never reuse a revision.
  for (int r :
       {insert->bind(1, revision), insert->bind(2, op.key),
        insert->bind(3, int64_t{op.kind == OpKind::kCreate}), insert->bind(4, int64_t{isDelete}),
        insert->bind(5, createRevision), insert->bind(6, prevRevision),
        insert->bind(7, isDelete ? std::string_view() : op.value)}) {
    if (r != SQLITE_OK) {
      rc = r;
    }
  }
  if (rc != SQLITE_OK) {
    return w.failure("bind", rc);
  }
  if (rc = insert->step(); rc != SQLITE_DONE) {
    return w.failure("insert", rc);
  }
  op.event = std::make_shared<const Event>(std::move(event));
  return true;
}

void SqliteStore::runCompaction(WriteOp& op) {
  Connection& w = *writer_;
  const int64_t target = op.revision;
  const int64_t previous = compacted_.load();
  const int64_t current = revision_.load();
  const std::string what = "compact to revision " + std::to_string(target);
  if (target <= previous) {
    op.error =
        Error::outOfRange(what + ": already compacted up to revision " + std::to_string(previous));
    return;
  }
  if (target > current) {
    op.error =
        Error::outOfRange(what + ": future revision (current " + std::to_string(current) + ")");
    return;
  }

  // Ending the watches whose replay is behind `target` happens before any
  // row is deleted, so a replay read that races with the DELETE is always
  // discarded (see SqliteWatch::next).
  hub_->beginCompaction(target);
  auto fail = [&](const Error& cause) {
    w.rollback();
    hub_->abortCompaction(previous);
    op.error = sqliteError(what, cause);
  };
  if (Result<void> r = w.exec("BEGIN IMMEDIATE"); !r) {
    fail(r.error());
    return;
  }
  for (const char* sql : {detail::kCompactPrevSql, detail::kCompactDeletesSql}) {
    Result<Stmt> stmt = w.statement(sql);
    if (!stmt) {
      fail(stmt.error());
      return;
    }
    stmt->bind(1, previous);
    stmt->bind(2, target);
    if (int rc = stmt->step(); rc != SQLITE_DONE) {
      fail(w.failure("delete", rc));
      return;
    }
  }
  {
    Result<Stmt> stmt = w.statement(detail::kSetCompactedSql);
    if (!stmt) {
      fail(stmt.error());
      return;
    }
    stmt->bind(1, target);
    if (int rc = stmt->step(); rc != SQLITE_DONE) {
      fail(w.failure("record", rc));
      return;
    }
  }
  if (Result<void> r = w.exec("COMMIT"); !r) {
    fail(r.error());
    return;
  }
  compacted_.store(target);
}

}  // namespace sluice::store
