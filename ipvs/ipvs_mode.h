// IpvsMode: the `ipvs` ProxyMode. Programs a ServiceTable into the kernel's
// IPVS virtual servers over ONE persistent generic-netlink socket
// (NetlinkClient), translating with ipvs_plan.h.
//
// Write discipline (what kube-proxy's IPVS mode gets wrong, #73382/#84906):
//  - sync() dumps the kernel's tables once (services, then each one's
//    destinations) and adopts them as the programmed state - no flush, so
//    established connections survive an agent restart - then sends only
//    the differences, as one pipelined batch (the API server's Service
//    first, so a new node reaches it before anything else).
//  - apply(diff) computes the changes of the services in `diff` against the
//    state kept in memory and sends them as one batch: never a re-read of
//    the table. If the kernel refuses a change, apply() fails and the mode
//    forgets its state: the agent's recovery sync() dumps the kernel again.
//  - Removed TCP/SCTP destinations drain at weight 0 and are deleted when
//    their established connections are gone (or at the hard cap); a drain
//    thread polls their counts only while something drains, once per
//    drainCheckPeriod. UDP destinations go at once with their conntrack
//    entries (ConntrackClient), when nf_conntrack_netlink is there.
//
// Ownership: the mode owns every virtual server of its network namespace
// (one agent per node, as kube-proxy; `sluice up --cleanup` removes them).
//
// Threading: every method may be called from any thread; they serialise on
// one mutex (the netlink sockets are single-owner). stats() reads a
// snapshot under its own lock, so a metrics scrape never waits for a sync.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/proxy_mode.h"
#include "ipvs/conntrack_client.h"
#include "ipvs/ipvs_plan.h"
#include "ipvs/netlink_client.h"

namespace sluice::ipvs {

// The kernel's mh table size: CONFIG_IP_VS_MH_TAB_INDEX=12 on Debian's
// kernels, primes[12 - 8] in ip_vs_mh.c. A build option, not per service.
inline constexpr uint32_t kKernelMhTableSize = 4093;

struct IpvsModeOptions {
  PlanOptions plan;
  // How often the drain thread reads the counts of draining destinations
  // (only while there are some).
  std::chrono::milliseconds drainCheckPeriod{1000};
  // Connection timeouts set at create (0: leave the kernel's).
  Timeouts timeouts;
  // Set by the Datapath when it enforces loadBalancerSourceRanges (nft).
  bool sourceRangesEnforced = false;
};

class IpvsMode final : public ProxyMode {
 public:
  static Result<std::unique_ptr<IpvsMode>> create(IpvsModeOptions options);
  ~IpvsMode() override;
  IpvsMode(const IpvsMode&) = delete;
  IpvsMode& operator=(const IpvsMode&) = delete;

  std::string_view name() const override { return "ipvs"; }
  ModeCapabilities capabilities() const override;
  Result<void> sync(const ServiceTable& table) override;
  Result<void> apply(const ServiceDiff& diff) override;
  ProxyStats stats() const override;
  uint64_t epoch() const override { return epoch_.load(); }
  Result<std::vector<DescribedFrontend>> describeFrontends() const override;
  Result<DescribedSelection> describeSelection(const sluice::ServiceKey& key) const override;
  Result<std::vector<DescribedFlow>> describeFlows(size_t limit) const override;

  // One pass of the drain check now (the thread does it periodically):
  // deletes drained destinations, returns how many.
  Result<size_t> checkDrains();
  // Destinations draining now.
  size_t draining() const;
  const IpvsModeOptions& options() const { return options_; }

 private:
  IpvsMode(IpvsModeOptions options, std::unique_ptr<NetlinkClient> client,
           std::unique_ptr<ConntrackClient> conntrack, std::string conntrackError);

  // The kernel's tables as VsStates (owners unknown).
  Result<std::map<ServiceKey, VsState>> dumpKernel() const;
  // Applies `batch`, then flushes; updates `next` into programmed_ on success.
  Result<void> commit(const Batch& batch, const std::vector<ConntrackFilter>& flushes,
                      std::map<ServiceKey, std::optional<VsState>> next, const char* what);
  void drainLoop();
  void publishStats();

  const IpvsModeOptions options_;
  std::unique_ptr<NetlinkClient> client_;
  std::unique_ptr<ConntrackClient> conntrack_;  // null: UDP entries are not flushed
  const std::string conntrackError_;

  mutable std::mutex mu_;  // everything below but the stats snapshot
  std::map<ServiceKey, VsState> programmed_;
  std::map<sluice::ServiceKey, std::set<ServiceKey>> byOwner_;
  // Kept with programmed_ so an apply costs O(its services), not O(table).
  size_t destinations_ = 0;
  std::set<ServiceKey> drainingKeys_;  // virtual servers with a draining destination
  bool synced_ = false;                // apply() needs the state sync() adopts
  uint64_t applies_ = 0;
  uint64_t applyErrors_ = 0;
  uint64_t batches_ = 0;
  uint64_t applyRequests_ = 0;   // netlink requests apply() sent (not dumps, not drains)
  uint64_t changeFailures_ = 0;  // requests the kernel refused
  uint64_t drained_ = 0;         // destinations deleted once drained
  uint64_t drainTimeouts_ = 0;   // ... or at the hard cap
  uint64_t conntrackFlushed_ = 0;
  uint64_t conntrackErrors_ = 0;

  mutable std::mutex statsMu_;
  ProxyStats stats_;

  std::atomic<uint64_t> epoch_{1};
  std::condition_variable drainCv_;
  bool stopping_ = false;
  std::thread drainThread_;
};

}  // namespace sluice::ipvs
