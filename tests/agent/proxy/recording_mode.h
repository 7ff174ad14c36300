// RecordingMode: the one fake of ProxyMode (and Datapath), for the unit
// suite. It keeps the table it was told to program, exactly as a correct
// mode would, records every sync() and apply(), and can be told to fail the
// next apply, to lose its state (epoch + listener, as a restarted DPDK
// process does), and what it cannot do. No kernel, no root.
//
// Threading: ProxySync calls from its sync thread; tests read from theirs;
// one mutex guards everything.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "dataplane/datapath.h"
#include "dataplane/proxy_mode.h"
#include "dataplane/service_diff.h"

namespace sluice::testing {

class RecordingMode final : public ProxyMode {
 public:
  struct Call {
    bool full = false;      // sync() rather than apply()
    ServiceTable table;     // sync(): its table
    ServiceDiff diff;       // apply(): its diff
    bool failed = false;
  };

  std::string_view name() const override { return "recording"; }
  ModeCapabilities capabilities() const override {
    std::lock_guard lock(mu_);
    return caps_;
  }
  Result<void> sync(const ServiceTable& table) override {
    std::lock_guard lock(mu_);
    calls_.push_back({true, table, {}, false});
    held_ = table;
    cv_.notify_all();
    return okResult();
  }
  Result<void> apply(const ServiceDiff& diff) override {
    std::lock_guard lock(mu_);
    const bool fail = failNext_;
    failNext_ = false;
    calls_.push_back({false, {}, diff, fail});
    cv_.notify_all();
    if (fail) {
      ++applyErrors_;
      return Error::unavailable("recording mode: told to fail this apply");
    }
    if (auto r = applyDiff(held_, diff); !r) return r;
    ++applies_;
    return okResult();
  }
  ProxyStats stats() const override {
    std::lock_guard lock(mu_);
    ProxyStats s;
    s.services = held_.size();
    s.applies = applies_;
    s.applyErrors = applyErrors_;
    return s;
  }
  uint64_t epoch() const override {
    std::lock_guard lock(mu_);
    return epoch_;
  }
  void onStateLost(std::function<void()> listener) override {
    std::lock_guard lock(mu_);
    listener_ = std::move(listener);
  }
  Result<std::vector<DescribedFrontend>> describeFrontends() const override {
    std::lock_guard lock(mu_);
    std::vector<DescribedFrontend> out;
    for (const auto& [key, svc] : held_) {
      for (const Frontend& f : svc.frontends) {
        DescribedFrontend d;
        d.frontend = f;
        d.service = key.toString();
        for (const Backend& b : svc.backends) {
          d.backends.push_back({0, {b.address, b.port}, b.weight, b.state, b.nodeLocal, 0});
        }
        out.push_back(std::move(d));
      }
    }
    return out;
  }
  Result<DescribedSelection> describeSelection(const ServiceKey& key) const override {
    return Error::notFound("service " + key.toString() + ": the recording mode has no selection tables");
  }
  Result<std::vector<DescribedFlow>> describeFlows(size_t) const override {
    return std::vector<DescribedFlow>{};
  }

  // --- test controls ---
  void failNextApply() {
    std::lock_guard lock(mu_);
    failNext_ = true;
  }
  // Forgets everything programmed and tells the agent, as a restarted
  // dataplane process would.
  void loseState() {
    std::function<void()> listener;
    {
      std::lock_guard lock(mu_);
      held_ = ServiceTable();
      ++epoch_;
      listener = listener_;
    }
    if (listener) listener();
  }
  void setMissing(ModeFeature f, std::string effect) {
    std::lock_guard lock(mu_);
    caps_.missing[f] = std::move(effect);
  }
  std::vector<Call> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  ServiceTable held() const {
    std::lock_guard lock(mu_);
    return held_;
  }
  // Waits until `pred(calls, held)` holds (or 20 s pass); returns its last
  // value. pred runs under the mode's lock: it must not call the mode.
  bool waitFor(const std::function<bool(const std::vector<Call>&, const ServiceTable&)>& pred) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(20), [&] { return pred(calls_, held_); });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  ModeCapabilities caps_;
  ServiceTable held_;
  std::vector<Call> calls_;
  std::function<void()> listener_;
  uint64_t epoch_ = 1;
  uint64_t applies_ = 0;
  uint64_t applyErrors_ = 0;
  bool failNext_ = false;
};

// The node-level half, recording what it was asked to attach and claim.
class RecordingDatapath final : public Datapath {
 public:
  ProxyMode& mode() override { return mode_; }
  RecordingMode& recording() { return mode_; }
  Result<void> attachPodInterface(const std::string& ifname) override {
    std::lock_guard lock(mu_);
    interfaces_.insert(ifname);
    return okResult();
  }
  Result<void> detachPodInterface(const std::string& ifname) override {
    std::lock_guard lock(mu_);
    interfaces_.erase(ifname);
    return okResult();
  }
  Result<void> claimServiceAddresses(const ServiceDiff& diff, bool full) override {
    std::lock_guard lock(mu_);
    if (full) claimed_.clear();
    for (const ServiceChange& c : diff.changes) {
      if (c.before) {
        for (const Frontend& f : c.before->frontends) {
          if (f.scope == FrontendScope::kLoadBalancer) claimed_.erase(f.address);
        }
      }
      if (c.after) {
        for (const Frontend& f : c.after->frontends) {
          if (f.scope == FrontendScope::kLoadBalancer) claimed_.insert(f.address);
        }
      }
    }
    return okResult();
  }
  std::set<IpAddress> claimedAddresses() const override {
    std::lock_guard lock(mu_);
    return claimed_;
  }
  void stop() override {}
  Result<void> cleanup() override { return okResult(); }

 private:
  RecordingMode mode_;
  mutable std::mutex mu_;
  std::set<std::string> interfaces_;
  std::set<IpAddress> claimed_;
};

}  // namespace sluice::testing
