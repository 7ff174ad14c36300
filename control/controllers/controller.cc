#include "control/controllers/controller.h"

#include "dataplane/log.h"

namespace sluice::controllers {

client::Informer& SharedInformers::get(const client::Resource& r) {
  std::lock_guard lock(mu_);
  std::string key = r.apiVersion() + "/" + r.plural;
  auto& slot = informers_[key];
  if (!slot) slot = std::make_unique<client::Informer>(client_, r);
  return *slot;
}

void SharedInformers::startAll() {
  std::lock_guard lock(mu_);
  for (auto& [k, inf] : informers_) inf->start();
}

bool SharedInformers::waitForSync(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::lock_guard lock(mu_);
  for (auto& [k, inf] : informers_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (!inf->waitForSync(std::max(left, std::chrono::milliseconds(0)))) return false;
  }
  return true;
}

void SharedInformers::stopAll() {
  std::lock_guard lock(mu_);
  for (auto& [k, inf] : informers_) inf->stop();
}

void QueueController::start() {
  if (started_) return;
  started_ = true;
  for (int i = 0; i < std::max(1, ctx_.workers); ++i) {
    workers_.emplace_back([this] {
      std::string key;
      while (queue_.get(key)) {
        auto r = reconcile(key);
        if (r) {
          queue_.forget(key);
        } else {
          if (r.error().code != ErrorCode::kAborted || queue_.retries(key) > 3) {
            // Rate-limited per key: a key failing for a while retries every
            // back-off step, and one line per interval says so.
            log::warning(log::Limit{std::string(name_) + "/" + key}, name_, "reconcile failed",
                         {{"key", key}, {"retries", queue_.retries(key)}, {"err", r.error().message}});
          }
          queue_.addRateLimited(key);
        }
        queue_.done(key);
      }
    });
  }
}

void QueueController::stop() {
  queue_.shutdown();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
}

std::pair<std::string, std::string> splitKey(const std::string& key) {
  size_t slash = key.find('/');
  if (slash == std::string::npos) return {"", key};
  return {key.substr(0, slash), key.substr(slash + 1)};
}

}  // namespace sluice::controllers
