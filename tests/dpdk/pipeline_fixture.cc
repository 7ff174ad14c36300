#include "tests/dpdk/pipeline_fixture.h"

#include <gtest/gtest.h>
#include <rte_mbuf.h>

#include <cstring>

#include "tests/bpf/host_cases.h"
#include "tests/dpdk/eal_env.h"

namespace sluice::dpdk::testing {

Region::Region(size_t bytes) : bytes_(bytes) {
  data_.reset(static_cast<std::byte*>(::operator new (bytes, std::align_val_t{64})));
  std::memset(data_.get(), 0, bytes);
}

PipelineConfig tableConfig() {
  PipelineConfig c;
  c.uplinkMac = kUplinkMac;
  c.kernelMac = sluice::testing::kHostMac;
  c.routerMac = kRouterMac;
  c.gatewayMac = kGatewayMac;
  c.nodeV4 = IpAddress::parse(sluice::testing::host::kNode).value();
  c.nodeV6 = IpAddress::parse(sluice::testing::host::kNode6).value();
  c.nodeSnatPorts = {1024, 65535};
  return c;
}

std::unique_ptr<TestPipeline> TestPipeline::create(const Options& o) {
  std::unique_ptr<TestPipeline> p(new TestPipeline());
  p->options_ = o;
  auto rcu = Rcu::create(o.workers + 4);
  EXPECT_TRUE(rcu.ok());
  if (!rcu) return nullptr;
  p->rcu_ = std::move(*rcu);
  constexpr uint32_t kBackends = 4096, kBuckets = 1024;
  p->backendRegion_ = std::make_unique<Region>(BackendRegistry::regionBytes(kBackends));
  p->affinityRegion_ = std::make_unique<Region>(AffinityTable::regionBytes(kBuckets));
  auto backends = BackendRegistry::createIn(p->backendRegion_->span(), kBackends);
  auto affinity = AffinityTable::createIn(p->affinityRegion_->span(), kBuckets);
  EXPECT_TRUE(backends.ok() && affinity.ok());
  if (!backends || !affinity) return nullptr;
  p->backends_ = std::make_unique<BackendRegistry>(std::move(*backends));
  p->affinity_ = std::make_unique<AffinityTable>(std::move(*affinity));
  p->tables_ = std::make_unique<ServiceTables>(*p->rcu_, *p->backends_);
  p->steering_ = o.rss ? std::make_unique<Steering>(o.workers, snatAddresses(o.config), *o.rss)
                       : std::make_unique<Steering>(o.workers, snatAddresses(o.config));
  const SharedState shared{p->tables_.get(), p->affinity_.get(), p->steering_.get(),
                           &p->options_.config};
  for (uint32_t w = 0; w < o.workers; ++w) {
    p->counters_.push_back(std::make_unique<LcoreCounters>());
    p->sides_.emplace_back(o.conntrackCapacity);
    auto ct = Conntrack::create({o.conntrackCapacity, {}});
    EXPECT_TRUE(ct.ok());
    if (!ct) return nullptr;
    auto worker = Worker::create(w, shared, std::move(*ct), p->sides_.back(), *p->counters_.back());
    EXPECT_TRUE(worker.ok()) << (worker.ok() ? "" : worker.error().message);
    if (!worker) return nullptr;
    p->workers_.push_back(std::make_unique<Worker>(std::move(*worker)));
    p->rcu_->registerReader(w);
  }
  return p;
}

TestPipeline::~TestPipeline() {
  for (uint32_t w = 0; w < workers_.size(); ++w) rcu_->unregisterReader(w);
  workers_.clear();
  tables_.reset();  // before the Rcu: retired entries are freed by its destructor
}

void TestPipeline::program(const ServiceTable& table) {
  auto r = tables_->sync(table);
  ASSERT_TRUE(r.ok()) << r.error().message;
  // The workers are quiescent between runs: what was retired can go.
  for (uint32_t w = 0; w < workers_.size(); ++w) rcu_->quiescent(w);
  rcu_->reclaim();
}

RunResult TestPipeline::run(const std::vector<uint8_t>& frame, PortRole from, uint64_t nowNs,
                            uint32_t rx) {
  RunResult out;
  rte_mbuf* m = mbufOf(frame);
  EXPECT_NE(m, nullptr);
  if (m == nullptr) return out;
  workers_[rx]->process(&m, 1, from, nowNs, &out.verdict);
  out.worker = rx;
  if (out.verdict.action == Action::kHandoff) {
    out.worker = out.verdict.worker;
    workers_[out.worker]->process(&m, 1, from, nowNs, &out.verdict, /*steered=*/true);
  }
  out.frame = bytesOf(m);
  rte_pktmbuf_free(m);
  for (uint32_t w = 0; w < workers_.size(); ++w) rcu_->quiescent(w);
  return out;
}

std::vector<RunResult> TestPipeline::runBurst(const std::vector<std::vector<uint8_t>>& frames,
                                              PortRole from, uint64_t nowNs, uint32_t rx) {
  std::vector<rte_mbuf*> ms;
  for (const auto& f : frames) ms.push_back(mbufOf(f));
  std::vector<Verdict> verdicts(frames.size());
  workers_[rx]->process(ms.data(), static_cast<uint16_t>(ms.size()), from, nowNs, verdicts.data());
  std::vector<RunResult> out;
  for (size_t i = 0; i < ms.size(); ++i) {
    out.push_back({verdicts[i], bytesOf(ms[i]), rx});
    rte_pktmbuf_free(ms[i]);
  }
  return out;
}

uint64_t TestPipeline::counter(const std::string& name) const {
  uint64_t total = 0;
  bool known = false;
  for (const auto& c : counters_) {
    if (name.rfind("drop.", 0) == 0) {
      for (size_t r = 0; r < kDropReasonCount; ++r) {
        if (name.substr(5) == toString(static_cast<DropReason>(r))) {
          total += c->drops[r].get();
          known = true;
        }
      }
    } else if (name.rfind("event.", 0) == 0) {
      for (size_t e = 0; e < kEventCount; ++e) {
        if (name.substr(6) == toString(static_cast<Event>(e))) {
          total += c->events[e].get();
          known = true;
        }
      }
    }
  }
  EXPECT_TRUE(known) << "no counter " << name;
  return total;
}

}  // namespace sluice::dpdk::testing
