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

namespace sluice::store {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

#define SLUICE_CAT_(a, b) a##b
#define SLUICE_CAT(a, b) SLUICE_CAT_(a, b)
// `decl = value of expr`, or fail the test with the Error's message.
#define ASSIGN_OR_FAIL(decl, expr)                                       \
  auto SLUICE_CAT(result_, __LINE__) = (expr);                           \
  ASSERT_TRUE(SLUICE_CAT(result_, __LINE__).ok())                        \
      << #expr << ": " << SLUICE_CAT(result_, __LINE__).error().message; \
  decl = std::move(SLUICE_CAT(result_, __LINE__)).value()
#define ASSERT_OK(expr)                                                    \
  do {                                                                     \
    auto result_ = (expr);                                                 \
    ASSERT_TRUE(result_.ok()) << #expr << ": " << result_.error().message; \
  } while (0)
#define EXPECT_CODE(expr, errorCode)                                       \
  do {                                                                     \
    auto result_ = (expr);                                                 \
    ASSERT_FALSE(result_.ok()) << #expr << " succeeded";                   \
    EXPECT_EQ(result_.error().code, errorCode) << result_.error().message; \
  } while (0)

// "put /a=1 @3 (created 2) prev[/a=0 @2]": whole events compare as strings,
// and a mismatch prints readably.
std::string show(const KeyValue& kv) {
  return kv.key + "=" + kv.value + " @" + std::to_string(kv.modRevision) + " (created " +
         std::to_string(kv.createRevision) + ")";
}
std::string show(const Event& e) {
  std::string s = (e.type == EventType::kPut ? "put " : "delete ") + show(e.kv);
  if (e.prevKv) {
    s += " prev[" + show(*e.prevKv) + "]";
  }
  return s;
}
std::vector<std::string> show(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) {
    out.push_back(show(e));
  }
  return out;
}
std::vector<std::string> keysOf(const ListResult& list) {
  std::vector<std::string> keys;
  for (const auto& kv : list.kvs) {
    keys.push_back(kv.key);
  }
  return keys;
}

// Reads `watch` until it delivered revision `until` (or failed, or the
// deadline passed); returns everything it delivered.
std::vector<Event> drainUntil(Watch& watch, int64_t until, std::chrono::seconds deadline = 30s) {
  std::vector<Event> events;
  auto stop = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < stop) {
    if (!events.empty() && events.back().kv.modRevision >= until) {
      return events;
    }
    Result<void> r = watch.next(events, 100ms);
    if (!r) {
      ADD_FAILURE() << "watch ended: " << r.error().message;
      return events;
    }
  }
  ADD_FAILURE() << "watch did not reach revision " << until;
  return events;
}

std::vector<int64_t> revisionsOf(const std::vector<Event>& events) {
  std::vector<int64_t> revisions;
  for (const auto& e : events) {
    revisions.push_back(e.kv.modRevision);
  }
  return revisions;
}

std::vector<int64_t> range(int64_t first, int64_t last) {
  std::vector<int64_t> out;
  for (int64_t r = first; r <= last; ++r) {
    out.push_back(r);
  }
  return out;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sluice-store-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    path_ = dir_ + "/state.db";
  }
  // Runs after failed assertions too, so no test leaves its files behind.
  void TearDown() override {
    if (!dir_.empty()) {
      std::filesystem::remove_all(dir_);
    }
  }

  std::unique_ptr<SqliteStore> open(SqliteStore::Options options = {}) {
    return openAt(path_, options);
  }
  static std::unique_ptr<SqliteStore> openAt(const std::string& path,
                                             SqliteStore::Options options = {}) {
    auto store = SqliteStore::open(path, options);
    EXPECT_TRUE(store.ok()) << store.error().message;
    return store.ok() ? std::move(store).value() : nullptr;
  }

  std::string dir_;
  std::string path_;
};

