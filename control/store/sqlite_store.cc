#include "control/store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <utility>

namespace sluice::store {
namespace detail {
namespace {

// On-disk schema version, kept in SQLite's user_version header field (set by
// kSchemaSql; keep the two equal). A file written by a newer binary is
// refused rather than misread.
constexpr int kSchemaVersion = 1;

// The log: one row per write, id = revision (explicitly assigned, see
// applyWrite; AUTOINCREMENT makes sqlite_sequence remember the highest
// revision even after compaction deletes that row). Per key, rows chain
// through prev_revision (the key's previous row of any kind, 0 for the first
// ever), which gives prevKv without storing old values twice, and lets
// compaction find superseded rows by primary key. create_revision is the
// revision that created this incarnation of the key. `created` and
// `deleted` mark the row's kind; a delete row has an empty value.
//
// log_name_id serves get (latest row of one key: one descent) and list (a
// range scan in key order, where the last row of each key wins).
//
// As in etcd, a new store is at revision 1 and the first write is 2: a list
// of an empty store then reports a revision a watch can resume from without
// a gap (afterRevision 0 would mean "from now").
constexpr const char* kSchemaSql = R"sql(
CREATE TABLE log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name BLOB NOT NULL,
  created INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  create_revision INTEGER NOT NULL,
  prev_revision INTEGER NOT NULL,
  value BLOB NOT NULL
);
CREATE INDEX log_name_id ON log (name, id);
INSERT INTO sqlite_sequence (name, seq) VALUES ('log', 1);
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta (name, value) VALUES ('compacted_revision', 0);
PRAGMA user_version = 1;
)sql";

constexpr const char* kLoadStateSql =
    "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'log'), 0),"
    " (SELECT value FROM meta WHERE name = 'compacted_revision')";

constexpr const char* kLatestSql =
    "SELECT id, deleted, create_revision, value FROM log WHERE name = ?1"
    " ORDER BY id DESC LIMIT 1";

constexpr const char* kInsertSql =
    "INSERT INTO log (id, name, created, deleted, create_revision, prev_revision, value)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

// Every row of every key in [?1, ?2) up to revision ?3, in key then revision
// order: one index range scan; the caller keeps each key's last row.
constexpr const char* kListSql =
    "SELECT id, name, deleted, create_revision, value FROM log"
    " WHERE name >= ?1 AND name < ?2 AND id <= ?3 ORDER BY name, id";
constexpr const char* kListUnboundedSql =
    "SELECT id, name, deleted, create_revision, value FROM log"
    " WHERE name >= ?1 AND id <= ?3 ORDER BY name, id";

// Rows (?1, ?2] under the prefix [?3, ?4), with their previous row for
// prevKv. The unary + keeps the planner on the rowid range (revision order,
// stops at the LIMIT) instead of the name index plus a sort.
constexpr const char* kHistorySql =
    "SELECT r.id, r.name, r.deleted, r.create_revision, r.value,"
    " p.id, p.deleted, p.create_revision, p.value"
    " FROM log r LEFT JOIN log p ON p.id = r.prev_revision"
    " WHERE r.id > ?1 AND r.id <= ?2 AND +r.name >= ?3 AND +r.name < ?4"
    " ORDER BY r.id LIMIT ?5";
constexpr const char* kHistoryUnboundedSql =
    "SELECT r.id, r.name, r.deleted, r.create_revision, r.value,"
    " p.id, p.deleted, p.create_revision, p.value"
    " FROM log r LEFT JOIN log p ON p.id = r.prev_revision"
    " WHERE r.id > ?1 AND r.id <= ?2 AND +r.name >= ?3"
    " ORDER BY r.id LIMIT ?5";

// Compaction from ?1 (the previous compacted revision) to ?2. A row at or
// below ?2 is superseded iff its successor is too; successors at or below ?1
// were handled by earlier compactions, so only rows in (?1, ?2] name
// victims: their predecessors, and themselves if they are deletes.
constexpr const char* kCompactPrevSql =
    "DELETE FROM log WHERE id IN"
    " (SELECT prev_revision FROM log WHERE id > ?1 AND id <= ?2 AND prev_revision > 0)";
constexpr const char* kCompactDeletesSql =
    "DELETE FROM log WHERE id > ?1 AND id <= ?2 AND deleted = 1";
constexpr const char* kSetCompactedSql =
    "UPDATE meta SET value = ?1 WHERE name = 'compacted_revision'";

// Replay rows read per Watch::next(): bounds the memory and the time one
// call spends in SQLite when a watch starts far back in history.
constexpr size_t kReplayChunk = 512;

// Idle reader connections kept open; more concurrent readers open and close
// their own. Each keeps SQLite's default 2 MiB page cache: store_bench's
// 150,000-key list ran no faster with 16 MiB, as the kernel caches the file.
constexpr size_t kMaxIdleReaders = 8;

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

bool hasPrefix(std::string_view key, std::string_view prefix) {
  return key.substr(0, prefix.size()) == prefix;
}

// A cached prepared statement in use: resets on scope exit, so an
// unfinished SELECT never keeps its read transaction (and WAL snapshot) open.
class Stmt {
 public:
  explicit Stmt(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Stmt() {
    if (stmt_) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }
  Stmt(Stmt&& other) noexcept : stmt_(std::exchange(other.stmt_, nullptr)) {}
  Stmt& operator=(Stmt&&) = delete;

  int bind(int index, int64_t v) { return sqlite3_bind_int64(stmt_, index, v); }
  // SQLITE_STATIC: the caller's bytes outlive the statement's use. A null
  // pointer would bind NULL, hence "" for empty views.
  int bind(int index, std::string_view v) {
    return sqlite3_bind_blob64(stmt_, index, v.empty() ? "" : v.data(), v.size(), SQLITE_STATIC);
  }
  int step() { return sqlite3_step(stmt_); }

  int64_t int64(int column) { return sqlite3_column_int64(stmt_, column); }
  bool isNull(int column) { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string_view blob(int column) {
    const void* data = sqlite3_column_blob(stmt_, column);
    int size = sqlite3_column_bytes(stmt_, column);
    return data ? std::string_view(static_cast<const char*>(data), static_cast<size_t>(size))
                : std::string_view();
  }

 private:
  sqlite3_stmt* stmt_;
};

}  // namespace

// One SQLite connection with its prepared statements. Not thread-safe: used
// by one thread at a time (the batch leader, or a reader holding a lease),
// so it is opened SQLITE_OPEN_NOMUTEX.
class Connection {
 public:
  static Result<std::unique_ptr<Connection>> open(const std::string& path,
                                                  std::chrono::milliseconds busyTimeout) {
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(
        path.c_str(), &db,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE,
        nullptr);
    auto conn = std::unique_ptr<Connection>(new Connection(db));
    if (rc != SQLITE_OK) {
      return conn->failure("open", rc);
    }
    sqlite3_busy_timeout(db, static_cast<int>(busyTimeout.count()));
    // FULL: the WAL is fsync'd at every commit, so an acknowledged write
    // survives power loss, not only a process crash (NORMAL syncs only at
    // checkpoints and can lose the last commits).
    if (Result<void> r = conn->exec("PRAGMA synchronous = FULL"); !r) {
      return r.error();
    }
    return conn;
  }

