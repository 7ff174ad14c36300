#include "control/client/work_queue.h"

#include <algorithm>
#include <atomic>

namespace sluice::client {

namespace {
std::atomic<WorkQueueMetricsProvider*> gProvider{nullptr};

double secondsSince(WorkQueue::Clock::time_point t) {
  return std::chrono::duration<double>(WorkQueue::Clock::now() - t).count();
}
}  // namespace

void setWorkQueueMetricsProvider(WorkQueueMetricsProvider* provider) { gProvider.store(provider); }

WorkQueue::WorkQueue(const std::string& name) {
  WorkQueueMetricsProvider* p = gProvider.load();
  if (!name.empty() && p != nullptr) metrics_ = p->forQueue(name);
}

void WorkQueue::addLocked(const std::string& key) {
  if (shutdown_ || dirty_.count(key) != 0) return;
  dirty_.insert(key);
  if (metrics_) {
    metrics_->added();
    addedAt_.emplace(key, Clock::now());
  }
  if (processing_.count(key) != 0) return;  // re-queued by done()
  queue_.push_back(key);
  if (metrics_) metrics_->depth(queue_.size());
  cv_.notify_one();
}

void WorkQueue::add(const std::string& key) {
  std::lock_guard lock(mu_);
  addLocked(key);
}

void WorkQueue::addAfter(const std::string& key, std::chrono::milliseconds delay) {
  std::lock_guard lock(mu_);
  if (shutdown_) return;
  if (delay.count() <= 0) {
    addLocked(key);
    return;
  }
  delayed_.emplace(Clock::now() + delay, key);
  cv_.notify_all();
}

void WorkQueue::addRateLimited(const std::string& key) {
  std::chrono::milliseconds delay;
  {
    std::lock_guard lock(mu_);
    int n = failures_[key]++;
    if (metrics_) metrics_->retried();
    double ms = 5.0 * static_cast<double>(1ull << std::min(n, 20));
    delay = std::chrono::milliseconds(static_cast<int64_t>(std::min(ms, 30000.0)));
  }
  addAfter(key, delay);
}

void WorkQueue::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  failures_.erase(key);
}

int WorkQueue::retries(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

bool WorkQueue::get(std::string& key) {
  std::unique_lock lock(mu_);
  for (;;) {
    if (shutdown_) return false;
    auto now = Clock::now();
    while (!delayed_.empty() && delayed_.begin()->first <= now) {
      std::string k = delayed_.begin()->second;
      delayed_.erase(delayed_.begin());
      addLocked(k);
    }
    if (!queue_.empty()) {
      key = std::move(queue_.front());
      queue_.pop_front();
      dirty_.erase(key);
      processing_.insert(key);
      if (metrics_) {
        metrics_->depth(queue_.size());
        if (auto it = addedAt_.find(key); it != addedAt_.end()) {
          metrics_->waited(secondsSince(it->second));
          addedAt_.erase(it);
        }
        startedAt_[key] = Clock::now();
      }
      return true;
    }
    if (delayed_.empty()) {
      cv_.wait(lock);
    } else {
      // A copy: wait_until takes the deadline by reference, and another
      // worker may erase that entry while this one waits.
      const Clock::time_point due = delayed_.begin()->first;
      cv_.wait_until(lock, due);
    }
  }
}

void WorkQueue::done(const std::string& key) {
  std::lock_guard lock(mu_);
  processing_.erase(key);
  if (metrics_) {
    if (auto it = startedAt_.find(key); it != startedAt_.end()) {
      metrics_->worked(secondsSince(it->second));
      startedAt_.erase(it);
    }
  }
  if (dirty_.count(key) != 0) {
    queue_.push_back(key);
    if (metrics_) metrics_->depth(queue_.size());
    cv_.notify_one();
  }
}

void WorkQueue::shutdown() {
  std::lock_guard lock(mu_);
  shutdown_ = true;
  cv_.notify_all();
}

size_t WorkQueue::size() {
  std::lock_guard lock(mu_);
  return queue_.size();
}

}  // namespace sluice::client