// A new store is at revision 1 (as etcd) and each write takes the next
// revision; create sets both revisions, update keeps createRevision and
// moves modRevision.
TEST_F(SqliteStoreTest, CreateGetUpdateAssignOneRevisionPerWrite) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSIGN_OR_FAIL(int64_t start, store->currentRevision());
  EXPECT_EQ(start, 1);
  ASSIGN_OR_FAIL(ListResult empty, store->list(""));
  EXPECT_EQ(empty.revision, 1);
  EXPECT_TRUE(empty.kvs.empty());

  ASSIGN_OR_FAIL(int64_t a, store->create("/a", "1"));
  ASSIGN_OR_FAIL(int64_t b, store->create("/b", "2"));
  EXPECT_EQ(a, 2);
  EXPECT_EQ(b, 3);

  ASSIGN_OR_FAIL(auto got, store->get("/a"));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(show(*got), "/a=1 @2 (created 2)");

  ASSIGN_OR_FAIL(KeyValue updated, store->update("/a", "one", 2));
  EXPECT_EQ(show(updated), "/a=one @4 (created 2)");
  ASSIGN_OR_FAIL(got, store->get("/a"));
  EXPECT_EQ(show(*got), "/a=one @4 (created 2)");

  EXPECT_CODE(store->create("/a", "again"), ErrorCode::kAlreadyExists);
  ASSIGN_OR_FAIL(got, store->get("/missing"));
  EXPECT_FALSE(got.has_value());
  ASSIGN_OR_FAIL(int64_t current, store->currentRevision());
  EXPECT_EQ(current, 4);  // failed writes take no revision
}

// Binary keys and values (NUL, 0xff) round-trip, and an empty value is a value.
TEST_F(SqliteStoreTest, KeysAndValuesAreOpaqueBytes) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  std::string key("/bin/\0\xff", 7);
  std::string value("\0\x01\xfe", 3);
  ASSERT_OK(store->create(key, value));
  ASSERT_OK(store->create("/empty", ""));
  ASSIGN_OR_FAIL(auto got, store->get(key));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->value, value);
  ASSIGN_OR_FAIL(got, store->get("/empty"));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->value, "");
}

// A CAS with a stale modRevision loses: kAborted naming the key and both
// revisions, and the stored value stays.
TEST_F(SqliteStoreTest, UpdateWithStaleRevisionIsAbortedAndKeepsValue) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->create("/registry/pods/default/web", "v1"));     // rev 2
  ASSERT_OK(store->update("/registry/pods/default/web", "v2", 2));  // rev 3

  auto stale = store->update("/registry/pods/default/web", "lost", 2);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code, ErrorCode::kAborted);
  EXPECT_THAT(stale.error().message, HasSubstr("/registry/pods/default/web"));
  EXPECT_THAT(stale.error().message, HasSubstr("modRevision is 3"));
  EXPECT_THAT(stale.error().message, HasSubstr("expected 2"));

  ASSIGN_OR_FAIL(auto got, store->get("/registry/pods/default/web"));
  EXPECT_EQ(show(*got), "/registry/pods/default/web=v2 @3 (created 2)");
  ASSIGN_OR_FAIL(int64_t current, store->currentRevision());
  EXPECT_EQ(current, 3);
  EXPECT_CODE(store->update("/nope", "x", 2), ErrorCode::kNotFound);
}

// remove honours CAS, returns the deleted value, and a re-create starts a
// new incarnation (new createRevision).
TEST_F(SqliteStoreTest, RemoveChecksModRevisionAndReturnsOldValue) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->create("/x", "v1"));  // rev 2
  EXPECT_CODE(store->remove("/x", 7), ErrorCode::kAborted);
  ASSIGN_OR_FAIL(KeyValue removed, store->remove("/x", 2));  // rev 3
  EXPECT_EQ(show(removed), "/x=v1 @2 (created 2)");
  ASSIGN_OR_FAIL(auto got, store->get("/x"));
  EXPECT_FALSE(got.has_value());
  EXPECT_CODE(store->remove("/x"), ErrorCode::kNotFound);
  EXPECT_CODE(store->update("/x", "v", 3), ErrorCode::kNotFound);

  ASSIGN_OR_FAIL(int64_t recreated, store->create("/x", "v2"));  // rev 4
  EXPECT_EQ(recreated, 4);
  ASSIGN_OR_FAIL(removed, store->remove("/x"));  // unconditional, rev 5
  EXPECT_EQ(show(removed), "/x=v2 @4 (created 4)");
}