  ~Connection() {
    for (auto& [sql, stmt] : statements_) {
      sqlite3_finalize(stmt);
    }
    sqlite3_close_v2(db_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The prepared statement for `sql`, cached by address: `sql` must be one
  // of the static strings above.
  Result<Stmt> statement(const char* sql) {
    auto it = statements_.find(sql);
    if (it == statements_.end()) {
      sqlite3_stmt* stmt = nullptr;
      int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      if (rc != SQLITE_OK) {
        return failure("prepare", rc);
      }
      it = statements_.emplace(sql, stmt).first;
    }
    return Stmt(it->second);
  }

  Result<void> exec(const char* sql) {
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      return failure(sql, rc);
    }
    return okResult();
  }

  // Ends a transaction that did not commit; harmless if none is open (SQLite
  // rolls back by itself after some errors).
  void rollback() {
    if (!sqlite3_get_autocommit(db_)) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }

  // An Error carrying SQLite's message for the last failure on this
  // connection, e.g. "step: disk I/O error (sqlite code 1034)".
  Error failure(std::string_view what, int rc) const {
    const char* msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    return Error::internal(std::string(what) + ": " + msg + " (sqlite code " + std::to_string(rc) +
                           ")");
  }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}

  sqlite3* db_;
  std::unordered_map<const char*, sqlite3_stmt*> statements_;
};

// Reader connections, reused across calls. WAL lets any number of them read
// while the writer commits; each sees the snapshot of its transaction.
class ReaderPool {
 public:
  ReaderPool(std::string path, std::chrono::milliseconds busyTimeout)
      : path_(std::move(path)), busyTimeout_(busyTimeout) {}

  // A connection checked out for one call, returned on scope exit.
  class Lease {
   public:
    Lease(ReaderPool* pool, std::unique_ptr<Connection> conn)
        : pool_(pool), conn_(std::move(conn)) {}
    ~Lease() {
      if (conn_) {
        conn_->rollback();  // a failed read may leave its BEGIN open
        pool_->release(std::move(conn_));
      }
    }
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = delete;
    Connection& operator*() const { return *conn_; }
    Connection* operator->() const { return conn_.get(); }

