#include "control/store/sqlite_watch.h"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <string>

#include "control/store/sqlite_store.h"

namespace sluice::store::detail {
namespace {

// Replay rows read per Watch::next(): bounds the memory and the time one
// call spends in SQLite when a watch starts far back in history.
constexpr size_t kReplayChunk = 512;

bool hasPrefix(std::string_view key, std::string_view prefix) {
  return key.substr(0, prefix.size()) == prefix;
}

// Longest single wait in Watch::next(); callers loop anyway.
constexpr std::chrono::milliseconds kMaxWait = std::chrono::hours(24);

}  // namespace

Result<std::shared_ptr<WatchState>> WatchHub::add(std::string_view prefix, int64_t afterRevision,
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

void WatchHub::remove(const WatchState* state) {
  std::lock_guard lock(mu_);
  std::erase_if(watches_, [&](const auto& w) { return w.get() == state; });
}

void WatchHub::publish(const std::vector<std::shared_ptr<const Event>>& events, int64_t last) {
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

void WatchHub::beginCompaction(int64_t revision) {
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

void WatchHub::abortCompaction(int64_t previous) {
  std::lock_guard lock(mu_);
  compacted_ = previous;
}

Result<std::vector<Event>> WatchHub::replay(WatchState& w, int64_t from, int64_t to) {
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

void WatchHub::close() {
  std::unique_lock lock(mu_);
  store_ = nullptr;
  for (const auto& w : watches_) {
    std::lock_guard wlock(w->mu);
    w->endLocked(Error::unavailable("watch " + w->prefix + ": store closed"));
  }
  watches_.clear();
  replaysDone_.wait(lock, [&] { return activeReplays_ == 0; });
}

Result<void> SqliteWatch::next(std::vector<Event>& out, std::chrono::milliseconds timeout) {
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

void SqliteWatch::cancel() {
  hub_->remove(state_.get());
  std::lock_guard lock(state_->mu);
  state_->endLocked(Error::unavailable("watch " + state_->prefix + ": cancelled"));
}

}  // namespace sluice::store::detail
