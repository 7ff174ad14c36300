// SqliteStore across processes and threads: reopen, file handling, concurrent
// writers and CAS, consistent lists during writes, and acknowledged writes
// surviving SIGKILL.
#include "control/store/sqlite_store.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

extern char** environ;
#include "tests/control/store/sqlite_store_fixture.h"

namespace sluice::store {
namespace {

using namespace std::chrono_literals;
using namespace testing;  // NOLINT
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Closing and reopening the file restores revision, values, history and
// the compacted revision; revisions continue, even when compaction removed
// the newest row.
TEST_F(SqliteStoreTest, ReopenRestoresRevisionDataAndCompaction) {
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    ASSERT_OK(store->create("/o/a", "a1"));     // 2
    ASSERT_OK(store->update("/o/a", "a2", 2));  // 3
    ASSERT_OK(store->create("/o/b", "b1"));     // 4
    ASSERT_OK(store->compact(3));
    ASSERT_OK(store->remove("/o/b"));  // 5
    ASSERT_OK(store->compact(5));      // deletes row 5, the newest
  }
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSIGN_OR_FAIL(int64_t current, store->currentRevision());
  EXPECT_EQ(current, 5);
  ASSIGN_OR_FAIL(int64_t compacted, store->compactedRevision());
  EXPECT_EQ(compacted, 5);
  ASSIGN_OR_FAIL(auto a, store->get("/o/a"));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(show(*a), "/o/a=a2 @3 (created 2)");
  ASSIGN_OR_FAIL(auto b, store->get("/o/b"));
  EXPECT_FALSE(b.has_value());
  EXPECT_CODE(store->list("/o/", 0, {}, 4), ErrorCode::kOutOfRange);
  ASSIGN_OR_FAIL(int64_t next, store->create("/o/c", "c1"));
  EXPECT_EQ(next, 6);
}

// One store per file: a second open (same or another process) is refused
// until the first closes.
TEST_F(SqliteStoreTest, SecondOpenOfSameFileIsRefused) {
  auto first = open();
  ASSERT_NE(first, nullptr);
  EXPECT_CODE(SqliteStore::open(path_), ErrorCode::kFailedPrecondition);
  first.reset();
  EXPECT_NE(open(), nullptr);
}

// A missing directory surfaces as an error naming the path, not a crash.
TEST_F(SqliteStoreTest, OpenInMissingDirectoryFails) {
  auto store = SqliteStore::open(dir_ + "/no/such/dir/state.db");
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.error().message, HasSubstr("no/such/dir"));
}

// The database and its WAL are readable by the owner only (the store
// holds Secrets).
TEST_F(SqliteStoreTest, StoreFilesAreOwnerOnly) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->create("/secret", "s"));
  for (const std::string& file : {path_, path_ + "-wal"}) {
    auto perms = std::filesystem::status(file).permissions();
    EXPECT_EQ(perms & (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
              std::filesystem::perms::none)
        << file;
  }
}

// A file that is not a SQLite database fails open with SQLite's own
// message, the operation and the path.
TEST_F(SqliteStoreTest, OpenOfCorruptFileReportsSqliteError) {
  {
    FILE* f = std::fopen(path_.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::string garbage(8192, 'x');
    std::fwrite(garbage.data(), 1, garbage.size(), f);
    std::fclose(f);
  }
  auto store = SqliteStore::open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, ErrorCode::kInternal);
  EXPECT_THAT(store.error().message, HasSubstr(path_));
  EXPECT_THAT(store.error().message, HasSubstr("not a database"));
}

// A file whose schema version is newer than this binary is refused, not
// misread.
TEST_F(SqliteStoreTest, NewerSchemaVersionIsRefused) {
  ASSERT_NE(open(), nullptr);  // creates schema version 1, then closes
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto store = SqliteStore::open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_THAT(store.error().message, HasSubstr("schema version 99"));
}

// A watch from a revision not yet written delivers only later events.
TEST_F(SqliteStoreTest, WatchFromFutureRevisionSkipsEarlierEvents) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSIGN_OR_FAIL(auto watch, store->watch("/f/", 3));
  ASSERT_OK(store->create("/f/a", "v"));  // 2
  ASSERT_OK(store->create("/f/b", "v"));  // 3
  ASSERT_OK(store->create("/f/c", "v"));  // 4
  EXPECT_EQ(revisionsOf(drainUntil(*watch, 4)), range(4, 4));
}

// Concurrent writers, with and without group commit: every acknowledged
// write has a unique revision, together exactly start+1..end, and is stored
// at that revision; a watch sees them all in order.
TEST_F(SqliteStoreTest, ConcurrentWritersGetUniqueContiguousRevisions) {
  for (bool groupCommit : {true, false}) {
    SCOPED_TRACE(groupCommit ? "group commit" : "one commit per write");
    SqliteStore::Options options;
    options.groupCommit = groupCommit;
    auto store = openAt(dir_ + (groupCommit ? "/group.db" : "/single.db"), options);
    ASSERT_NE(store, nullptr);
    ASSIGN_OR_FAIL(auto watch, store->watch("", 0));
    constexpr int kThreads = 8;
    const int kPerThread = groupCommit ? 100 : 25;
    std::vector<std::vector<int64_t>> revisions(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          auto rev = store->create("/cw/" + std::to_string(t) + "/" + std::to_string(i), "v");
          ASSERT_TRUE(rev.ok()) << rev.error().message;
          revisions[t].push_back(*rev);
        }
      });
    }
    for (auto& t : threads) {
      t.join();
    }
    std::vector<int64_t> all;
    for (int t = 0; t < kThreads; ++t) {
      EXPECT_TRUE(std::is_sorted(revisions[t].begin(), revisions[t].end()));
      all.insert(all.end(), revisions[t].begin(), revisions[t].end());
    }
    std::sort(all.begin(), all.end());
    const int64_t kTotal = kThreads * kPerThread;
    EXPECT_EQ(all, range(2, kTotal + 1));
    for (int t = 0; t < kThreads; ++t) {
      for (int i = 0; i < kPerThread; ++i) {
        auto got = store->get("/cw/" + std::to_string(t) + "/" + std::to_string(i));
        ASSERT_TRUE(got.ok() && got->has_value());
        EXPECT_EQ((*got)->modRevision, revisions[t][i]);
      }
    }
    EXPECT_EQ(revisionsOf(drainUntil(*watch, kTotal + 1)), range(2, kTotal + 1));
  }
}