   private:
    ReaderPool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  Result<Lease> acquire() {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        std::unique_ptr<Connection> conn = std::move(idle_.back());
        idle_.pop_back();
        return Lease(this, std::move(conn));
      }
    }
    Result<std::unique_ptr<Connection>> conn = Connection::open(path_, busyTimeout_);
    if (!conn) {
      return conn.error();
    }
    return Lease(this, std::move(conn).value());
  }

 private:
  void release(std::unique_ptr<Connection> conn) {
    std::lock_guard lock(mu_);
    if (idle_.size() < kMaxIdleReaders) {
      idle_.push_back(std::move(conn));
    }
  }

  const std::string path_;
  const std::chrono::milliseconds busyTimeout_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

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

// One watch's state, shared by the Watch handle (consumer side) and the hub
// (producer side). Fields below `mu` are guarded by it.
struct WatchState {
  WatchState(std::string_view p, int64_t after, int64_t end, size_t cap)
      : prefix(p), capacity(cap), liveAfter(std::max(after, end)), replayEnd(end), cursor(after) {}

  const std::string prefix;
  const size_t capacity;  // most buffered live events before overflow
  // Live events with revision <= liveAfter are not delivered: the replay
  // (or the caller's afterRevision) covers them.
  const int64_t liveAfter;
  // History (cursor, replayEnd] is read from the table; events after
  // replayEnd arrive through `buffer`. cursor >= replayEnd: replay done.
  const int64_t replayEnd;

  std::mutex mu;
  std::condition_variable wake;  // buffer gained events, or the watch ended
  int64_t cursor;
  std::deque<std::shared_ptr<const Event>> buffer;
  std::optional<Error> ended;

  // Caller holds mu.
  void endLocked(Error why) {
    if (!ended) {
      ended = std::move(why);
      buffer.clear();
      wake.notify_all();
    }
  }
};

// In-process fan-out of committed events, and the registry of open watches.
// mu_ orders registration against publication: a watch registered under mu_
// sees, from the table, exactly the revisions <= published_ and, from its
// buffer, exactly those after. Lock order: WatchHub::mu_, then WatchState::mu.
class WatchHub {
 public:
  WatchHub(SqliteStore* store, int64_t published, int64_t compacted)
      : store_(store), published_(published), compacted_(compacted) {}

  Result<std::shared_ptr<WatchState>> add(std::string_view prefix, int64_t afterRevision,
                                          size_t capacity) {
    std::lock_guard lock(mu_);
    if (!store_) {
      return Error::unavailable("watch " + std::string(prefix) + ": store closed");
    }
    if (afterRevision != 0 && afterRevision < compacted_) {
      return Error::outOfRange("watch " + std::string(prefix) + " from revision " +
                               std::to_string(afterRevision) + ": compacted up to revision " +
                               std::to_string(compacted_) + "; re-list");
    }
    // afterRevision 0 = from now on. Otherwise history (afterRevision,
    // published_] is replayed from the table; every later event is
    // published after this point and lands in the buffer.
    int64_t after = afterRevision == 0 ? published_ : afterRevision;
    auto state = std::make_shared<WatchState>(prefix, after, published_, capacity);
    watches_.push_back(state);
    return state;
  }

  void remove(const WatchState* state) {
    std::lock_guard lock(mu_);
    std::erase_if(watches_, [&](const auto& w) { return w.get() == state; });
  }

  // Called by the batch leader after the commit of revisions up to `last`,
  // with that batch's events in revision order.
  void publish(const std::vector<std::shared_ptr<const Event>>& events, int64_t last) {
    std::lock_guard lock(mu_);
    published_ = last;
    std::erase_if(watches_, [&](const std::shared_ptr<WatchState>& w) {
      std::lock_guard wlock(w->mu);
      if (w->ended) {
        return true;
      }
      bool added = false;
      for (const auto& event : events) {
        if (event->kv.modRevision <= w->liveAfter || !hasPrefix(event->kv.key, w->prefix)) {
          continue;
        }
        if (w->buffer.size() >= w->capacity) {
          // Ending it keeps writers from blocking on a slow consumer and
          // bounds memory; the consumer re-lists, as on 410 Gone.
          w->endLocked(Error::outOfRange("watch " + w->prefix + ": fell behind by " +
                                         std::to_string(w->capacity) + " events; re-list"));
          return true;
        }
        w->buffer.push_back(event);
        added = true;
      }
      if (added) {
        w->wake.notify_all();
      }
      return false;
    });
  }

