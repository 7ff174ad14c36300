#include "dataplane/dpdk/dataplane.h"

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <optional>
#include <random>

namespace sluice::dpdk {
namespace {

constexpr uint16_t kBurst = 32;
// Ring sizes (frames; powers of two). Handoff holds a few bursts from each
// other worker; the exception rings hold what the kernel takes in a few
// hundred microseconds of TAP writes (~1-2 us each).
constexpr unsigned kHandoffRing = 4096, kFromKernelRing = 2048, kPriorityRing = 1024,
                   kBulkRing = 4096;
// Bulk exception frames the control thread writes to the TAP per round,
// after the whole priority ring: bounds how long gRPC and the priority
// traffic wait behind a flood to the node's own addresses.
constexpr unsigned kExceptionBudget = 256;
// Conntrack entries each worker checks for expiry per round.
constexpr size_t kExpireBudget = 64;
constexpr uint32_t kIdleSpins = 2000;
constexpr useconds_t kIdleSleepMinUs = 50, kIdleSleepMaxUs = 1000;

uint64_t monotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ULL + uint64_t(ts.tv_nsec);
}

rte_ring* makeRing(const std::string& name, unsigned size, unsigned flags) {
  return rte_ring_create(name.c_str(), size, SOCKET_ID_ANY, flags);
}

// Idle back-off shared by the loops: sleep once nothing came for a while.
class Idle {
 public:
  template <typename Offline, typename Online>
  void account(bool worked, Offline&& offline, Online&& online) {
    if (worked) {
      spins_ = 0;
      sleepUs_ = kIdleSleepMinUs;
      return;
    }
    if (++spins_ < kIdleSpins) return;
    offline();
    ::usleep(sleepUs_);
    sleepUs_ = std::min<useconds_t>(sleepUs_ * 2, kIdleSleepMaxUs);
    online();
  }

 private:
  uint32_t spins_ = 0;
  useconds_t sleepUs_ = kIdleSleepMinUs;
};

void addCounters(const LcoreCounters& c, std::vector<std::pair<std::string, uint64_t>>& out) {
  for (size_t r = 1; r < kDropReasonCount; ++r) {
    out.push_back({"drop." + std::string(toString(static_cast<DropReason>(r))), c.drops[r].get()});
  }
  for (size_t e = 0; e < kEventCount; ++e) {
    out.push_back({"event." + std::string(toString(static_cast<Event>(e))), c.events[e].get()});
  }
  out.push_back({"rx_packets", c.rxPackets.get()});
  out.push_back({"tx_packets", c.txPackets.get()});
  out.push_back({"polls", c.polls.get()});
  out.push_back({"idle_polls", c.idlePolls.get()});
}

}  // namespace

struct Dataplane::WorkerCtx {
  uint32_t index = 0;
  std::unique_ptr<Worker> worker;
  std::vector<FlowSide> heapSides;
  LcoreCounters counters;
  Counter conntrackEntries;         // gauge the worker refreshes each round
  rte_ring* handoff = nullptr;      // MP/SC: uplink frames other workers hand over
  rte_ring* fromKernel = nullptr;   // SP/SC: TAP frames from the control thread
  rte_ring* excPriority = nullptr;  // SP/SC: to the control thread
  rte_ring* excBulk = nullptr;
  // describeFlows(): 1 = asked, 2 = snapshot ready.
  std::atomic<int> describe{0};
  size_t describeLimit = 0;
  std::vector<DescribedDpdkFlow> snapshot;
};

Result<std::unique_ptr<Dataplane>> Dataplane::start(const DataplaneOptions& options) {
  std::unique_ptr<Dataplane> d(new Dataplane());
  d->options_ = options;
  d->options_.state.workers = std::max<uint32_t>(1, options.workers);
  d->epoch_ = std::random_device{}() | (uint64_t{std::random_device{}()} << 32) | 1;
  if (auto r = d->setUpPorts(); !r) return r.error();
  if (auto r = d->setUpState(); !r) return r.error();
  d->running_ = true;
  for (uint32_t w = 0; w < d->workers_.size(); ++w)
    d->threads_.emplace_back([p = d.get(), w] { p->workerLoop(w); });
  d->threads_.emplace_back([p = d.get()] { p->controlLoop(); });
  if (!options.tapInterface.empty()) {
    auto resolver = NeighbourResolver::start(*d->nextHops_, options.tapInterface);
    if (!resolver) return resolver.error();
    d->resolver_ = std::move(*resolver);
  }
  return d;
}

