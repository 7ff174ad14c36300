// Clock: the controllers' notion of now, injected so tests can drive
// timeouts (node heartbeats, minReadySeconds, progress deadlines, HPA
// stabilisation) deterministically.
#pragma once

#include <chrono>
#include <mutex>

namespace sluice::controllers {

class Clock {
 public:
  using TimePoint = std::chrono::system_clock::time_point;
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::system_clock::now(); }
};

// Advanced by hand.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start = std::chrono::system_clock::now()) : now_(start) {}
  TimePoint now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }
  void advance(std::chrono::milliseconds d) {
    std::lock_guard lock(mu_);
    now_ += d;
  }

 private:
  mutable std::mutex mu_;
  TimePoint now_;
};

}  // namespace sluice::controllers
