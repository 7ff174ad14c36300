#include "control/agent/proxy/proxy_sync.h"

#include "control/util/rfc3339.h"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iterator>

#include "dataplane/log.h"

namespace sluice::agent {

namespace {

// "ns/name" of the Kubernetes service a dataplane Service came from.
std::string k8sKey(const ServiceKey& k) { return k.ns + "/" + k.name; }

double secondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

ProxySync::ProxySync(client::ApiClient& client, ProxyMode& mode, ProxySyncOptions options,
                     AppliedHook onApplied)
    : client_(client),
      mode_(mode),
      options_(std::move(options)),
      translator_(options_.translator),
      onApplied_(std::move(onApplied)) {}

ProxySync::~ProxySync() { stop(); }

void ProxySync::start() {
  services_ = std::make_unique<client::Informer>(client_, client::resources::kServices);
  slices_ = std::make_unique<client::Informer>(client_, client::resources::kEndpointSlices);
  services_->addHandlers({
      [this](const client::ObjectPtr& o) { markService(client::keyOf(*o)); },
      [this](const client::ObjectPtr&, const client::ObjectPtr& o) { markService(client::keyOf(*o)); },
      [this](const client::ObjectPtr& o) { markService(client::keyOf(*o)); },
  });
  slices_->addHandlers({
      [this](const client::ObjectPtr& o) { onSlice(nullptr, o, false); },
      [this](const client::ObjectPtr& old, const client::ObjectPtr& o) { onSlice(old, o, false); },
      [this](const client::ObjectPtr& o) { onSlice(nullptr, o, true); },
  });
  mode_.onStateLost([this] {
    {
      std::lock_guard lock(mu_);
      stateLost_ = true;
    }
    cv_.notify_all();
  });
  services_->start();
  slices_->start();
  thread_ = std::thread([this] { run(); });
}

void ProxySync::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  mode_.onStateLost({});  // the listener points at this object
  if (services_) services_->stop();
  if (slices_) slices_->stop();
}

bool ProxySync::waitForInitialSync(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [this] { return initialSynced_ || stop_; }) && initialSynced_;
}

void ProxySync::markService(const std::string& key) {
  {
    std::lock_guard lock(mu_);
    dirty_.insert(key);
  }
  cv_.notify_all();
}

void ProxySync::onSlice(const client::ObjectPtr& old, const client::ObjectPtr& cur, bool deleted) {
  const std::string sliceKey = client::keyOf(*cur);
  const std::string ns = client::namespaceOf(*cur);
  const std::string name = sliceServiceName(*cur);
  const std::string svc = name.empty() ? std::string() : ns + "/" + name;
  std::optional<WallTime> trigger;
  if (!deleted) {
    const Json& annotations = (*cur)["metadata"].value("annotations", Json::object());
    if (auto it = annotations.find(kLastChangeTriggerTimeAnnotation);
        it != annotations.end() && it->is_string()) {
      // Times before this agent started belong to changes an earlier run
      // (or nobody) programmed: kube-proxy skips them too.
      auto t = util::parseRfc3339(it->get<std::string>());
      if (t && *t > startedAt_) trigger = t;
    }
  }
  {
    std::lock_guard lock(mu_);
    if (old) {
      const std::string oldName = sliceServiceName(*old);
      if (oldName != name && !oldName.empty()) {
        const std::string oldSvc = ns + "/" + oldName;
        slicesOf_[oldSvc].erase(sliceKey);
        if (slicesOf_[oldSvc].empty()) slicesOf_.erase(oldSvc);
        dirty_.insert(oldSvc);
      }
    }
    if (!svc.empty()) {
      if (deleted) {
        slicesOf_[svc].erase(sliceKey);
        if (slicesOf_[svc].empty()) slicesOf_.erase(svc);
      } else {
        slicesOf_[svc].insert(sliceKey);
      }
      dirty_.insert(svc);
      // Only an actual change of the annotation is a new trigger (a
      // status-only rewrite of the slice keeps the old time).
      if (trigger) {
        auto& times = triggers_[svc];
        if (std::find(times.begin(), times.end(), *trigger) == times.end()) {
          bool seen = false;
          if (old) {
            const Json& oa = (*old)["metadata"].value("annotations", Json::object());
            auto it = oa.find(kLastChangeTriggerTimeAnnotation);
            seen = it != oa.end() && it->is_string() && util::parseRfc3339(it->get<std::string>()) == trigger;
          }
          if (!seen) times.push_back(*trigger);
        }
      }
    }
  }
  cv_.notify_all();
}