Result<void> Dataplane::setUpPorts() {
  const uint32_t workers = options_.state.workers;
  if (rte_eth_dev_get_port_by_name(options_.uplinkDevice.c_str(), &uplinkPort_) != 0) {
    return Error::notFound("uplink device " + options_.uplinkDevice + ": not probed by EAL");
  }
  if (rte_eth_dev_get_port_by_name(options_.tapDevice.c_str(), &tapPort_) != 0) {
    return Error::notFound("TAP device " + options_.tapDevice + ": not probed by EAL");
  }
  tapQueues_ = static_cast<uint16_t>(workers + 1);
  // Every RX and TX descriptor, every ring, a burst in flight per thread.
  const uint64_t need = uint64_t{workers} * (2ull * options_.descriptors + kHandoffRing +
                                             kFromKernelRing + kPriorityRing + kBulkRing) +
                        uint64_t{tapQueues_} * 2 * options_.descriptors + 4096;
  const unsigned mbufs = static_cast<unsigned>(std::bit_ceil(need) - 1);
  pool_ = rte_pktmbuf_pool_create("sluice_dpdk", mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                  SOCKET_ID_ANY);
  if (pool_ == nullptr) return Error::exhausted("mbuf pool of " + std::to_string(mbufs) + " mbufs");

  auto setUp = [this](uint16_t port, uint16_t rxq, uint16_t txq,
                      const std::string& what) -> Result<void> {
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(port, &info) != 0) return Error::internal(what + ": no device info");
    if (rxq > info.max_rx_queues || txq > info.max_tx_queues) {
      return Error::invalid(what + ": needs " + std::to_string(rxq) + " RX / " +
                            std::to_string(txq) + " TX queues, has " +
                            std::to_string(info.max_rx_queues) + " / " +
                            std::to_string(info.max_tx_queues) +
                            " (net_af_packet: qpairs=N; net_tap: queues follow the configuration)");
    }
    rte_eth_conf conf{};
    if (int r = rte_eth_dev_configure(port, rxq, txq, &conf); r != 0) {
      return Error::internal(what + ": rte_eth_dev_configure: " + std::string(rte_strerror(-r)));
    }
    uint16_t rxd = options_.descriptors, txd = options_.descriptors;
    rte_eth_dev_adjust_nb_rx_tx_desc(port, &rxd, &txd);
    for (uint16_t q = 0; q < rxq; ++q) {
      if (rte_eth_rx_queue_setup(port, q, rxd, rte_eth_dev_socket_id(port), nullptr, pool_) != 0) {
        return Error::internal(what + ": RX queue " + std::to_string(q));
      }
    }
    for (uint16_t q = 0; q < txq; ++q) {
      if (rte_eth_tx_queue_setup(port, q, txd, rte_eth_dev_socket_id(port), nullptr) != 0) {
        return Error::internal(what + ": TX queue " + std::to_string(q));
      }
    }
    if (int r = rte_eth_dev_start(port); r != 0) {
      return Error::internal(what + ": start: " + std::string(rte_strerror(-r)));
    }
    return okResult();
  };
  // The uplink: one RX and TX queue per worker (af_packet: qpairs=workers).
  if (auto r = setUp(uplinkPort_, uint16_t(workers), uint16_t(workers),
                     "uplink " + options_.uplinkDevice);
      !r) {
    return r;
  }
  // The TAP: a TX queue per worker and one for the control thread, which
  // polls every RX queue (net_tap wants as many RX as TX queues).
  if (auto r = setUp(tapPort_, tapQueues_, tapQueues_, "TAP " + options_.tapDevice); !r) return r;

  rte_ether_addr mac{};
  rte_eth_macaddr_get(uplinkPort_, &mac);
  std::memcpy(options_.pipeline.uplinkMac.data(), mac.addr_bytes, 6);
  // The kernel's TAP gets the uplink's MAC: frames passed either way are
  // addressed to the one MAC the rest of the network knows for this node.
  rte_eth_dev_default_mac_addr_set(tapPort_, &mac);
  options_.pipeline.kernelMac = options_.pipeline.uplinkMac;
  // What the pipeline answers ARP/ND with towards the kernel: locally
  // administered, "sl" and the uplink's last three bytes.
  options_.pipeline.routerMac = {
      0x02, 0x73, 0x6c, mac.addr_bytes[3], mac.addr_bytes[4], mac.addr_bytes[5]};
  // DSR's outer headers must fit the uplink's MTU (a PMD that cannot say
  // keeps the Ethernet default).
  uint16_t mtu = 0;
  if (rte_eth_dev_get_mtu(uplinkPort_, &mtu) == 0 && mtu >= 1280) options_.pipeline.uplinkMtu = mtu;
  return okResult();
}

