#include "ipvs/ipvs_mode.h"

#include <algorithm>
#include "dataplane/log.h"

namespace sluice::ipvs {

namespace {

// The API server's Service: programmed first by sync(), so a new node's
// pods reach it before the rest of the table is written (kube-proxy wrote
// it in map order, and its SNAT rule last: #133773).
bool isApiServer(const sluice::ServiceKey& k) {
  return k.ns == "default" && k.name == "kubernetes";
}

}  // namespace

IpvsMode::IpvsMode(IpvsModeOptions options, std::unique_ptr<NetlinkClient> client,
                   std::unique_ptr<ConntrackClient> conntrack, std::string conntrackError)
    : options_(std::move(options)),
      client_(std::move(client)),
      conntrack_(std::move(conntrack)),
      conntrackError_(std::move(conntrackError)) {
  drainThread_ = std::thread([this] { drainLoop(); });
}

IpvsMode::~IpvsMode() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  drainCv_.notify_all();
  if (drainThread_.joinable()) drainThread_.join();
}

Result<std::unique_ptr<IpvsMode>> IpvsMode::create(IpvsModeOptions options) {
  if (!knownScheduler(options.plan.defaultScheduler)) {
    return Error::invalid("ipvs scheduler \"" + options.plan.defaultScheduler +
                          "\": not one of rr, wrr, lc, wlc, sh, mh, sed, nq");
  }
  auto client = NetlinkClient::create();
  if (!client) return client.error().wrap("ipvs mode");
  if (options.timeouts.tcpSeconds || options.timeouts.tcpFinSeconds ||
      options.timeouts.udpSeconds) {
    if (auto r = (*client)->setTimeouts(options.timeouts); !r) {
      return r.error().wrap("ipvs mode: set timeouts");
    }
  }
  // Without nf_conntrack_netlink the mode still works; capabilities() says
  // what is lost.
  auto ct = ConntrackClient::create();
  std::unique_ptr<ConntrackClient> conntrack;
  std::string ctError;
  if (ct) {
    conntrack = std::move(*ct);
  } else {
    ctError = ct.error().message;
  }
  return std::unique_ptr<IpvsMode>(new IpvsMode(std::move(options), std::move(*client),
                                                std::move(conntrack), std::move(ctError)));
}

Result<std::map<ServiceKey, VsState>> IpvsMode::dumpKernel() const {
  auto services = client_->listServices();
  if (!services) return services.error().wrap("dump IPVS services");
  std::map<ServiceKey, VsState> out;
  for (Service& s : *services) {
    auto dests = client_->listDestinations(s.key);
    if (!dests) return dests.error().wrap("dump IPVS destinations of " + s.key.toString());
    VsState st;
    for (Destination& d : *dests) {
      const EndpointKey ep{d.address, d.port};
      st.dests[ep] = DestState{std::move(d), false, {}};
    }
    const ServiceKey key = s.key;
    st.svc = std::move(s);
    out.emplace(key, std::move(st));
  }
  return out;
}

Result<void> IpvsMode::commit(const Batch& batch, const std::vector<ConntrackFilter>& flushes,
                              std::map<ServiceKey, std::optional<VsState>> next, const char* what) {
  if (!batch.empty()) {
    auto r = client_->apply(batch);
    ++batches_;
    if (!r) {
      synced_ = false;
      return r.error().wrap(std::string(what) + ": netlink");
    }
    if (!r->ok()) {
      // The kernel applied the rest; which state it holds now is known only
      // to a dump, which the agent's recovery sync() takes.
      changeFailures_ += r->failures.size();
      synced_ = false;
      auto status = r->status();
      return status.error().wrap(what);
    }
  }
  for (auto& [key, state] : next) {
    auto cur = programmed_.find(key);
    if (cur != programmed_.end()) {
      auto owned = byOwner_.find(cur->second.owner);
      if (owned != byOwner_.end()) {
        owned->second.erase(key);
        if (owned->second.empty()) byOwner_.erase(owned);
      }
      destinations_ -= cur->second.dests.size();
      drainingKeys_.erase(key);
    }
    if (state) {
      byOwner_[state->owner].insert(key);
      destinations_ += state->dests.size();
      if (state->draining() > 0) drainingKeys_.insert(key);
      programmed_[key] = std::move(*state);
    } else if (cur != programmed_.end()) {
      programmed_.erase(cur);
    }
  }
  // Conntrack after IPVS: a packet arriving in between would recreate the
  // entry towards the deleted destination otherwise.
  for (const ConntrackFilter& f : flushes) {
    if (!conntrack_) break;
    auto n = conntrack_->remove(f);
    if (n) {
      conntrackFlushed_ += *n;
    } else {
      ++conntrackErrors_;
      log::warning(log::Limit{"ipvs/conntrack"}, "ipvs", "conntrack flush failed",
                   {{"flow", f.toString()}, {"err", n.error().message}});
    }
  }
  return okResult();
}

