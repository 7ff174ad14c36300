// The dpdk mode as the agent holds it (dataplane/datapath.h): DpdkMode, a
// gRPC client of the sluice-dpdk process (dpdk.proto) implementing
// ProxyMode, and DpdkDatapath, which starts that process when none answers
// on its socket (detached: an agent restart changes nothing in the
// dataplane) and stops it on cleanup.
//
// Epoch: a poller asks the process for its epoch every 500 ms; a new one
// means the process restarted with empty service tables (its flows came
// back from the state file), so the listener set with onStateLost() wakes
// the agent to resync. Apply carries the epoch it was synced against, so a
// diff never lands on tables that missed the sync before it.
//
// Flags (`--dpdk-<name>`, dpdkFlags() in the .cc): socket, start, binary,
// uplink-vdev, uplink-pci, tap, workers, state-file, kernel-addresses,
// kernel-routes, gateway-mac, snat-ports, conntrack-capacity.
//
// Threading: as ProxyMode's contract; stats() and epoch() from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/datapath.h"
#include "dataplane/proxy_mode.h"

namespace sluice::dpdk {

struct DpdkModeOptions {
  std::string socket;                    // the process's API socket
  bool start = true;                     // start sluice-dpdk when nothing answers
  std::string binary;                    // sluice-dpdk ("" = beside the agent, or on PATH)
  std::vector<std::string> processArgs;  // the process's flags, when the agent starts it
  std::string stateFile;
  std::string pidFile;  // where a started process's PID is kept (cleanup)

  static Result<DpdkModeOptions> fromFlags(const NodeConfig& node, const ModeFlagValues& values);
};

class DpdkMode final : public ProxyMode {
 public:
  // Connects to the process on options.socket (starting it first if asked),
  // and starts the epoch poller.
  static Result<std::unique_ptr<DpdkMode>> create(const DpdkModeOptions& options);
  ~DpdkMode() override;

  std::string_view name() const override { return "dpdk"; }
  ModeCapabilities capabilities() const override;
  Result<void> sync(const ServiceTable& table) override;
  Result<void> apply(const ServiceDiff& diff) override;
  ProxyStats stats() const override;
  uint64_t epoch() const override { return epoch_.load(); }
  void onStateLost(std::function<void()> listener) override;
  Result<std::vector<DescribedFrontend>> describeFrontends() const override;
  Result<DescribedSelection> describeSelection(const ServiceKey& key) const override;
  Result<std::vector<DescribedFlow>> describeFlows(size_t limit) const override;

  // Stops the poller; the process keeps running.
  void stop();

 private:
  DpdkMode() = default;
  Result<uint64_t> fetchEpoch() const;
  void poll();

  DpdkModeOptions options_;
  struct Client;  // the gRPC stub (dpdk_mode.cc)
  std::unique_ptr<Client> client_;
  std::atomic<uint64_t> epoch_{0};
  uint64_t syncedEpoch_ = 0;  // the epoch the last sync() landed on (agent thread)
  std::mutex listenerMu_;
  std::function<void()> listener_;
  std::mutex pollMu_;
  std::condition_variable pollCv_;
  bool stop_ = false;
  std::thread poller_;
};

class DpdkDatapath final : public Datapath {
 public:
  static Result<std::unique_ptr<DpdkDatapath>> create(const NodeConfig& node,
                                                      const DpdkModeOptions& options);
  // Stops a process an agent of these options started (its PID file) and
  // removes the state file.
  static Result<void> cleanupLeftovers(const DpdkModeOptions& options);

  ProxyMode& mode() override { return *mode_; }
  // Pods are reached through the kernel behind the TAP: nothing per veth.
  Result<void> attachPodInterface(const std::string&) override { return okResult(); }
  Result<void> detachPodInterface(const std::string&) override { return okResult(); }
  // The process answers ARP/ND for LoadBalancer and externalIP addresses
  // from its own tables; this records what it answers for.
  Result<void> claimServiceAddresses(const ServiceDiff& diff, bool full) override;
  std::set<IpAddress> claimedAddresses() const override;
  void stop() override { mode_->stop(); }
  Result<void> cleanup() override;

 private:
  DpdkDatapath(DpdkModeOptions options, std::unique_ptr<DpdkMode> mode)
      : options_(std::move(options)), mode_(std::move(mode)) {}
  const DpdkModeOptions options_;
  std::unique_ptr<DpdkMode> mode_;
  mutable std::mutex addressesMu_;
  std::set<IpAddress> addresses_;
};

// The `dpdk` entry of the agent's mode factory.
ModeDriver dpdkModeDriver();

}  // namespace sluice::dpdk