Result<void> Dataplane::setUpState() {
  const StateLayout& layout = options_.state;
  if (!options_.stateFile.empty()) {
    auto f = StateFile::open(options_.stateFile, layout);
    if (!f) return f.error();
    state_ = std::move(*f);
  }
  const bool adopt = state_ && state_->adopted();
  auto region = [](std::vector<std::byte>& mem, size_t bytes) {
    mem.resize(bytes + 64);
    const auto p = reinterpret_cast<uintptr_t>(mem.data());
    return std::span<std::byte>(mem.data() + ((64 - p % 64) % 64), bytes);
  };
  const auto backendRegion =
      state_ ? state_->backends()
             : region(heapBackends_, BackendRegistry::regionBytes(layout.maxBackends));
  const auto affinityRegion =
      state_ ? state_->affinity()
             : region(heapAffinity_, AffinityTable::regionBytes(layout.affinityBuckets));
  auto backends = adopt ? BackendRegistry::adopt(backendRegion, layout.maxBackends)
                        : BackendRegistry::createIn(backendRegion, layout.maxBackends);
  if (!backends) return backends.error();
  backends_ = std::make_unique<BackendRegistry>(std::move(*backends));
  nextHops_ = std::make_unique<NextHops>(backends_->capacity());
  auto affinity = adopt ? AffinityTable::adopt(affinityRegion, layout.affinityBuckets)
                        : AffinityTable::createIn(affinityRegion, layout.affinityBuckets);
  if (!affinity) return affinity.error();
  affinity_ = std::make_unique<AffinityTable>(std::move(*affinity));

  auto rcu = Rcu::create(layout.workers + 1);
  if (!rcu) return rcu.error();
  rcu_ = std::move(*rcu);
  tables_ = std::make_unique<ServiceTables>(*rcu_, *backends_);
  steering_ = std::make_unique<Steering>(layout.workers, snatAddresses(options_.pipeline));
  controlCounters_ = std::make_unique<LcoreCounters>();
  const SharedState shared{tables_.get(), affinity_.get(), steering_.get(), &options_.pipeline,
                           nextHops_.get()};
  const ConntrackConfig ctConfig{layout.conntrackCapacity, {}};
  for (uint32_t w = 0; w < layout.workers; ++w) {
    auto ctx = std::make_unique<WorkerCtx>();
    ctx->index = w;
    std::span<FlowSide> sides;
    Result<Conntrack> ct = Error::internal("unset");
    if (state_) {
      sides = state_->flowSides(w);
      ct = adopt ? Conntrack::adopt(state_->conntrack(w), ctConfig)
                 : Conntrack::createIn(state_->conntrack(w), ctConfig);
    } else {
      ctx->heapSides.resize(layout.conntrackCapacity);
      sides = ctx->heapSides;
      ct = Conntrack::create(ctConfig);
    }
    if (!ct) return ct.error().wrap("worker " + std::to_string(w));
    adopted_ += adopt ? ct->size() : 0;
    auto worker = Worker::create(w, shared, std::move(*ct), sides, ctx->counters);
    if (!worker) return worker.error();
    ctx->worker = std::make_unique<Worker>(std::move(*worker));
    const std::string n = std::to_string(w);
    ctx->handoff = makeRing("sl_handoff" + n, kHandoffRing, RING_F_SC_DEQ);
    ctx->fromKernel = makeRing("sl_fromkern" + n, kFromKernelRing, RING_F_SP_ENQ | RING_F_SC_DEQ);
    ctx->excPriority = makeRing("sl_excprio" + n, kPriorityRing, RING_F_SP_ENQ | RING_F_SC_DEQ);
    ctx->excBulk = makeRing("sl_excbulk" + n, kBulkRing, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (!ctx->handoff || !ctx->fromKernel || !ctx->excPriority || !ctx->excBulk) {
      return Error::exhausted("rings for worker " + n);
    }
    rcu_->registerReader(w);
    workers_.push_back(std::move(ctx));
  }
  rcu_->registerReader(layout.workers);  // the control thread
  if (state_ && !adopt) state_->markFormatted();
  return okResult();
}

void Dataplane::workerLoop(uint32_t w) {
  WorkerCtx& ctx = *workers_[w];
  Worker& worker = *ctx.worker;
  LcoreCounters& counters = ctx.counters;
  rte_mbuf* in[kBurst];
  rte_mbuf* toUplink[kBurst];
  rte_mbuf* toTap[kBurst];
  Verdict verdicts[kBurst];
  Idle idle;
  while (running_.load(std::memory_order_relaxed)) {
    const uint64_t now = monotonicNs();
    uint32_t work = 0;
    auto run = [&](uint16_t n, PortRole from, bool steered) {
      if (n == 0) return;
      work += n;
      worker.process(in, n, from, now, verdicts, steered);
      uint16_t nu = 0, nt = 0;
      for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = in[i];
        switch (verdicts[i].action) {
          case Action::kTxUplink:
            toUplink[nu++] = m;
            break;
          case Action::kTxKernel:
            toTap[nt++] = m;
            break;
          case Action::kException:
          case Action::kExceptionPriority: {
            const bool prio = verdicts[i].action == Action::kExceptionPriority;
            if (rte_ring_sp_enqueue(prio ? ctx.excPriority : ctx.excBulk, m) != 0) {
              counters.drop(DropReason::kExceptionRingFull);
              rte_pktmbuf_free(m);
            } else {
              counters.event(prio ? Event::kExceptionPriority : Event::kException);
            }
            break;
          }
          case Action::kHandoff:
            if (rte_ring_mp_enqueue(workers_[verdicts[i].worker]->handoff, m) != 0) {
              counters.drop(DropReason::kHandoffRingFull);
              rte_pktmbuf_free(m);
            }
            break;
          case Action::kDrop:
            rte_pktmbuf_free(m);
            break;
        }
      }
      const uint16_t su = nu ? rte_eth_tx_burst(uplinkPort_, uint16_t(w), toUplink, nu) : 0;
      const uint16_t st = nt ? rte_eth_tx_burst(tapPort_, uint16_t(w), toTap, nt) : 0;
      counters.txPackets.add(su + st);
      if (su < nu || st < nt) {
        counters.drop(DropReason::kTxQueueFull, (nu - su) + (nt - st));
        for (uint16_t i = su; i < nu; ++i) rte_pktmbuf_free(toUplink[i]);
        for (uint16_t i = st; i < nt; ++i) rte_pktmbuf_free(toTap[i]);
      }
    };
    // The kernel's frames first (small, and the node's own control traffic
    // rides in them), then what other workers handed over, then the NIC.
    run(uint16_t(rte_ring_sc_dequeue_burst(ctx.fromKernel, reinterpret_cast<void**>(in), kBurst,
                                           nullptr)),
        PortRole::kKernel, true);
    run(uint16_t(
            rte_ring_sc_dequeue_burst(ctx.handoff, reinterpret_cast<void**>(in), kBurst, nullptr)),
        PortRole::kUplink, true);
    run(rte_eth_rx_burst(uplinkPort_, uint16_t(w), in, kBurst), PortRole::kUplink, false);
    worker.expire(now, kExpireBudget);
    ctx.conntrackEntries.set(worker.conntrack().size());
    if (ctx.describe.load(std::memory_order_acquire) == 1) {
      ctx.snapshot.clear();
      worker.conntrack().forEach(now, [&](const ConntrackEntry& e) {
        if (ctx.describeLimit == 0 || ctx.snapshot.size() < ctx.describeLimit) {
          ctx.snapshot.push_back({w, e, worker.flowSide(e).serviceId,
                                   now > e.lastSeenNs ? now - e.lastSeenNs : 0});
        }
      });
      ctx.describe.store(2, std::memory_order_release);
    }
    counters.polls.add();
    if (work == 0) counters.idlePolls.add();
    rcu_->quiescent(w);
    idle.account(
        work > 0, [&] { rcu_->offline(w); }, [&] { rcu_->online(w); });
  }
  rcu_->offline(w);
}

