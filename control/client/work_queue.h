// WorkQueue: client-go's rate-limited work queue. A key is queued at most
// once; a key added while a worker processes it is queued again when the
// worker calls done(), so two workers never process one key at once.
// addRateLimited() retries with per-key exponential back-off (5 ms doubling
// to 30 s) until forget().
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace sluice::client {

class WorkQueue {
 public:
  using Clock = std::chrono::steady_clock;

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
};

}  // namespace sluice::client