std::vector<Service> ProxySync::translate(const std::string& key) {
  client::ObjectPtr svc = services_->get(key);
  if (!svc) return {};
  std::vector<client::ObjectPtr> held;
  {
    std::lock_guard lock(mu_);
    if (auto it = slicesOf_.find(key); it != slicesOf_.end()) {
      for (const std::string& s : it->second) {
        if (auto obj = slices_->get(s)) held.push_back(std::move(obj));
      }
    }
  }
  std::vector<const Json*> slices;
  for (const auto& h : held) slices.push_back(h.get());
  Translation t = translator_.translate(*svc, slices);
  // The same Service translates again on every change of its endpoints: a
  // flapping endpoint must not repeat its warning each time.
  for (const std::string& w : t.warnings) {
    log::warning(log::Limit{"proxy/translate/" + key + "/" + w}, "proxy", "service translation", {{"service", key}, {"warning", w}});
  }
  return std::move(t.services);
}

void ProxySync::recordError(const std::string& what) {
  log::warning(log::Limit{"proxy/error/" + what}, "proxy", "sync failed", {{"err", what}});
  std::lock_guard lock(mu_);
  ++errors_;
  lastError_ = what;
}

bool ProxySync::fullSync() {
  std::vector<std::string> keys;
  for (const client::ObjectPtr& o : services_->list()) keys.push_back(client::keyOf(*o));
  {
    std::lock_guard lock(mu_);
    // Everything marked so far is covered by this full build.
    dirty_.clear();
    triggers_.clear();
    conflicted_.clear();
  }
  ServiceTable table;
  std::set<std::string> conflicted;
  for (const std::string& key : keys) {
    for (Service& s : translate(key)) {
      const std::string name = s.key.toString();
      if (auto r = table.upsert(std::move(s)); !r) {
        log::warning("proxy", "service conflicts with another", {{"service", name}, {"err", r.error().message}});
        conflicted.insert(key);
      }
    }
  }
  // Read before the sync: state lost while it runs makes the next round
  // resync again.
  const uint64_t epoch = mode_.epoch();
  {
    std::lock_guard lock(mu_);
    stateLost_ = false;
  }
  const auto began = Clock::now();
  if (auto r = mode_.sync(table); !r) {
    recordError("full sync: " + r.error().message);
    return false;
  }
  syncDuration_.Observe(secondsSince(began));
  std::vector<Service> all;
  all.reserve(table.size());
  for (const auto& [k, svc] : table) all.push_back(svc);
  reportUnmet(all, true);
  {
    std::lock_guard lock(mu_);
    if (initialSynced_) ++resyncs_;
    syncedEpoch_ = epoch;
    desired_ = table;
    portsOf_.clear();
    for (const auto& [k, svc] : desired_) portsOf_[k8sKey(k)].insert(k);
    conflicted_ = std::move(conflicted);
    ++runs_;
    lastSyncTimestamp_ = std::chrono::duration<double>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
  }
  if (onApplied_) onApplied_(ServiceDiff::fullSync(table), true);
  return true;
}