void Dataplane::controlLoop() {
  const uint32_t self = uint32_t(workers_.size());
  const uint16_t txq = uint16_t(tapQueues_ - 1);
  const SharedState shared{tables_.get(), affinity_.get(), steering_.get(), &options_.pipeline,
                           nextHops_.get()};
  rte_mbuf* bufs[kBurst];
  Idle idle;
  auto toTap = [&](rte_mbuf** ms, uint16_t n) {
    const uint16_t sent = rte_eth_tx_burst(tapPort_, txq, ms, n);
    controlCounters_->txPackets.add(sent);
    if (sent < n) {
      controlCounters_->drop(DropReason::kTxQueueFull, n - sent);
      for (uint16_t i = sent; i < n; ++i) rte_pktmbuf_free(ms[i]);
    }
  };
  while (running_.load(std::memory_order_relaxed)) {
    uint32_t work = 0;
    // The kernel's frames, to the worker owning each one's flow.
    for (uint16_t q = 0; q < tapQueues_; ++q) {
      const uint16_t n = rte_eth_rx_burst(tapPort_, q, bufs, kBurst);
      work += n;
      controlCounters_->rxPackets.add(n);
      for (uint16_t i = 0; i < n; ++i) {
        const uint32_t owner = steerOwner(bufs[i], PortRole::kKernel, shared);
        if (rte_ring_sp_enqueue(workers_[owner]->fromKernel, bufs[i]) != 0) {
          controlCounters_->drop(DropReason::kHandoffRingFull);
          rte_pktmbuf_free(bufs[i]);
        }
      }
    }
    // The exception path: every priority frame, then a budget of bulk ones.
    for (auto& w : workers_) {
      for (unsigned n;
           (n = rte_ring_sc_dequeue_burst(w->excPriority, reinterpret_cast<void**>(bufs), kBurst,
                                          nullptr)) > 0;) {
        work += n;
        toTap(bufs, uint16_t(n));
      }
    }
    unsigned budget = kExceptionBudget;
    for (auto& w : workers_) {
      while (budget > 0) {
        const unsigned n = rte_ring_sc_dequeue_burst(w->excBulk, reinterpret_cast<void**>(bufs),
                                                     std::min<unsigned>(kBurst, budget), nullptr);
        if (n == 0) break;
        work += n;
        budget -= n;
        toTap(bufs, uint16_t(n));
      }
    }
    rcu_->quiescent(self);
    if (std::unique_lock lock(writer_, std::try_to_lock); lock.owns_lock()) rcu_->reclaim();
    idle.account(
        work > 0, [&] { rcu_->offline(self); }, [&] { rcu_->online(self); });
  }
  rcu_->offline(self);
}