// An empty key is rejected before any SQL runs.
TEST_F(SqliteStoreTest, EmptyKeyIsInvalidArgument) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_CODE(store->create("", "v"), ErrorCode::kInvalidArgument);
  EXPECT_CODE(store->get(""), ErrorCode::kInvalidArgument);
  EXPECT_CODE(store->update("", "v", 1), ErrorCode::kInvalidArgument);
  EXPECT_CODE(store->remove(""), ErrorCode::kInvalidArgument);
  EXPECT_CODE(store->list("/", -1), ErrorCode::kInvalidArgument);
}

// A prefix ending in "/" matches its namespace only, never a sibling whose
// name extends it ("default2"), and results come sorted by key.
TEST_F(SqliteStoreTest, ListByPrefixIsSortedAndExcludesSiblings) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  for (const char* key :
       {"/registry/pods/default/c", "/registry/pods/default2/x", "/registry/pods/default/a",
        "/registry/pods/defaul", "/registry/pods/default/b", "/registry/services/default/a"}) {
    ASSERT_OK(store->create(key, "v"));
  }
  ASSIGN_OR_FAIL(ListResult pods, store->list("/registry/pods/default/"));
  EXPECT_THAT(keysOf(pods), ElementsAre("/registry/pods/default/a", "/registry/pods/default/b",
                                        "/registry/pods/default/c"));
  EXPECT_EQ(pods.revision, 7);
  EXPECT_FALSE(pods.more);

  ASSIGN_OR_FAIL(ListResult all, store->list(""));
  EXPECT_EQ(all.kvs.size(), 6u);
  EXPECT_TRUE(std::is_sorted(all.kvs.begin(), all.kvs.end(),
                             [](const auto& a, const auto& b) { return a.key < b.key; }));
}

// Pages of `limit` live keys chain through startAfter; deleted keys neither
// appear nor shorten a page; `more` is false exactly on the last page.
TEST_F(SqliteStoreTest, ListPaginatesWithLimitAndStartAfter) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  std::vector<std::string> live;
  for (int i = 0; i < 30; ++i) {
    char key[32];
    std::snprintf(key, sizeof key, "/p/k%02d", i);
    ASSERT_OK(store->create(key, "v"));
    if (i % 6 == 5) {
      ASSERT_OK(store->remove(key));
    } else {
      live.push_back(key);
    }
  }
  ASSERT_EQ(live.size(), 25u);

  std::vector<std::string> seen;
  std::string after;
  std::vector<size_t> pageSizes;
  for (;;) {
    ASSIGN_OR_FAIL(ListResult page, store->list("/p/", 10, after));
    pageSizes.push_back(page.kvs.size());
    for (const auto& kv : page.kvs) {
      seen.push_back(kv.key);
    }
    if (!page.more) {
      break;
    }
    after = page.kvs.back().key;
  }
  EXPECT_THAT(pageSizes, ElementsAre(10u, 10u, 5u));
  EXPECT_EQ(seen, live);

  ASSIGN_OR_FAIL(ListResult exact, store->list("/p/", 25));
  EXPECT_EQ(exact.kvs.size(), 25u);
  EXPECT_FALSE(exact.more);
  // startAfter outside the prefix: before it lists all, after it lists none.
  ASSIGN_OR_FAIL(ListResult before, store->list("/p/", 0, "/a"));
  EXPECT_EQ(before.kvs.size(), 25u);
  ASSIGN_OR_FAIL(ListResult beyond, store->list("/p/", 0, "/q"));
  EXPECT_TRUE(beyond.kvs.empty());
}

