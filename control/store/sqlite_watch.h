// SqliteStore internals (not part of the store's API): the in-process watch
// fan-out. The batch leader publishes each commit's events to the WatchHub,
// which buffers them in every matching watch's WatchState; a SqliteWatch
// replays history from the table, then drains that buffer.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/store/store.h"
#include "dataplane/result.h"

namespace sluice::store {

class SqliteStore;

namespace detail {

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
                                          size_t capacity);

  void remove(const WatchState* state);

  // Called by the batch leader after the commit of revisions up to `last`,
  // with that batch's events in revision order.
  void publish(const std::vector<std::shared_ptr<const Event>>& events, int64_t last);

  // Before compaction deletes rows: refuses new watches below `revision` and
  // ends watches whose replay has not yet passed it (their remaining
  // history is about to vanish).
  void beginCompaction(int64_t revision);

  void abortCompaction(int64_t previous);

  // The next chunk of `w`'s history. The store is kept alive by counting
  // the read in activeReplays_, which close() waits out.
  Result<std::vector<Event>> replay(WatchState& w, int64_t from, int64_t to);

  // Store destruction: ends every watch and waits for replays in flight.
  void close();

 private:
  std::mutex mu_;
  std::condition_variable replaysDone_;
  SqliteStore* store_;  // null once closed
  int64_t published_;   // last revision handed to watches
  int64_t compacted_;
  size_t activeReplays_ = 0;
  std::vector<std::shared_ptr<WatchState>> watches_;
};

class SqliteWatch final : public Watch {
 public:
  SqliteWatch(std::shared_ptr<WatchHub> hub, std::shared_ptr<WatchState> state)
      : hub_(std::move(hub)), state_(std::move(state)) {}
  ~SqliteWatch() override { cancel(); }

  Result<void> next(std::vector<Event>& out, std::chrono::milliseconds timeout) override;
  void cancel() override;

 private:
  std::shared_ptr<WatchHub> hub_;
  std::shared_ptr<WatchState> state_;
};

}  // namespace detail
}  // namespace sluice::store