void Dataplane::stop() {
  {
    std::lock_guard lock(writer_);  // sync/apply hand it backends under this lock
    resolver_.reset();
  }
  if (!running_.exchange(false)) return;
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  rte_eth_dev_stop(uplinkPort_);
  rte_eth_dev_stop(tapPort_);
}

Dataplane::~Dataplane() {
  stop();
  for (uint32_t w = 0; w <= workers_.size() && rcu_; ++w) rcu_->unregisterReader(w);
  tables_.reset();
  workers_.clear();
}

Result<void> Dataplane::sync(const ServiceTable& table) {
  std::lock_guard lock(writer_);
  auto r = tables_->sync(table);
  ++(r ? applies_ : applyErrors_);
  trackRemoteBackends();
  return r;
}

Result<void> Dataplane::apply(const ServiceDiff& diff) {
  std::lock_guard lock(writer_);
  auto r = tables_->apply(diff);
  ++(r ? applies_ : applyErrors_);
  trackRemoteBackends();
  return r;
}

void Dataplane::trackRemoteBackends() {
  if (!resolver_) return;
  std::vector<std::pair<uint32_t, IpAddress>> remote;
  for (const auto& [key, service] : tables_->services()) {
    for (const BackendRef& b : service->backends) {
      if (!b.nodeLocal) remote.emplace_back(b.id, b.address);
    }
  }
  resolver_->track(std::move(remote));
}

