#include "control/store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/store/sqlite_db.h"
#include "control/store/sqlite_watch.h"
#include "control/store/sqlite_writer.h"

namespace sluice::store {
namespace detail {
namespace {

// The smallest key greater than every key starting with `prefix`, or nullopt
// when there is none (empty prefix, or all 0xff bytes).
std::optional<std::string> prefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto last = static_cast<unsigned char>(end.back());
    if (last != 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::nullopt;
}

Result<void> syncDirectory(const std::string& file) {
  std::string dir = file.substr(0, file.find_last_of('/') + 1);
  if (dir.empty()) {
    dir = ".";
  }
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    Error error = Error::internal("sync directory " + dir + ": " + std::strerror(errno));
    if (fd >= 0) {
      ::close(fd);
    }
    return error;
  }
  ::close(fd);
  return okResult();
}

// Largest key + value accepted. SQLite refuses rows over SQLITE_MAX_LENGTH
// (10^9 bytes by default); checking up front fails only the offending
// write, where a bind error inside a group commit would fail its batch.
constexpr size_t kMaxEntryBytes = 512u << 20;

Error invalidKey(std::string_view op) {
  return Error::invalid(std::string(op) + ": key must not be empty");
}

Result<void> checkEntry(std::string_view op, std::string_view key, std::string_view value) {
  if (key.empty()) {
    return invalidKey(op);
  }
  if (key.size() + value.size() > kMaxEntryBytes) {
    return Error::invalid(std::string(op) + " " + std::string(key.substr(0, 256)) + ": " +
                          std::to_string(key.size() + value.size()) + " bytes exceeds the " +
                          std::to_string(kMaxEntryBytes) + "-byte limit");
  }
  return okResult();
}

}  // namespace
}  // namespace detail

using detail::Connection;
using detail::OpKind;
using detail::Stmt;
using detail::WriteOp;

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::string& path, Options options) {
  std::string lockPath = path + ".lock";
  int fd = ::open(lockPath.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Error::internal("sqlite store " + path + ": open " + lockPath + ": " +
                           std::strerror(errno));
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return Error{ErrorCode::kFailedPrecondition, "sqlite store " + path +
                                                       ": in use by another store or process (" +
                                                       lockPath + " is locked)"};
    }
    return Error::internal("sqlite store " + path + ": lock " + lockPath + ": " +
                           std::strerror(err));
  }
  // The store holds every object, Secrets included: owner-only, like etcd's
  // data directory. SQLite gives the -wal and -shm files the database
  // file's mode, so creating it first is enough. (Safe before SQLite opens
  // it: this process holds no SQLite locks on the file yet.)
  if (int dbFd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600); dbFd >= 0) {
    ::close(dbFd);
  } else {
    Error error = Error::internal("sqlite store " + path + ": create: " + std::strerror(errno));
    ::close(fd);
    return error;
  }
  options.maxBatch = std::max<size_t>(options.maxBatch, 1);
  options.watchBufferEvents = std::max<size_t>(options.watchBufferEvents, 1);
  std::unique_ptr<SqliteStore> store(new SqliteStore(path, options, fd));
  if (Result<void> r = store->init(); !r) {
    return r.error();
  }
  return store;
}

SqliteStore::SqliteStore(std::string path, Options options, int lockFd)
    : path_(std::move(path)), options_(options), lockFd_(lockFd) {}

SqliteStore::~SqliteStore() {
  if (hub_) {
    hub_->close();
  }
  readers_.reset();
  writer_.reset();
  ::close(lockFd_);
}

Error SqliteStore::sqliteError(std::string_view op, const Error& cause) const {
  return cause.wrap("sqlite store " + path_ + ": " + std::string(op));
}

