// SqliteStore internals (not part of the store's API): the on-disk schema and
// the SQL run against it, and thin wrappers over SQLite connections and
// prepared statements. See sqlite_store.h for the layout and its guarantees.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dataplane/result.h"

namespace sluice::store::detail {

// On-disk schema version, kept in SQLite's user_version header field (set by
// kSchemaSql; keep the two equal). A file written by a newer binary is
// refused rather than misread.
inline constexpr int kSchemaVersion = 1;

// The SQL below is held in inline arrays, not pointers: Connection caches
// prepared statements by the string's address, and an inline array is one
// object with one address in every translation unit that uses it.

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
inline constexpr char kSchemaSql[] = R"sql(
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

inline constexpr char kLoadStateSql[] =
    "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'log'), 0),"
    " (SELECT value FROM meta WHERE name = 'compacted_revision')";

inline constexpr char kLatestSql[] =
    "SELECT id, deleted, create_revision, value FROM log WHERE name = ?1"
    " ORDER BY id DESC LIMIT 1";

inline constexpr char kInsertSql[] =
    "INSERT INTO log (id, name, created, deleted, create_revision, prev_revision, value)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

// Every row of every key in [?1, ?2) up to revision ?3, in key then revision
// order: one index range scan; the caller keeps each key's last row.
inline constexpr char kListSql[] =
    "SELECT id, name, deleted, create_revision, value FROM log"
    " WHERE name >= ?1 AND name < ?2 AND id <= ?3 ORDER BY name, id";
inline constexpr char kListUnboundedSql[] =
    "SELECT id, name, deleted, create_revision, value FROM log"
    " WHERE name >= ?1 AND id <= ?3 ORDER BY name, id";

// Rows (?1, ?2] under the prefix [?3, ?4), with their previous row for
// prevKv. The unary + keeps the planner on the rowid range (revision order,
// stops at the LIMIT) instead of the name index plus a sort.
inline constexpr char kHistorySql[] =
    "SELECT r.id, r.name, r.deleted, r.create_revision, r.value,"
    " p.id, p.deleted, p.create_revision, p.value"
    " FROM log r LEFT JOIN log p ON p.id = r.prev_revision"
    " WHERE r.id > ?1 AND r.id <= ?2 AND +r.name >= ?3 AND +r.name < ?4"
    " ORDER BY r.id LIMIT ?5";
inline constexpr char kHistoryUnboundedSql[] =
    "SELECT r.id, r.name, r.deleted, r.create_revision, r.value,"
    " p.id, p.deleted, p.create_revision, p.value"
    " FROM log r LEFT JOIN log p ON p.id = r.prev_revision"
    " WHERE r.id > ?1 AND r.id <= ?2 AND +r.name >= ?3"
    " ORDER BY r.id LIMIT ?5";

// Compaction from ?1 (the previous compacted revision) to ?2. A row at or
// below ?2 is superseded iff its successor is too; successors at or below ?1
// were handled by earlier compactions, so only rows in (?1, ?2] name
// victims: their predecessors, and themselves if they are deletes.
inline constexpr char kCompactPrevSql[] =
    "DELETE FROM log WHERE id IN"
    " (SELECT prev_revision FROM log WHERE id > ?1 AND id <= ?2 AND prev_revision > 0)";
inline constexpr char kCompactDeletesSql[] =
    "DELETE FROM log WHERE id > ?1 AND id <= ?2 AND deleted = 1";
inline constexpr char kSetCompactedSql[] =
    "UPDATE meta SET value = ?1 WHERE name = 'compacted_revision'";

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

// One SQLite connection with its prepared statements. Not thread-safe: used
// by one thread at a time (the batch leader, or a reader holding a lease),
// so it is opened SQLITE_OPEN_NOMUTEX.
class Connection {
 public:
  static Result<std::unique_ptr<Connection>> open(const std::string& path,
                                                  std::chrono::milliseconds busyTimeout);

  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The prepared statement for `sql`, cached by address: `sql` must be one
  // of the static strings above (or a string literal).
  Result<Stmt> statement(const char* sql);

  Result<void> exec(const char* sql);

  // Ends a transaction that did not commit; harmless if none is open (SQLite
  // rolls back by itself after some errors).
  void rollback();

  // An Error carrying SQLite's message for the last failure on this
  // connection, e.g. "step: disk I/O error (sqlite code 1034)".
  Error failure(std::string_view what, int rc) const;

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

  Result<Lease> acquire();

 private:
  void release(std::unique_ptr<Connection> conn);

  const std::string path_;
  const std::chrono::milliseconds busyTimeout_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

}  // namespace sluice::store::detail
