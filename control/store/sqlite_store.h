// SqliteStore: the embedded Store (store.h) on one SQLite file, the default
// for `sluice up` and a single-node `sluice server`.
//
// Layout (kine's log-structured shape): every write appends one row to table
// `log` whose id IS the revision; a key's current value is its latest row
// unless that row is a delete. History stays until compact(). The file is in
// WAL mode with synchronous=FULL, so a write is acknowledged only after its
// commit is fsync'd to the WAL; reads run on their own connections and see a
// consistent snapshot without waiting for writers.
//
// Writes are serialized (SQLite has one writer). With group commit, writers
// that arrive while a commit is in flight are executed together in the next
// transaction: each still gets its own revision and its own result, and each
// is acknowledged only after the shared fsync.
//
// Revisions follow etcd: a new store is at revision 1 (so even an empty
// list reports a revision a watch can resume from; afterRevision 0 would
// mean "from now"), each successful write takes the next one, and failed
// writes take none. compact(R) refuses R at or below the compacted revision
// or above the current one (kOutOfRange, as etcd's ErrCompacted and
// ErrFutureRev), as does list(atRevision) outside that window.
//
// Watches are fanned out in process: after each commit the leader hands the
// new events to every watch whose prefix matches before acknowledging the
// writers, so when a write returns its event is already in every watch.
//
// One store owns a file at a time: revisions and watches live in process
// memory, so open() takes an exclusive flock on "<path>.lock" (a separate
// file: a lock on the database file itself would share the file with
// SQLite's own POSIX locks, which any close() in the process drops). The
// kernel releases it if the process dies.
//
// Threading: every method may be called from any thread. Destroying the store
// ends every open Watch with kUnavailable; no other call may be in flight.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "control/store/store.h"
#include "dataplane/result.h"

namespace sluice::store {

namespace detail {
class Connection;
class ReaderPool;
class WatchHub;
struct WriteOp;
}  // namespace detail

struct SqliteStoreOptions {
  // Batch concurrent writers into one transaction (one fsync for several
  // writes). Off: one transaction per write, for measuring the difference.
  bool groupCommit = true;

  // Most writes one group commit takes. Bounds how long the first writer of a
  // batch waits for the others and the size of one WAL append; 256 small
  // writes are ~100 KiB of WAL, one fsync.
  size_t maxBatch = 256;

  // Events a watch may hold unread before it is ended with kOutOfRange
  // ("fell behind; re-list", as Kubernetes' 410 Gone). A stuck consumer can
  // then neither block writers nor grow memory without bound. 10,000 is a
  // third of a second or more at the store's peak group-commit rate (20-30k
  // writes/s with 8-32 writers in store_bench, fast disk) and tens of
  // seconds at a busy API server's hundreds of writes/s, so only a consumer
  // that is really stuck is cut off. Entries are pointers to events shared
  // by all watches: ~16 B each, 160 KiB per watch at the bound, plus the
  // events themselves.
  size_t watchBufferEvents = 10'000;

  // How long a statement waits on a SQLite lock before failing. Only WAL
  // checkpoints and recovery take locks readers can see.
  std::chrono::milliseconds busyTimeout{5'000};
};

class SqliteStore final : public Store {
 public:
  using Options = SqliteStoreOptions;

  // Opens or creates the store at `path` (parent directory must exist).
  // Errors: kFailedPrecondition if another process or store holds the file or
  // the schema is newer than this binary; kInternal for SQLite/OS failures.
  static Result<std::unique_ptr<SqliteStore>> open(const std::string& path, Options options = {});

  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  Result<int64_t> currentRevision() override;
  Result<std::optional<KeyValue>> get(std::string_view key) override;
  Result<ListResult> list(std::string_view prefix, int64_t limit = 0,
                          std::string_view startAfter = {}, int64_t atRevision = 0) override;
  Result<int64_t> create(std::string_view key, std::string_view value) override;
  Result<KeyValue> update(std::string_view key, std::string_view value,
                          int64_t expectedModRevision) override;
  Result<KeyValue> remove(std::string_view key, int64_t expectedModRevision = 0) override;
  Result<std::unique_ptr<Watch>> watch(std::string_view prefix, int64_t afterRevision) override;
  Result<void> compact(int64_t revision) override;
  Result<int64_t> compactedRevision() override;

  const std::string& path() const { return path_; }

 private:
  friend class detail::WatchHub;

  SqliteStore(std::string path, Options options, int lockFd);

  Result<void> init();

  // Runs `op` through the writer queue; returns when it is committed (or
  // failed). The calling thread may become the leader and commit the ops
  // queued behind it in the same transaction.
  void submit(detail::WriteOp& op);
  void runBatch(const std::vector<detail::WriteOp*>& batch);
  void runCompaction(detail::WriteOp& op);
  // Checks and appends one write as row `revision` inside the open
  // transaction. Ok(true) if it used the revision; Ok(false) if the op
  // failed on its own (kAborted, ...: recorded in op); an Error if SQLite
  // failed and the whole transaction must roll back.
  Result<bool> applyWrite(detail::WriteOp& op, int64_t revision);

  // Events on keys under `prefix` with afterRevision < revision <= upTo, in
  // revision order, at most `limit`; watch replay reads history through this.
  Result<std::vector<Event>> readHistory(std::string_view prefix, int64_t afterRevision,
                                         int64_t upTo, size_t limit);

  Error sqliteError(std::string_view op, const Error& cause) const;

  const std::string path_;
  const Options options_;
  const int lockFd_;  // holds the flock on "<path>.lock"; closed last

  // Writer side. writer_ is used only by the batch leader, the op at
  // writers_.front(); writeMu_ guards the queue, never held across I/O.
  std::unique_ptr<detail::Connection> writer_;
  std::mutex writeMu_;
  std::deque<detail::WriteOp*> writers_;
  // Last committed revision and compacted revision. Written by the leader
  // only, after the commit; read by anyone.
  std::atomic<int64_t> revision_{0};
  std::atomic<int64_t> compacted_{0};

  std::unique_ptr<detail::ReaderPool> readers_;
  // Shared with open watches, which may outlive the store.
  std::shared_ptr<detail::WatchHub> hub_;
};

}  // namespace sluice::store
