// The DPDK pipeline as the dpdk suite drives it: real Workers (one per
// simulated lcore) over real mbufs from an EAL mempool, the RCU-published
// ServiceTables, a BackendRegistry and an AffinityTable in heap regions (the
// process puts them in a shared-memory file), and a runner that sends a
// frame in on one side and follows handoffs to the owning worker, as the
// process's worker loop does.
#pragma once

#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dataplane/dpdk/pipeline.h"
#include "dataplane/dpdk/rcu.h"
#include "tests/bpf/packet_cases.h"

namespace sluice::dpdk::testing {

// A 64-byte-aligned heap buffer standing in for a mapped file.
class Region {
 public:
  explicit Region(size_t bytes);
  std::span<std::byte> span() { return {data_.get(), bytes_}; }

 private:
  struct Free {
    void operator()(std::byte* p) const { ::operator delete (p, std::align_val_t{64}); }
  };
  size_t bytes_;
  std::unique_ptr<std::byte, Free> data_;
};

// MACs of the test node (locally administered).
inline constexpr MacAddr kUplinkMac = {0x02, 0x00, 0x00, 0x00, 0x01, 0x10};
inline constexpr MacAddr kRouterMac = {0x02, 0x00, 0x00, 0x00, 0x01, 0x20};
inline constexpr MacAddr kGatewayMac = {0x02, 0x00, 0x00, 0x00, 0x01, 0x30};

// The config the packet tables assume: the eBPF fixtures' node addresses
// (tests/bpf/host_cases.h), the TAP's kernel MAC as the frames' kHostMac,
// and every port allowed for SNAT so a client's port is kept when free,
// as the eBPF mode keeps it.
PipelineConfig tableConfig();

struct RunResult {
  Verdict verdict;
  std::vector<uint8_t> frame;  // as the pipeline left it
  uint32_t worker = 0;         // the worker that decided (after handoffs)
};

class TestPipeline {
 public:
  struct Options {
    uint32_t workers = 1;
    uint32_t conntrackCapacity = 4096;
    PipelineConfig config = tableConfig();
    std::optional<RssConfig> rss;  // RSS-mode steering instead of software
  };
  static std::unique_ptr<TestPipeline> create(const Options& options);
  ~TestPipeline();

  ServiceTables& tables() { return *tables_; }
  Rcu& rcu() { return *rcu_; }
  Worker& worker(uint32_t i) { return *workers_[i]; }
  uint32_t workers() const { return static_cast<uint32_t>(workers_.size()); }
  const PipelineConfig& config() const { return options_.config; }
  const Steering& steering() const { return *steering_; }

  // Makes the tables hold `table` and reclaims what the change retired.
  void program(const ServiceTable& table);

  // Sends `frame` in on `from` through worker `rx` (the one polling that
  // queue) and on to the worker it hands the frame to, if any.
  RunResult run(const std::vector<uint8_t>& frame, PortRole from, uint64_t nowNs, uint32_t rx = 0);
  // The same for a whole burst through one worker, without following
  // handoffs (verdicts as the worker gave them).
  std::vector<RunResult> runBurst(const std::vector<std::vector<uint8_t>>& frames, PortRole from,
                                  uint64_t nowNs, uint32_t rx = 0);

  // "drop.<reason>" / "event.<name>" summed over the workers.
  uint64_t counter(const std::string& name) const;

 private:
  TestPipeline() = default;

  Options options_;
  std::unique_ptr<Rcu> rcu_;
  std::unique_ptr<Region> backendRegion_, affinityRegion_;
  std::unique_ptr<BackendRegistry> backends_;
  std::unique_ptr<AffinityTable> affinity_;
  std::unique_ptr<ServiceTables> tables_;
  std::unique_ptr<Steering> steering_;
  std::vector<std::unique_ptr<LcoreCounters>> counters_;
  std::vector<std::vector<FlowSide>> sides_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace sluice::dpdk::testing