Result<void> SqliteStore::init() {
  Result<std::unique_ptr<Connection>> conn = Connection::open(path_, options_.busyTimeout);
  if (!conn) {
    return sqliteError("open", conn.error());
  }
  writer_ = std::move(conn).value();
  Connection& w = *writer_;

  {
    // journal_mode is persistent in the file; readers inherit it.
    Result<Stmt> mode = w.statement("PRAGMA journal_mode = WAL");
    if (!mode) {
      return sqliteError("set WAL mode", mode.error());
    }
    if (mode->step() != SQLITE_ROW || mode->blob(0) != "wal") {
      return sqliteError("set WAL mode",
                         Error::internal("journal_mode is not wal; the file system may lack "
                                         "shared memory support"));
    }
  }
  // The WAL keeps its high-water size after a checkpoint so steady-state
  // commits overwrite it in place (an fdatasync without metadata); one huge
  // transaction (a large compaction) should not pin that much disk forever.
  if (Result<void> r = w.exec("PRAGMA journal_size_limit = 67108864"); !r) {  // 64 MiB
    return sqliteError("set WAL size limit", r.error());
  }

  int64_t version = 0;
  {
    Result<Stmt> stmt = w.statement("PRAGMA user_version");
    if (!stmt) {
      return sqliteError("read schema version", stmt.error());
    }
    if (int rc = stmt->step(); rc != SQLITE_ROW) {
      return sqliteError("read schema version", w.failure("step", rc));
    }
    version = stmt->int64(0);
  }
  if (version > detail::kSchemaVersion) {
    return Error{ErrorCode::kFailedPrecondition,
                 "sqlite store " + path_ + ": schema version " + std::to_string(version) +
                     " is newer than this binary's " + std::to_string(detail::kSchemaVersion)};
  }
  if (version == 0) {
    if (Result<void> r = w.exec("BEGIN IMMEDIATE"); !r) {
      return sqliteError("create schema", r.error());
    }
    if (Result<void> r = w.exec(detail::kSchemaSql); !r) {
      w.rollback();
      return sqliteError("create schema", r.error());
    }
    if (Result<void> r = w.exec("COMMIT"); !r) {
      w.rollback();
      return sqliteError("create schema", r.error());
    }
    // SQLite syncs the directory when it creates the WAL, not the database
    // file; without this a power cut could keep the WAL and lose the file.
    if (Result<void> r = detail::syncDirectory(path_); !r) {
      return r.error().wrap("sqlite store " + path_);
    }
  }

  Result<Stmt> state = w.statement(detail::kLoadStateSql);
  if (!state) {
    return sqliteError("load revision", state.error());
  }
  if (int rc = state->step(); rc != SQLITE_ROW) {
    return sqliteError("load revision", w.failure("step", rc));
  }
  revision_ = state->int64(0);
  compacted_ = state->int64(1);

  readers_ = std::make_unique<detail::ReaderPool>(path_, options_.busyTimeout);
  hub_ = std::make_shared<detail::WatchHub>(this, revision_.load(), compacted_.load());
  return okResult();
}

Result<int64_t> SqliteStore::currentRevision() { return revision_.load(); }

Result<int64_t> SqliteStore::compactedRevision() { return compacted_.load(); }

Result<std::optional<KeyValue>> SqliteStore::get(std::string_view key) {
  if (key.empty()) {
    return detail::invalidKey("get");
  }
  auto op = [&] { return "get " + std::string(key); };
  Result<detail::ReaderPool::Lease> conn = readers_->acquire();
  if (!conn) {
    return sqliteError(op(), conn.error());
  }
  Result<Stmt> stmt = (*conn)->statement(detail::kLatestSql);
  if (!stmt) {
    return sqliteError(op(), stmt.error());
  }
  stmt->bind(1, key);
  int rc = stmt->step();
  if (rc == SQLITE_DONE) {
    return std::optional<KeyValue>();
  }
  if (rc != SQLITE_ROW) {
    return sqliteError(op(), (*conn)->failure("step", rc));
  }
  if (stmt->int64(1) != 0) {
    return std::optional<KeyValue>();  // latest row is a delete
  }
  return std::optional<KeyValue>(
      KeyValue{std::string(key), std::string(stmt->blob(3)), stmt->int64(2), stmt->int64(0)});
}