// A list at revision R shows each key's latest write at or below R, with
// keys deleted by then absent; a future revision is refused.
TEST_F(SqliteStoreTest, ListAtRevisionSeesHistoricalValues) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->create("/h/a", "a1"));     // 2
  ASSERT_OK(store->create("/h/b", "b1"));     // 3
  ASSERT_OK(store->update("/h/a", "a2", 2));  // 4
  ASSERT_OK(store->remove("/h/b"));           // 5
  ASSERT_OK(store->create("/h/c", "c1"));     // 6

  auto at = [&](int64_t revision) {
    std::vector<std::string> out;
    auto listed = store->list("/h/", 0, {}, revision);
    EXPECT_TRUE(listed.ok()) << listed.error().message;
    if (listed.ok()) {
      EXPECT_EQ(listed->revision, revision);
      for (const auto& kv : listed->kvs) {
        out.push_back(show(kv));
      }
    }
    return out;
  };
  EXPECT_THAT(at(1), ElementsAre());
  EXPECT_THAT(at(2), ElementsAre("/h/a=a1 @2 (created 2)"));
  EXPECT_THAT(at(3), ElementsAre("/h/a=a1 @2 (created 2)", "/h/b=b1 @3 (created 3)"));
  EXPECT_THAT(at(4), ElementsAre("/h/a=a2 @4 (created 2)", "/h/b=b1 @3 (created 3)"));
  EXPECT_THAT(at(5), ElementsAre("/h/a=a2 @4 (created 2)"));
  EXPECT_THAT(at(6), ElementsAre("/h/a=a2 @4 (created 2)", "/h/c=c1 @6 (created 6)"));
  EXPECT_CODE(store->list("/h/", 0, {}, 7), ErrorCode::kOutOfRange);
}

// Compaction forgets history at and below R but not the state at R or
// after: reads below R and watches from below R get kOutOfRange.
TEST_F(SqliteStoreTest, CompactionRefusesReadsAndWatchesBelowIt) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->create("/c/a", "a1"));     // 2
  ASSERT_OK(store->create("/c/b", "b1"));     // 3
  ASSERT_OK(store->update("/c/a", "a2", 2));  // 4
  ASSERT_OK(store->remove("/c/b"));           // 5
  ASSERT_OK(store->create("/c/d", "d1"));     // 6
  ASSERT_OK(store->update("/c/a", "a3", 4));  // 7
  ASSERT_OK(store->remove("/c/d"));           // 8
  ASSIGN_OR_FAIL(ListResult before5, store->list("/c/", 0, {}, 5));
  ASSIGN_OR_FAIL(ListResult before7, store->list("/c/", 0, {}, 7));
  ASSIGN_OR_FAIL(auto replayBefore, store->watch("/c/", 5));
  std::vector<Event> expected = drainUntil(*replayBefore, 8);

  ASSERT_OK(store->compact(5));
  ASSIGN_OR_FAIL(int64_t compacted, store->compactedRevision());
  EXPECT_EQ(compacted, 5);

  EXPECT_CODE(store->list("/c/", 0, {}, 4), ErrorCode::kOutOfRange);
  EXPECT_CODE(store->watch("/c/", 4), ErrorCode::kOutOfRange);
  ASSIGN_OR_FAIL(ListResult after5, store->list("/c/", 0, {}, 5));
  ASSIGN_OR_FAIL(ListResult after7, store->list("/c/", 0, {}, 7));
  EXPECT_EQ(keysOf(after5), keysOf(before5));
  EXPECT_EQ(keysOf(after7), keysOf(before7));
  EXPECT_EQ(show(after7.kvs.at(0)), "/c/a=a3 @7 (created 2)");

  // A watch from the compacted revision still replays every later event
  // with its prevKv, as before compaction.
  ASSIGN_OR_FAIL(auto replayAfter, store->watch("/c/", 5));
  EXPECT_EQ(show(drainUntil(*replayAfter, 8)), show(expected));

  EXPECT_CODE(store->compact(5), ErrorCode::kOutOfRange);
  EXPECT_CODE(store->compact(9), ErrorCode::kOutOfRange);
  ASSERT_OK(store->compact(8));  // the latest write is a delete: its row goes too
  ASSIGN_OR_FAIL(ListResult now, store->list("/c/"));
  EXPECT_THAT(keysOf(now), ElementsAre("/c/a"));
  ASSIGN_OR_FAIL(int64_t current, store->currentRevision());
  EXPECT_EQ(current, 8);
}

