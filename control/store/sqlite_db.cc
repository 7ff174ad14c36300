#include "control/store/sqlite_db.h"

namespace sluice::store::detail {
namespace {

// Idle reader connections kept open; more concurrent readers open and close
// their own. Each keeps SQLite's default 2 MiB page cache: store_bench's
// 150,000-key list ran no faster with 16 MiB, as the kernel caches the file.
constexpr size_t kMaxIdleReaders = 8;

}  // namespace

Result<std::unique_ptr<Connection>> Connection::open(const std::string& path,
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

Connection::~Connection() {
  for (auto& [sql, stmt] : statements_) {
    sqlite3_finalize(stmt);
  }
  sqlite3_close_v2(db_);
}

Result<Stmt> Connection::statement(const char* sql) {
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

Result<void> Connection::exec(const char* sql) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    return failure(sql, rc);
  }
  return okResult();
}

void Connection::rollback() {
  if (!sqlite3_get_autocommit(db_)) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

Error Connection::failure(std::string_view what, int rc) const {
  const char* msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  return Error::internal(std::string(what) + ": " + msg + " (sqlite code " + std::to_string(rc) +
                         ")");
}

Result<ReaderPool::Lease> ReaderPool::acquire() {
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

void ReaderPool::release(std::unique_ptr<Connection> conn) {
  std::lock_guard lock(mu_);
  if (idle_.size() < kMaxIdleReaders) {
    idle_.push_back(std::move(conn));
  }
}

}  // namespace sluice::store::detail
