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

}  // namespace
}  // namespace sluice::store