// Live events: puts and deletes under the prefix only, each delete with
// the key's last value as prevKv and its own revision as modRevision.
TEST_F(SqliteStoreTest, WatchDeliversPutsAndDeletesWithPrevKv) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSIGN_OR_FAIL(auto watch, store->watch("/w/", 0));
  ASSERT_OK(store->create("/w/a", "1"));     // 2
  ASSERT_OK(store->create("/other", "x"));   // 3, not under /w/
  ASSERT_OK(store->update("/w/a", "2", 2));  // 4
  ASSERT_OK(store->remove("/w/a"));          // 5
  ASSERT_OK(store->create("/w/a", "3"));     // 6

  EXPECT_THAT(show(drainUntil(*watch, 6)),
              ElementsAre("put /w/a=1 @2 (created 2)",
                          "put /w/a=2 @4 (created 2) prev[/w/a=1 @2 (created 2)]",
                          "delete /w/a= @5 (created 0) prev[/w/a=2 @4 (created 2)]",
                          "put /w/a=3 @6 (created 6)"));
}

// A watch from an old revision replays history identical to what a live
// watch saw, including prevKv.
TEST_F(SqliteStoreTest, WatchReplayMatchesLiveEvents) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSIGN_OR_FAIL(auto live, store->watch("/w/", 0));  // from revision 1
  ASSERT_OK(store->create("/w/a", "1"));              // 2
  ASSERT_OK(store->create("/w/b", "1"));              // 3
  ASSERT_OK(store->update("/w/a", "2", 2));           // 4
  ASSERT_OK(store->remove("/w/b"));                   // 5
  ASSERT_OK(store->create("/w/b", "2"));              // 6
  ASSERT_OK(store->remove("/w/a", 4));                // 7
  std::vector<Event> liveEvents = drainUntil(*live, 7);
  ASSERT_EQ(liveEvents.size(), 6u);

  ASSIGN_OR_FAIL(auto replay, store->watch("/w/", 1));
  EXPECT_EQ(show(drainUntil(*replay, 7)), show(liveEvents));
}

// The no-gap/no-duplicate guarantee under concurrency: while one thread
// writes 1000 times, a watch from R, a watch started mid-way from an older
// revision (replay racing live writes), and a watch from R started after
// the writes (replay longer than one chunk) each see exactly R+1..end.
TEST_F(SqliteStoreTest, WatchFromRevisionHasNoGapsOrDuplicatesDuringWrites) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->create("/pre", "x"));
  ASSIGN_OR_FAIL(int64_t start, store->currentRevision());
  constexpr int kWrites = 1000;
  const int64_t end = start + kWrites;

  ASSIGN_OR_FAIL(auto fromStart, store->watch("", start));
  std::vector<Event> seenFromStart;
  std::thread consumer([&] { seenFromStart = drainUntil(*fromStart, end, 120s); });

  std::atomic<int64_t> midway{0};
  std::thread writer([&] {
    for (int i = 0; i < kWrites; ++i) {
      std::string key = "/r/" + std::to_string(i % 100);
      Result<int64_t> rev =
          i < 100 ? store->create(key, "v") : Result<int64_t>(Error::internal("unset"));
      if (i >= 100) {
        auto updated = store->update(key, std::to_string(i), store->get(key)->value().modRevision);
        rev = updated ? Result<int64_t>(updated->modRevision) : Result<int64_t>(updated.error());
      }
      ASSERT_TRUE(rev.ok()) << rev.error().message;
      if (i == kWrites / 2) {
        midway = *rev;
      }
    }
  });

  while (midway.load() == 0) {
    std::this_thread::sleep_for(1ms);
  }
  // Started from 100 revisions back while the writer keeps going.
  const int64_t mid = midway.load() - 100;
  std::vector<Event> seenFromMid;
  std::thread midWatcher([&] {
    auto watch = store->watch("/r/", mid);
    ASSERT_TRUE(watch.ok()) << watch.error().message;
    seenFromMid = drainUntil(**watch, end, 120s);
  });

  writer.join();
  midWatcher.join();
  consumer.join();
  ASSIGN_OR_FAIL(auto afterwards, store->watch("/r/", start));
  std::vector<Event> seenAfterwards = drainUntil(*afterwards, end);

  EXPECT_EQ(revisionsOf(seenFromStart), range(start + 1, end));
  EXPECT_EQ(revisionsOf(seenFromMid), range(mid + 1, end));
  EXPECT_EQ(revisionsOf(seenAfterwards), range(start + 1, end));
  EXPECT_EQ(show(seenAfterwards), show(seenFromStart));
}