DataplaneStatus Dataplane::status() const {
  DataplaneStatus s;
  s.epoch = epoch_;
  s.adoptedFlows = adopted_;
  std::optional<NeighbourStats> neighbours;
  {
    std::lock_guard lock(writer_);
    s.services = tables_->services().size();
    s.frontends = tables_->frontendCount();
    s.backends = tables_->backendCount();
    s.applies = applies_;
    s.applyErrors = applyErrors_;
    if (resolver_) neighbours = resolver_->stats();
  }
  addCounters(*controlCounters_, s.counters);
  // After the lcore counters' names, which the sum below indexes.
  if (neighbours) {
    s.counters.insert(s.counters.end(), {{"neighbour.resolved", neighbours->resolved},
                                         {"neighbour.unresolved", neighbours->unresolved},
                                         {"neighbour.unrouted", neighbours->unrouted},
                                         {"neighbour.requests", neighbours->requests}});
  }
  for (const auto& w : workers_) {
    DataplaneStatus::Lcore l;
    addCounters(w->counters, l.counters);
    l.conntrackEntries = w->conntrackEntries.get();
    l.conntrackCapacity = options_.state.conntrackCapacity;
    for (size_t i = 0; i < l.counters.size(); ++i) s.counters[i].second += l.counters[i].second;
    s.lcores.push_back(std::move(l));
  }
  return s;
}

namespace {
DescribedBackend describedOf(const BackendRef& b) {
  return {b.id, Endpoint{b.address, b.port}, b.weight, b.state, b.nodeLocal, 0};
}
}  // namespace

std::vector<DescribedFrontend> Dataplane::describeFrontends() const {
  std::lock_guard lock(writer_);
  std::vector<DescribedFrontend> out;
  for (const auto& [key, e] : tables_->services()) {
    for (const Frontend& f : e->source.frontends) {
      DescribedFrontend d;
      d.frontend = f;
      d.service = key.toString();
      d.serviceId = e->id;
      d.affinity = e->affinity;
      d.affinityTimeoutSeconds = e->affinity ? e->source.affinity.timeoutSeconds : 0;
      d.local = e->source.isLocal(f.scope);
      d.maglev = e->maglev;
      d.maglevSize = e->maglev ? e->source.maglevTableSize : 0;
      const SelectionSet& set = e->set(f.address.family(), d.local);
      (set.terminatingFallback ? d.terminating : d.active) = uint32_t(set.members.size());
      for (const BackendRef& b : e->backends) {
        if (b.address.family() != f.address.family()) continue;
        d.backends.push_back(describedOf(b));
      }
      out.push_back(std::move(d));
    }
  }
  return out;
}

Result<DescribedSelection> Dataplane::describeSelection(const ServiceKey& key) const {
  std::lock_guard lock(writer_);
  auto it = tables_->services().find(key);
  if (it == tables_->services().end()) {
    return Error::notFound("service " + key.toString() + ": not in the dpdk dataplane");
  }
  const ServiceEntry& e = *it->second;
  DescribedSelection out;
  out.service = key.toString();
  out.serviceId = e.id;
  for (const IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
    for (const bool local : {false, true}) {
      const SelectionSet& set = e.set(family, local);
      if (set.maglev.empty()) continue;
      SelectionTable t;
      t.id = uint32_t(family == IpFamily::kV6) * 2 + uint32_t(local);
      t.family = family;
      t.nodeLocal = local;
      t.slots.reserve(set.maglev.size());
      for (const uint32_t index : set.maglev) t.slots.push_back(e.backends[index].id);
      out.tables.push_back(std::move(t));
    }
  }
  for (const BackendRef& b : e.backends) {
    out.backends.push_back(describedOf(b));
  }
  return out;
}

std::vector<DescribedDpdkFlow> Dataplane::describeFlows(size_t limit) const {
  std::vector<DescribedDpdkFlow> out;
  for (const auto& w : workers_) {
    w->describeLimit = limit == 0 ? 0 : limit - std::min(limit - 1, out.size());
    w->describe.store(1, std::memory_order_release);
    // A worker answers between bursts; asleep, within its 1 ms back-off.
    for (int i = 0; i < 2000 && w->describe.load(std::memory_order_acquire) != 2; ++i)
      ::usleep(500);
    if (w->describe.load(std::memory_order_acquire) == 2) {
      out.insert(out.end(), w->snapshot.begin(), w->snapshot.end());
    }
    w->describe.store(0, std::memory_order_release);
    if (limit != 0 && out.size() >= limit) break;
  }
  if (limit != 0 && out.size() > limit) out.resize(limit);
  return out;
}

}  // namespace sluice::dpdk