bool ProxySync::applyDirty(std::set<std::string> dirty,
                           std::map<std::string, std::vector<WallTime>> triggers) {
  // Compute the changes against what is programmed. desired_ and portsOf_
  // are only written on this thread, so reading them unlocked is safe.
  ServiceDiff diff;
  for (const std::string& key : dirty) {
    std::map<ServiceKey, const Service*> before;
    if (auto it = portsOf_.find(key); it != portsOf_.end()) {
      for (const ServiceKey& k : it->second) {
        if (const Service* s = desired_.find(k)) before.emplace(k, s);
      }
    }
    std::map<ServiceKey, Service> after;
    for (Service& s : translate(key)) after.emplace(s.key, std::move(s));
    ServiceDiff one = ServiceDiff::between(before, after);
    std::move(one.changes.begin(), one.changes.end(), std::back_inserter(diff.changes));
  }
  std::sort(diff.changes.begin(), diff.changes.end(),
            [](const ServiceChange& a, const ServiceChange& b) { return a.key() < b.key(); });

  // Check against the table: a change that would make it invalid (a
  // frontend another service owns) is left out and retried next run.
  std::set<std::string> conflicted;
  {
    std::lock_guard lock(mu_);
    if (!applyDiff(desired_, diff)) {
      ServiceDiff ok;
      for (ServiceChange& c : diff.changes) {
        ServiceDiff one;
        one.changes.push_back(c);
        if (auto r = applyDiff(desired_, one); !r) {
          log::warning("proxy", "service change conflicts", {{"err", r.error().message}});
          conflicted.insert(k8sKey(c.key()));
        } else {
          ok.changes.push_back(std::move(c));
        }
      }
      diff = std::move(ok);
    }
    for (const ServiceChange& c : diff.changes) {
      if (c.removed()) {
        auto it = portsOf_.find(k8sKey(c.key()));
        if (it != portsOf_.end()) {
          it->second.erase(c.key());
          if (it->second.empty()) portsOf_.erase(it);
        }
      } else {
        portsOf_[k8sKey(c.key())].insert(c.key());
      }
    }
  }

  const auto began = Clock::now();
  if (!diff.empty()) {
    // On failure desired_ stays the target: the retry resyncs to it.
    if (auto r = mode_.apply(diff); !r) {
      recordError("apply: " + r.error().message);
      return false;
    }
  }
  const double took = secondsSince(began);
  const auto now = std::chrono::system_clock::now();
  if (!diff.empty()) syncDuration_.Observe(took);
  {
    std::vector<Service> changed;
    for (const ServiceChange& c : diff.changes) {
      if (c.after) {
        changed.push_back(*c.after);
      } else {
        std::lock_guard lock(mu_);
        unmet_.erase(c.key());
      }
    }
    reportUnmet(changed, false);
  }
  for (const auto& [svc, times] : triggers) {
    if (conflicted.count(svc)) continue;
    for (const WallTime& t : times) {
      programmingLatency_.Observe(std::max(0.0, std::chrono::duration<double>(now - t).count()));
    }
  }
  {
    std::lock_guard lock(mu_);
    conflicted_ = std::move(conflicted);
    ++runs_;
    lastSyncTimestamp_ = std::chrono::duration<double>(now.time_since_epoch()).count();
  }
  if (onApplied_ && !diff.empty()) onApplied_(diff, false);
  return true;
}

void ProxySync::run() {
  // Wait for both caches: a first sync from a partial list would delete
  // what a previous agent programmed for the rest.
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
    }
    if (services_->waitForSync(std::chrono::milliseconds(100)) &&
        slices_->waitForSync(std::chrono::milliseconds(100))) {
      break;
    }
  }
  bool needFull = true;
  Clock::time_point lastRun = Clock::now() - options_.minSyncPeriod;
  while (true) {
    std::set<std::string> dirty;
    std::map<std::string, std::vector<WallTime>> triggers;
    {
      std::unique_lock lock(mu_);
      if (!needFull) {
        cv_.wait(lock, [this] { return stop_ || !dirty_.empty() || stateLost_; });
      }
      if (stop_) return;
      // The mode lost state the agent cannot see: start over from the
      // whole table (the contract in dataplane/proxy_mode.h).
      if (stateLost_) needFull = true;
      // Bounded frequency: at most one run per minSyncPeriod; changes
      // arriving meanwhile join this run.
      const auto earliest = lastRun + options_.minSyncPeriod;
      if (Clock::now() < earliest) {
        cv_.wait_until(lock, earliest, [this] { return stop_; });
        if (stop_) return;
      }
      if (!needFull) {
        dirty.swap(dirty_);
        dirty.insert(conflicted_.begin(), conflicted_.end());
        triggers.swap(triggers_);
      }
    }
    lastRun = Clock::now();
    if (!needFull && mode_.epoch() != syncedEpoch_) needFull = true;
    bool ok;
    if (needFull) {
      ok = fullSync();
      if (ok) {
        std::lock_guard lock(mu_);
        initialSynced_ = true;
      }
      cv_.notify_all();
    } else {
      ok = applyDirty(std::move(dirty), std::move(triggers));
    }
    needFull = !ok;
    if (!ok) {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, options_.retryPeriod, [this] { return stop_; });
    }
  }
}