  // Before compaction deletes rows: refuses new watches below `revision` and
  // ends watches whose replay has not yet passed it (their remaining
  // history is about to vanish).
  void beginCompaction(int64_t revision) {
    std::lock_guard lock(mu_);
    compacted_ = revision;
    std::erase_if(watches_, [&](const std::shared_ptr<WatchState>& w) {
      std::lock_guard wlock(w->mu);
      if (w->cursor < w->replayEnd && w->cursor < revision) {
        w->endLocked(Error::outOfRange("watch " + w->prefix + ": history at revision " +
                                       std::to_string(w->cursor) + " compacted up to " +
                                       std::to_string(revision) + "; re-list"));
      }
      return w->ended.has_value();
    });
  }

  void abortCompaction(int64_t previous) {
    std::lock_guard lock(mu_);
    compacted_ = previous;
  }

  // The next chunk of `w`'s history. The store is kept alive by counting
  // the read in activeReplays_, which close() waits out.
  Result<std::vector<Event>> replay(WatchState& w, int64_t from, int64_t to) {
    SqliteStore* store = nullptr;
    {
      std::lock_guard lock(mu_);
      if (!store_) {
        return Error::unavailable("watch " + w.prefix + ": store closed");
      }
      store = store_;
      ++activeReplays_;
    }
    Result<std::vector<Event>> rows = store->readHistory(w.prefix, from, to, kReplayChunk);
    std::lock_guard lock(mu_);
    if (--activeReplays_ == 0) {
      replaysDone_.notify_all();
    }
    return rows;
  }

  // Store destruction: ends every watch and waits for replays in flight.
  void close() {
    std::unique_lock lock(mu_);
    store_ = nullptr;
    for (const auto& w : watches_) {
      std::lock_guard wlock(w->mu);
      w->endLocked(Error::unavailable("watch " + w->prefix + ": store closed"));
    }
    watches_.clear();
    replaysDone_.wait(lock, [&] { return activeReplays_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable replaysDone_;
  SqliteStore* store_;  // null once closed
  int64_t published_;   // last revision handed to watches
  int64_t compacted_;
  size_t activeReplays_ = 0;
  std::vector<std::shared_ptr<WatchState>> watches_;
};

namespace {

// Longest single wait in Watch::next(); callers loop anyway.
constexpr std::chrono::milliseconds kMaxWait = std::chrono::hours(24);

class SqliteWatch final : public Watch {
 public:
  SqliteWatch(std::shared_ptr<WatchHub> hub, std::shared_ptr<WatchState> state)
      : hub_(std::move(hub)), state_(std::move(state)) {}
  ~SqliteWatch() override { cancel(); }

  Result<void> next(std::vector<Event>& out, std::chrono::milliseconds timeout) override {
    WatchState& w = *state_;
    int64_t from = 0;
    {
      std::lock_guard lock(w.mu);
      if (w.ended) {
        return *w.ended;
      }
      from = w.cursor;
    }
    if (from < w.replayEnd) {
      Result<std::vector<Event>> rows = hub_->replay(w, from, w.replayEnd);
      std::lock_guard lock(w.mu);
      if (w.ended) {
        // Compaction or close raced with the read; its rows may be partial.
        return *w.ended;
      }
      if (!rows) {
        w.endLocked(rows.error().wrap("watch " + w.prefix + ": replay"));
        return *w.ended;
      }
      w.cursor = rows->size() < kReplayChunk ? w.replayEnd : rows->back().kv.modRevision;
      if (!rows->empty()) {
        std::move(rows->begin(), rows->end(), std::back_inserter(out));
        return okResult();
      }
    }
    // Clamped so now() + timeout cannot overflow the clock.
    timeout = std::clamp(timeout, std::chrono::milliseconds(0), kMaxWait);
    std::deque<std::shared_ptr<const Event>> taken;
    {
      std::unique_lock lock(w.mu);
      w.wake.wait_for(lock, timeout, [&] { return w.ended || !w.buffer.empty(); });
      if (w.ended) {
        return *w.ended;
      }
      taken.swap(w.buffer);
    }
    // Copied outside the lock: the publishing writer never waits on this.
    for (const auto& event : taken) {
      out.push_back(*event);
    }
    return okResult();
  }

  void cancel() override {
    hub_->remove(state_.get());
    std::lock_guard lock(state_->mu);
    state_->endLocked(Error::unavailable("watch " + state_->prefix + ": cancelled"));
  }

 private:
  std::shared_ptr<WatchHub> hub_;
  std::shared_ptr<WatchState> state_;
};

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