Result<void> IpvsMode::sync(const ServiceTable& table) {
  std::lock_guard lock(mu_);
  synced_ = false;
  auto dumped = dumpKernel();
  if (!dumped) return dumped.error();
  programmed_ = std::move(*dumped);
  byOwner_.clear();
  drainingKeys_.clear();
  destinations_ = 0;
  for (const auto& [key, st] : programmed_) {
    byOwner_[st.owner].insert(key);
    destinations_ += st.dests.size();
  }

  std::map<ServiceKey, VirtualServer> want;
  std::vector<ServiceKey> order;  // the API server's virtual servers first
  std::vector<ServiceKey> rest;
  for (const auto& [k, svc] : table) {
    std::string warning;
    for (VirtualServer& vs : virtualServersOf(svc, options_.plan, &warning)) {
      (isApiServer(k) ? order : rest).push_back(vs.svc.key);
      want.emplace(vs.svc.key, std::move(vs));
    }
    if (!warning.empty()) log::warning("ipvs", "service not programmed as asked", {{"why", warning}});
  }
  order.insert(order.end(), rest.begin(), rest.end());

  const auto now = Clock::now();
  Batch batch;
  std::vector<ConntrackFilter> flushes;
  std::map<ServiceKey, std::optional<VsState>> next;
  for (const ServiceKey& key : order) {
    auto cur = programmed_.find(key);
    next[key] = reconcile(key, cur == programmed_.end() ? nullptr : &cur->second, &want.at(key),
                          now, options_.plan, batch, flushes);
  }
  for (const auto& [key, st] : programmed_) {
    if (!want.count(key)) {
      next[key] = reconcile(key, &st, nullptr, now, options_.plan, batch, flushes);
    }
  }
  if (auto r = commit(batch, flushes, std::move(next), "ipvs sync"); !r) {
    ++applyErrors_;
    publishStats();
    return r;
  }
  synced_ = true;
  publishStats();
  drainCv_.notify_all();
  return okResult();
}

Result<void> IpvsMode::apply(const ServiceDiff& diff) {
  std::lock_guard lock(mu_);
  if (!synced_) {
    ++applyErrors_;
    publishStats();
    return Error{ErrorCode::kFailedPrecondition,
                 "ipvs apply: the kernel's state is not known (no successful sync yet)"};
  }
  std::map<ServiceKey, VirtualServer> want;
  std::vector<ServiceKey> touched;
  for (const ServiceChange& c : diff.changes) {
    if (auto it = byOwner_.find(c.key()); it != byOwner_.end()) {
      touched.insert(touched.end(), it->second.begin(), it->second.end());
    }
    if (!c.after) continue;
    std::string warning;
    for (VirtualServer& vs : virtualServersOf(*c.after, options_.plan, &warning)) {
      touched.push_back(vs.svc.key);
      want.insert_or_assign(vs.svc.key, std::move(vs));
    }
    if (!warning.empty()) log::warning("ipvs", "service not programmed as asked", {{"why", warning}});
  }
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());

  const auto now = Clock::now();
  Batch batch;
  std::vector<ConntrackFilter> flushes;
  std::map<ServiceKey, std::optional<VsState>> next;
  for (const ServiceKey& key : touched) {
    auto cur = programmed_.find(key);
    auto w = want.find(key);
    next[key] =
        reconcile(key, cur == programmed_.end() ? nullptr : &cur->second,
                  w == want.end() ? nullptr : &w->second, now, options_.plan, batch, flushes);
  }
  applyRequests_ += batch.size();
  if (auto r = commit(batch, flushes, std::move(next), "ipvs apply"); !r) {
    ++applyErrors_;
    publishStats();
    return r;
  }
  ++applies_;
  publishStats();
  drainCv_.notify_all();
  return okResult();
}

Result<size_t> IpvsMode::checkDrains() {
  std::lock_guard lock(mu_);
  if (!synced_) return size_t{0};
  const auto now = Clock::now();
  Batch batch;
  std::map<ServiceKey, std::optional<VsState>> next;
  size_t timeouts = 0;
  size_t deletedDests = 0;
  for (const ServiceKey& key : drainingKeys_) {
    const VsState& st = programmed_.at(key);
    auto dests = client_->listDestinations(key);
    if (!dests) return dests.error().wrap("drain check of " + key.toString());
    std::map<EndpointKey, const Destination*> live;
    for (const Destination& d : *dests) live[{d.address, d.port}] = &d;
    VsState updated = st;
    bool changed = false;
    for (auto it = updated.dests.begin(); it != updated.dests.end();) {
      if (!it->second.draining) {
        ++it;
        continue;
      }
      auto l = live.find(it->first);
      // Drained: no established connection left. Closing states (FIN_WAIT,
      // TIME_WAIT: InActConn) finish without the destination.
      const bool gone = l == live.end();
      const bool drained = gone || l->second->activeConnections == 0;
      const bool capped = now >= it->second.deadline;
      if (drained || capped) {
        if (!gone) batch.deleteDestination(key, it->first.first, it->first.second);
        if (!drained) ++timeouts;
        ++deletedDests;
        it = updated.dests.erase(it);
        changed = true;
      } else {
        ++it;
      }
    }
    if (changed && updated.dests.empty()) {
      batch.deleteService(key);  // the last one drained: nftables refuses from now on
      next[key] = std::nullopt;
    } else if (changed) {
      next[key] = std::move(updated);
    }
  }
  const size_t deleted = deletedDests;
  if (auto r = commit(batch, {}, std::move(next), "ipvs drain"); !r) {
    publishStats();
    return r.error();
  }
  drained_ += deleted - timeouts;
  drainTimeouts_ += timeouts;
  publishStats();
  return deleted;
}

size_t IpvsMode::draining() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const ServiceKey& key : drainingKeys_) n += programmed_.at(key).draining();
  return n;
}

void IpvsMode::drainLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    drainCv_.wait_for(lock, options_.drainCheckPeriod);
    if (stopping_) break;
    if (drainingKeys_.empty()) {
      // Nothing drains: sleep until an apply/sync starts a drain.
      drainCv_.wait(lock, [this] { return stopping_ || !drainingKeys_.empty(); });
      continue;
    }
    lock.unlock();
    if (auto r = checkDrains(); !r) {
      log::warning(log::Limit{"ipvs/drains"}, "ipvs", "checking draining destinations failed",
                   {{"err", r.error().message}});
    }
    lock.lock();
  }
}

}  // namespace sluice::ipvs