// A consumer that stops reading is ended with kOutOfRange once its buffer
// is full, and writers never wait for it.
TEST_F(SqliteStoreTest, SlowWatcherIsEndedWithOutOfRange) {
  SqliteStore::Options options;
  options.watchBufferEvents = 100;
  auto store = open(options);
  ASSERT_NE(store, nullptr);
  ASSIGN_OR_FAIL(auto slow, store->watch("/s/", 0));
  ASSIGN_OR_FAIL(auto keepsUp, store->watch("/s/", 0));
  std::vector<Event> kept;
  for (int i = 0; i < 150; ++i) {
    ASSERT_OK(store->create("/s/" + std::to_string(i), "v"));
    if (i % 50 == 49) {
      ASSERT_OK(keepsUp->next(kept, 0ms));
    }
  }
  EXPECT_EQ(kept.size(), 150u);

  std::vector<Event> events;
  auto r = slow->next(events, 0ms);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kOutOfRange);
  EXPECT_THAT(r.error().message, HasSubstr("fell behind"));
  EXPECT_TRUE(events.empty());
  EXPECT_CODE(slow->next(events, 0ms), ErrorCode::kOutOfRange);  // stays ended
}

// cancel() from another thread wakes a next() blocked with a long timeout.
TEST_F(SqliteStoreTest, CancelWakesBlockedNext) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSIGN_OR_FAIL(auto watch, store->watch("/", 0));

  std::vector<Event> events;
  ASSERT_OK(watch->next(events, 20ms));  // nothing yet: times out, ok
  EXPECT_TRUE(events.empty());

  auto started = std::chrono::steady_clock::now();
  std::thread canceller([&] {
    std::this_thread::sleep_for(100ms);
    watch->cancel();
  });
  auto r = watch->next(events, 60s);
  canceller.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  ASSERT_OK(store->create("/after-cancel", "v"));  // publish skips it cleanly
}

// Destroying the store ends its watches, which outlive it safely.
TEST_F(SqliteStoreTest, DestroyingStoreEndsWatches) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->create("/d/a", "v"));  // 2
  ASSIGN_OR_FAIL(auto idle, store->watch("/d/", 0));
  ASSIGN_OR_FAIL(auto replaying, store->watch("/d/", 1));  // not yet replayed
  std::vector<Event> events;
  std::thread waiter([&] {
    auto r = idle->next(events, 60s);
    EXPECT_FALSE(r.ok());
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
    }
  });
  std::this_thread::sleep_for(50ms);
  store.reset();
  waiter.join();
  EXPECT_CODE(replaying->next(events, 0ms), ErrorCode::kUnavailable);
}

// A watch still replaying history below a new compaction point is ended
// rather than silently skipping the compacted rows.
TEST_F(SqliteStoreTest, CompactionEndsWatchStillReplayingBelowIt) {
  SqliteStore::Options options;
  options.maxBatch = 256;
  auto store = open(options);
  ASSERT_NE(store, nullptr);
  // 1200 updates of 10 keys, written by 8 threads so group commit keeps it short.
  std::vector<std::thread> writers;
  for (int t = 0; t < 8; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 150; ++i) {
        std::string key = "/z/" + std::to_string(t);
        auto r = i == 0 ? store->create(key, "0").ok()
                        : store->remove(key).ok() && store->create(key, "1").ok();
        EXPECT_TRUE(r);
      }
    });
  }
  for (auto& w : writers) {
    w.join();
  }
  ASSIGN_OR_FAIL(int64_t end, store->currentRevision());
  ASSERT_GT(end, 1200);

  ASSIGN_OR_FAIL(auto behind, store->watch("/z/", 1));
  ASSIGN_OR_FAIL(auto ahead, store->watch("/z/", end - 10));
  std::vector<Event> events;
  ASSERT_OK(behind->next(events, 0ms));  // first replay chunk
  ASSERT_FALSE(events.empty());
  ASSERT_LT(events.back().kv.modRevision, 1000);

  ASSERT_OK(store->compact(1000));
  EXPECT_CODE(behind->next(events, 0ms), ErrorCode::kOutOfRange);
  EXPECT_EQ(revisionsOf(drainUntil(*ahead, end)), range(end - 9, end));
}

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
