// Shared helpers for the SqliteStore tests: result macros, event printing,
// watch draining, and the fixture owning a fresh store directory.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "control/store/sqlite_store.h"

namespace sluice::store::testing {

using namespace std::chrono_literals;

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
inline std::string show(const KeyValue& kv) {
  return kv.key + "=" + kv.value + " @" + std::to_string(kv.modRevision) + " (created " +
         std::to_string(kv.createRevision) + ")";
}
inline std::string show(const Event& e) {
  std::string s = (e.type == EventType::kPut ? "put " : "delete ") + show(e.kv);
  if (e.prevKv) {
    s += " prev[" + show(*e.prevKv) + "]";
  }
  return s;
}
inline std::vector<std::string> show(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) {
    out.push_back(show(e));
  }
  return out;
}
inline std::vector<std::string> keysOf(const ListResult& list) {
  std::vector<std::string> keys;
  for (const auto& kv : list.kvs) {
    keys.push_back(kv.key);
  }
  return keys;
}

// Reads `watch` until it delivered revision `until` (or failed, or the
// deadline passed); returns everything it delivered.
inline std::vector<Event> drainUntil(Watch& watch, int64_t until, std::chrono::seconds deadline = 30s) {
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

inline std::vector<int64_t> revisionsOf(const std::vector<Event>& events) {
  std::vector<int64_t> revisions;
  for (const auto& e : events) {
    revisions.push_back(e.kv.modRevision);
  }
  return revisions;
}

inline std::vector<int64_t> range(int64_t first, int64_t last) {
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


}  // namespace sluice::store::testing