void ProxySync::reportUnmet(const std::vector<Service>& services, bool full) {
  const ModeCapabilities caps = mode_.capabilities();
  std::vector<std::pair<ServiceKey, UnmetRequest>> fresh;
  {
    std::lock_guard lock(mu_);
    std::map<ServiceKey, std::vector<UnmetRequest>> kept;
    for (const Service& s : services) {
      std::vector<UnmetRequest> now = unmetRequests(s, caps);
      auto old = unmet_.find(s.key);
      for (const UnmetRequest& u : now) {
        bool said = old != unmet_.end() &&
                    std::find(old->second.begin(), old->second.end(), u) != old->second.end();
        if (!said) fresh.emplace_back(s.key, u);
      }
      if (full) {
        if (!now.empty()) kept[s.key] = std::move(now);
      } else if (now.empty()) {
        unmet_.erase(s.key);
      } else {
        unmet_[s.key] = std::move(now);
      }
    }
    if (full) unmet_ = std::move(kept);
  }
  for (const auto& [key, u] : fresh) {
    log::warning("proxy", "the mode cannot honour what the service asks",
                 {{"service", key.toString()}, {"mode", mode_.name()}, {"request", u.message}});
    postUnsupportedEvent(key, u);
  }
}

void ProxySync::postUnsupportedEvent(const ServiceKey& key, const UnmetRequest& u) {
  client::ObjectPtr svc = services_ ? services_->get(key.ns + "/" + key.name) : nullptr;
  const auto now = std::chrono::system_clock::now();
  const std::string stamp = util::formatRfc3339(now);
  Json involved = {{"apiVersion", "v1"}, {"kind", "Service"}, {"namespace", key.ns}, {"name", key.name}};
  if (svc) involved["uid"] = (*svc)["metadata"].value("uid", "");
  Json ev = {{"apiVersion", "v1"},
             {"kind", "Event"},
             // client-go's recorder names events <object>.<unix nanos in hex>.
             {"metadata",
              {{"name", key.name + "." + [&] {
                  char hex[32];
                  std::snprintf(hex, sizeof hex, "%llx",
                                static_cast<unsigned long long>(
                                    std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch())
                                        .count()));
                  return std::string(hex);
                }()},
               {"namespace", key.ns}}},
             {"involvedObject", involved},
             {"reason", "UnsupportedByProxyMode"},
             {"message", "port " + (key.port.empty() ? std::string("(unnamed)") : key.port) + ": proxy mode " +
                             std::string(mode_.name()) + " cannot honour " + u.message},
             {"type", "Warning"},
             {"source", {{"component", "sluice-proxy"}, {"host", options_.translator.nodeName}}},
             {"firstTimestamp", stamp},
             {"lastTimestamp", stamp},
             {"count", 1}};
  if (auto r = client_.create(client::resources::kEvents, key.ns, ev); !r) {
    log::warning("proxy", "posting an event failed", {{"service", key.toString()}, {"err", r.error().message}});
  }
}

ServiceTable ProxySync::table() const {
  std::lock_guard lock(mu_);
  return desired_;
}

uint64_t ProxySync::runs() const {
  std::lock_guard lock(mu_);
  return runs_;
}

uint64_t ProxySync::errors() const {
  std::lock_guard lock(mu_);
  return errors_;
}

std::string ProxySync::lastError() const {
  std::lock_guard lock(mu_);
  return lastError_;
}

std::string ProxySync::renderMetrics() const {
  return metrics::serialize({[this] { return collect(); }});
}