Result<ListResult> SqliteStore::list(std::string_view prefix, int64_t limit,
                                     std::string_view startAfter, int64_t atRevision) {
  auto op = [&] { return "list " + std::string(prefix); };
  if (limit < 0 || atRevision < 0) {
    return Error::invalid(op() + ": limit and revision must not be negative");
  }
  Result<detail::ReaderPool::Lease> lease = readers_->acquire();
  if (!lease) {
    return sqliteError(op(), lease.error());
  }
  Connection& conn = **lease;

  // One read transaction: the revision, the compaction mark and the rows
  // all come from the same WAL snapshot.
  if (Result<void> r = conn.exec("BEGIN"); !r) {
    return sqliteError(op(), r.error());
  }
  ListResult result;
  {
    Result<Stmt> state = conn.statement(detail::kLoadStateSql);
    if (!state) {
      return sqliteError(op(), state.error());
    }
    if (int rc = state->step(); rc != SQLITE_ROW) {
      return sqliteError(op(), conn.failure("step", rc));
    }
    int64_t current = state->int64(0);
    int64_t compacted = state->int64(1);
    if (atRevision == 0) {
      result.revision = current;
    } else if (atRevision < compacted) {
      return Error::outOfRange(op() + " at revision " + std::to_string(atRevision) +
                               ": compacted up to revision " + std::to_string(compacted));
    } else if (atRevision > current) {
      return Error::outOfRange(op() + " at revision " + std::to_string(atRevision) +
                               ": future revision (current " + std::to_string(current) + ")");
    } else {
      result.revision = atRevision;
    }
  }

  // Keys > startAfter are exactly keys >= startAfter + '\0', so both
  // bounds become one lower bound for the index range.
  std::string lower(prefix);
  if (!startAfter.empty()) {
    std::string successor = std::string(startAfter) + '\0';
    lower = std::max(lower, successor);
  }
  std::optional<std::string> upper = detail::prefixEnd(prefix);
  if (upper && lower >= *upper) {
    return result;
  }

  Result<Stmt> stmt = conn.statement(upper ? detail::kListSql : detail::kListUnboundedSql);
  if (!stmt) {
    return sqliteError(op(), stmt.error());
  }
  stmt->bind(1, lower);
  if (upper) {
    stmt->bind(2, *upper);
  }
  stmt->bind(3, result.revision);

  // Rows arrive by key, then revision: a key's last row is its state at
  // result.revision. Read one past `limit` to learn whether there is more.
  auto wanted = static_cast<size_t>(limit);
  bool havePending = false;
  bool pendingDeleted = false;
  KeyValue pending;
  auto flush = [&] {
    if (havePending && !pendingDeleted) {
      result.kvs.push_back(std::move(pending));
    }
    havePending = false;
  };
  int rc = SQLITE_ROW;
  while ((rc = stmt->step()) == SQLITE_ROW) {
    std::string_view name = stmt->blob(1);
    if (havePending && name != pending.key) {
      flush();
      if (limit > 0 && result.kvs.size() > wanted) {
        break;
      }
    }
    havePending = true;
    pendingDeleted = stmt->int64(2) != 0;
    pending.key.assign(name);
    pending.value.assign(stmt->blob(4));
    pending.createRevision = stmt->int64(3);
    pending.modRevision = stmt->int64(0);
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    return sqliteError(op(), conn.failure("step", rc));
  }
  flush();
  if (limit > 0 && result.kvs.size() > wanted) {
    result.kvs.resize(wanted);
    result.more = true;
  }
  return result;
}

