// WorkQueue: client-go's rate-limited work queue. A key is queued at most
// once; a key added while a worker processes it is queued again when the
// worker calls done(), so two workers never process one key at once.
// addRateLimited() retries with per-key exponential back-off (5 ms doubling
// to 30 s) until forget().
//
// Metrics as client-go's: a named queue reports to the process-wide
// WorkQueueMetricsProvider (client-go's workqueue.SetProvider), which the
// controller manager sets to prometheus families (workqueue_depth,
// workqueue_adds_total, ..._queue_duration_seconds, ..._work_duration_seconds,
// workqueue_retries_total, all labelled name=<queue>). This library stays
// free of a metrics dependency: the agent links it against any cluster.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace sluice::client {

// One queue's metrics; calls arrive under the queue's lock, so they must
// not call back into it.
class WorkQueueMetrics {
 public:
  virtual ~WorkQueueMetrics() = default;
  virtual void added() = 0;                       // a key entered the queue
  virtual void depth(size_t n) = 0;               // keys waiting now
  virtual void waited(double seconds) = 0;        // add -> get
  virtual void worked(double seconds) = 0;        // get -> done
  virtual void retried() = 0;                     // addRateLimited
};

class WorkQueueMetricsProvider {
 public:
  virtual ~WorkQueueMetricsProvider() = default;
  virtual std::unique_ptr<WorkQueueMetrics> forQueue(const std::string& name) = 0;
};

// Queues created afterwards report to `provider` (nullptr: none). The
// provider must outlive them.
void setWorkQueueMetricsProvider(WorkQueueMetricsProvider* provider);

class WorkQueue {
 public:
  using Clock = std::chrono::steady_clock;

  // A named queue reports metrics (see above); an unnamed one does not.
  explicit WorkQueue(const std::string& name = {});

  void add(const std::string& key);
  void addAfter(const std::string& key, std::chrono::milliseconds delay);
  void addRateLimited(const std::string& key);
  void forget(const std::string& key);
  int retries(const std::string& key);

  // Blocks until a key is ready (true) or the queue shut down (false).
  bool get(std::string& key);
  void done(const std::string& key);
  void shutdown();

  size_t size();

 private:
  void addLocked(const std::string& key);

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::unordered_set<std::string> dirty_;
  std::unordered_set<std::string> processing_;
  std::multimap<Clock::time_point, std::string> delayed_;
  std::unordered_map<std::string, int> failures_;
  bool shutdown_ = false;
  std::unique_ptr<WorkQueueMetrics> metrics_;
  std::unordered_map<std::string, Clock::time_point> addedAt_;    // queued keys, for waited()
  std::unordered_map<std::string, Clock::time_point> startedAt_;  // processing keys, for worked()
};

}  // namespace sluice::client