std::vector<prometheus::MetricFamily> ProxySync::collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  const char* latencyHelp = "Seconds from an EndpointSlice's last-change-trigger-time to the datapath programmed";
  const char* syncHelp = "Seconds one sync or apply of the proxy's datapath took";
  // Each histogram under sluice's name and kube-proxy's, so dashboards
  // built for kube-proxy work unchanged.
  auto histogram = [&](const char* name, const char* help, const prometheus::Histogram& h) {
    prometheus::MetricFamily f = metrics::family(name, help, MetricType::Histogram);
    f.metric.push_back(h.Collect());
    out.push_back(std::move(f));
  };
  histogram("sluice_network_programming_duration_seconds", latencyHelp, programmingLatency_);
  histogram("kubeproxy_network_programming_duration_seconds", latencyHelp, programmingLatency_);
  histogram("sluice_sync_proxy_rules_duration_seconds", syncHelp, syncDuration_);
  histogram("kubeproxy_sync_proxy_rules_duration_seconds", syncHelp, syncDuration_);
  uint64_t runs, errors, resyncs;
  double last;
  size_t desired;
  std::map<std::string, uint64_t> unmetByFeature;
  {
    std::lock_guard lock(mu_);
    runs = runs_;
    errors = errors_;
    last = lastSyncTimestamp_;
    desired = desired_.size();
    resyncs = resyncs_;
    for (const auto& [k, list] : unmet_) {
      for (const UnmetRequest& u : list) ++unmetByFeature[std::string(toString(u.feature))];
    }
  }
  auto d = [](auto v) { return static_cast<double>(v); };
  out.push_back(metrics::single("sluice_proxy_syncs_total", "Successful sync and apply rounds", MetricType::Counter,
                                d(runs)));
  out.push_back(metrics::single("sluice_proxy_sync_errors_total", "Failed sync and apply rounds",
                                MetricType::Counter, d(errors)));
  out.push_back(metrics::single("kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                                "Unix time of the last successful round", MetricType::Gauge, last));
  out.push_back(metrics::single("sluice_proxy_desired_services", "Service ports the proxy wants programmed",
                                MetricType::Gauge, d(desired)));
  out.push_back(metrics::single("sluice_proxy_resyncs_total",
                                "Full syncs after the first (failed apply, or the mode lost state)",
                                MetricType::Counter, d(resyncs)));
  prometheus::MetricFamily unmet = metrics::family(
      "sluice_proxy_unsupported_requests", "Service ports asking for what the mode cannot do, by feature",
      MetricType::Gauge);
  for (const auto& [feature, n] : unmetByFeature) metrics::sample(unmet, d(n), {{"feature", feature}});
  out.push_back(std::move(unmet));

  const std::string mode(mode_.name());
  // What the mode cannot do on this node whether or not a Service asks
  // (an older kernel's missing features among them): one series each.
  prometheus::MetricFamily missing = metrics::family(
      "sluice_proxy_mode_missing_features", "Features the mode lacks on this node (1 each)", MetricType::Gauge);
  for (const auto& [feature, effect] : mode_.capabilities().missing) {
    metrics::sample(missing, 1, {{"mode", mode}, {"feature", std::string(toString(feature))}});
  }
  out.push_back(std::move(missing));

  const ProxyStats st = mode_.stats();
  out.push_back(metrics::single("sluice_proxy_services", "Service ports programmed in the datapath",
                                MetricType::Gauge, d(st.services)));
  out.push_back(metrics::single("sluice_proxy_frontends", "Frontends programmed in the datapath", MetricType::Gauge,
                                d(st.frontends)));
  out.push_back(metrics::single("sluice_proxy_backends", "Backend entries programmed in the datapath",
                                MetricType::Gauge, d(st.backends)));
  out.push_back(metrics::single("sluice_proxy_applies_total", "Successful ProxyMode::apply calls",
                                MetricType::Counter, d(st.applies)));
  out.push_back(metrics::single("sluice_proxy_apply_errors_total", "Failed ProxyMode::apply calls",
                                MetricType::Counter, d(st.applyErrors)));
  // Mode counters: "drop.<reason>" and "event.<name>" become labelled
  // families; anything else is one generic family labelled by name.
  prometheus::MetricFamily drops =
      metrics::family("sluice_datapath_drops_total", "Packets the datapath dropped, by reason", MetricType::Counter);
  prometheus::MetricFamily events =
      metrics::family("sluice_datapath_events_total", "Datapath events, by kind", MetricType::Counter);
  prometheus::MetricFamily other =
      // Not "..._counter": promtool's lint refuses a type in a name.
      metrics::family("sluice_datapath_mode_stats", "Other counters of the proxy mode, by name", MetricType::Untyped);
  for (const auto& [name, value] : st.counters) {
    if (name.rfind("drop.", 0) == 0) {
      metrics::sample(drops, d(value), {{"mode", mode}, {"reason", name.substr(5)}});
    } else if (name.rfind("event.", 0) == 0) {
      metrics::sample(events, d(value), {{"mode", mode}, {"event", name.substr(6)}});
    } else {
      metrics::sample(other, d(value), {{"mode", mode}, {"name", name}});
    }
  }
  out.push_back(std::move(drops));
  out.push_back(std::move(events));
  out.push_back(std::move(other));
  return out;
}

}  // namespace sluice::agent