Result<std::vector<Event>> SqliteStore::readHistory(std::string_view prefix, int64_t afterRevision,
                                                    int64_t upTo, size_t limit) {
  auto op = [&] { return "read history of " + std::string(prefix); };
  Result<detail::ReaderPool::Lease> lease = readers_->acquire();
  if (!lease) {
    return sqliteError(op(), lease.error());
  }
  Connection& conn = **lease;
  std::optional<std::string> upper = detail::prefixEnd(prefix);
  Result<Stmt> stmt = conn.statement(upper ? detail::kHistorySql : detail::kHistoryUnboundedSql);
  if (!stmt) {
    return sqliteError(op(), stmt.error());
  }
  stmt->bind(1, afterRevision);
  stmt->bind(2, upTo);
  stmt->bind(3, prefix);
  if (upper) {
    stmt->bind(4, *upper);
  }
  stmt->bind(5, static_cast<int64_t>(limit));

  std::vector<Event> events;
  int rc = SQLITE_ROW;
  while ((rc = stmt->step()) == SQLITE_ROW) {
    Event& e = events.emplace_back();
    e.kv.key.assign(stmt->blob(1));
    e.kv.modRevision = stmt->int64(0);
    if (stmt->int64(2) != 0) {
      e.type = EventType::kDelete;  // key and revision only, as etcd
    } else {
      e.type = EventType::kPut;
      e.kv.value.assign(stmt->blob(4));
      e.kv.createRevision = stmt->int64(3);
    }
    // The previous row is absent for a first create, and a delete row for a
    // re-create: no prevKv either way. Compaction keeps every other
    // previous row of a row above the compacted revision (it is that key's
    // latest row at or below it).
    if (!stmt->isNull(5) && stmt->int64(6) == 0) {
      e.prevKv = KeyValue{e.kv.key, std::string(stmt->blob(8)), stmt->int64(7), stmt->int64(5)};
    }
  }
  if (rc != SQLITE_DONE) {
    return sqliteError(op(), conn.failure("step", rc));
  }
  return events;
}

Result<int64_t> SqliteStore::create(std::string_view key, std::string_view value) {
  if (Result<void> r = detail::checkEntry("create", key, value); !r) {
    return r.error();
  }
  WriteOp op;
  op.kind = OpKind::kCreate;
  op.key = key;
  op.value = value;
  submit(op);
  if (op.error) {
    return *op.error;
  }
  return op.result.modRevision;
}

Result<KeyValue> SqliteStore::update(std::string_view key, std::string_view value,
                                     int64_t expectedModRevision) {
  if (Result<void> r = detail::checkEntry("update", key, value); !r) {
    return r.error();
  }
  WriteOp op;
  op.kind = OpKind::kUpdate;
  op.key = key;
  op.value = value;
  op.revision = expectedModRevision;
  submit(op);
  if (op.error) {
    return *op.error;
  }
  return std::move(op.result);
}

Result<KeyValue> SqliteStore::remove(std::string_view key, int64_t expectedModRevision) {
  if (Result<void> r = detail::checkEntry("remove", key, {}); !r) {
    return r.error();
  }
  WriteOp op;
  op.kind = OpKind::kRemove;
  op.key = key;
  op.revision = expectedModRevision;
  submit(op);
  if (op.error) {
    return *op.error;
  }
  return std::move(op.result);
}

Result<void> SqliteStore::compact(int64_t revision) {
  if (revision <= 0) {
    return Error::invalid("compact to revision " + std::to_string(revision) +
                          ": revision must be positive");
  }
  WriteOp op;
  op.kind = OpKind::kCompact;
  op.revision = revision;
  submit(op);
  if (op.error) {
    return *op.error;
  }
  return okResult();
}

Result<std::unique_ptr<Watch>> SqliteStore::watch(std::string_view prefix, int64_t afterRevision) {
  if (afterRevision < 0) {
    return Error::invalid("watch " + std::string(prefix) + ": negative revision");
  }
  Result<std::shared_ptr<detail::WatchState>> state =
      hub_->add(prefix, afterRevision, options_.watchBufferEvents);
  if (!state) {
    return state.error();
  }
  return std::unique_ptr<Watch>(
      std::make_unique<detail::SqliteWatch>(hub_, std::move(state).value()));
}

}  // namespace sluice::store