// Read-modify-write with CAS retries from several threads loses no
// increment: CAS checks and writes are atomic even inside one group commit.
TEST_F(SqliteStoreTest, ConcurrentCasIncrementsLoseNoUpdate) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->create("/counter", "0"));
  constexpr int kThreads = 6;
  constexpr int kIncrements = 20;
  std::atomic<int> conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements;) {
        auto got = store->get("/counter");
        ASSERT_TRUE(got.ok() && got->has_value());
        int value = std::stoi((*got)->value);
        auto updated = store->update("/counter", std::to_string(value + 1), (*got)->modRevision);
        if (updated.ok()) {
          ++i;
        } else {
          ASSERT_EQ(updated.error().code, ErrorCode::kAborted) << updated.error().message;
          ++conflicts;
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  ASSIGN_OR_FAIL(auto final, store->get("/counter"));
  EXPECT_EQ(final->value, std::to_string(kThreads * kIncrements));
  ASSIGN_OR_FAIL(int64_t current, store->currentRevision());
  EXPECT_EQ(current, 2 + kThreads * kIncrements);  // a lost CAS takes no revision
  RecordProperty("cas_conflicts", conflicts.load());
}

// A list at the current revision is one snapshot: while a writer creates
// keys, every list's key count matches the revision it reports.
TEST_F(SqliteStoreTest, ListIsConsistentWithItsRevisionDuringWrites) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < 200; ++i) {
      ASSERT_TRUE(store->create("/snap/" + std::to_string(i), "v").ok());
    }
    done = true;
  });
  int lists = 0;
  while (!done.load()) {
    ASSIGN_OR_FAIL(ListResult listed, store->list("/snap/"));
    EXPECT_EQ(static_cast<int64_t>(listed.kvs.size()) + 1, listed.revision);
    ++lists;
  }
  writer.join();
  EXPECT_GT(lists, 0);
}

// Every write store_writer acknowledged (printed) before SIGKILL is in the
// file after reopening, over several kill/reopen rounds, single-threaded
// and with concurrent writers (group commit).
TEST_F(SqliteStoreTest, AckedWritesSurviveSigkill) {
  const char* writer = std::getenv("SLUICE_STORE_WRITER");
  if (writer == nullptr) {
    GTEST_SKIP() << "SLUICE_STORE_WRITER not set; run through meson test";
  }
  std::set<int64_t> acked;
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::string threads = round % 2 == 0 ? "1" : "4";
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    std::vector<char*> argv = {const_cast<char*>(writer), path_.data(), threads.data(), nullptr};
    pid_t pid = 0;
    int rc = posix_spawn(&pid, writer, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    ASSERT_EQ(rc, 0) << "spawn " << writer << ": " << std::strerror(rc);

    // Read acknowledgements for 0.5 s, kill mid-stream, then drain what was
    // already written to the pipe: those writes were acknowledged too.
    std::string output;
    char buf[4096];
    auto stop = std::chrono::steady_clock::now() + 500ms;
    while (std::chrono::steady_clock::now() < stop) {
      pollfd pfd{fds[0], POLLIN, 0};
      if (poll(&pfd, 1, 10) > 0) {
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n <= 0) {
          break;
        }
        output.append(buf, static_cast<size_t>(n));
      }
    }
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "writer exited early with status " << status;
    for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) {
      output.append(buf, static_cast<size_t>(n));
    }
    close(fds[0]);

    size_t before = acked.size();
    for (size_t pos = 0, nl; (nl = output.find('\n', pos)) != std::string::npos; pos = nl + 1) {
      acked.insert(std::stoll(output.substr(pos, nl - pos)));
    }
    EXPECT_GT(acked.size(), before) << "writer acknowledged nothing in 0.5 s";

    auto store = open();
    ASSERT_NE(store, nullptr);
    ASSIGN_OR_FAIL(ListResult listed, store->list("/k/"));
    std::set<int64_t> present;
    for (const auto& kv : listed.kvs) {
      present.insert(std::stoll(kv.key.substr(3)));
    }
    std::vector<int64_t> lost;
    std::set_difference(acked.begin(), acked.end(), present.begin(), present.end(),
                        std::back_inserter(lost));
    EXPECT_TRUE(lost.empty()) << lost.size() << " acknowledged writes lost, first /k/"
                              << lost.front();
    RecordProperty("acked_round_" + std::to_string(round), static_cast<int>(acked.size() - before));
  }
}

}  // namespace
}  // namespace sluice::store
