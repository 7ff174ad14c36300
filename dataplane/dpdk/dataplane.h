// Dataplane: the running sluice-dpdk process minus its command line and its
// gRPC front (main.cc, server.cc): the ports, the worker lcores, the control
// thread, the tables and the state file.
//
//   uplink (NIC / vdev), RX queue w  ->  worker w  ->  TX queue w of the
//                                        uplink or of the TAP
//   worker w  --handoff ring (MP/SC)-->  worker owning the flow
//   worker w  --exception rings (priority, bulk; SP/SC)--> control thread
//             --> the TAP (the kernel: the node's own stack and its pods)
//   TAP RX (the kernel's traffic) --> control thread --ring per worker-->
//             the worker owning the flow (frames for the uplink included)
//
// The control thread has its own budget for the exception path (priority
// ring drained first, then at most kExceptionBudget bulk frames a round),
// so ARP, ND and routing protocols reach the kernel while the workers are
// saturated (DPVS #794: its KNI path drops them). Workers never wait: a
// full ring drops the frame and counts why.
//
// Idle polling backs off: a worker or the control thread that found nothing
// for kIdleSpins rounds goes RCU-offline and sleeps (50 us, doubling to
// 1 ms), so an idle dataplane does not keep two cores of a shared machine
// busy; the first frame after that waits at most 1 ms.
//
// Threading: start() and stop() from one thread; sync/apply/describe/stats
// from any thread (the tables' writer is serialised by a mutex).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/dpdk/affinity.h"
#include "dataplane/dpdk/backend_registry.h"
#include "dataplane/dpdk/neighbours.h"
#include "dataplane/dpdk/pipeline.h"
#include "dataplane/dpdk/rcu.h"
#include "dataplane/dpdk/service_tables.h"
#include "dataplane/dpdk/state_file.h"
#include "dataplane/mode_description.h"
#include "dataplane/service_diff.h"

struct rte_mempool;
struct rte_ring;

namespace sluice::dpdk {

struct DataplaneOptions {
  std::string
      uplinkDevice;  // the EAL device name of the uplink port ("net_af_packet0", a PCI address)
  std::string tapDevice;  // the EAL device name of the TAP port ("net_tap0")
  uint32_t workers = 1;
  StateLayout state;        // capacities (workers is taken from `workers`)
  std::string stateFile;    // "" = no state file: flows are lost on restart
  PipelineConfig pipeline;  // node addresses, gateway, SNAT ranges (MACs are filled in at start)
  // The TAP's interface name in the kernel ("sl-tap0"): remote backends'
  // next hops are resolved through the kernel's routes and neighbours on
  // it (neighbours.h). "": not resolved (pipeline.gatewayMac only).
  std::string tapInterface;
  // The uplink's RX/TX descriptors per queue (DPDK's usual 1024; vdevs cap lower).
  uint16_t descriptors = 1024;
};

struct DataplaneStatus {
  uint64_t epoch = 0;
  uint64_t services = 0, frontends = 0, backends = 0;
  uint64_t adoptedFlows = 0;
  uint64_t applies = 0, applyErrors = 0;
  std::vector<std::pair<std::string, uint64_t>> counters;  // summed
  struct Lcore {
    std::vector<std::pair<std::string, uint64_t>> counters;
    uint64_t conntrackEntries = 0, conntrackCapacity = 0;
  };
  std::vector<Lcore> lcores;
};

struct DescribedDpdkFlow {
  uint32_t worker = 0;
  ConntrackEntry entry;
  uint32_t serviceId = 0;
  uint64_t idleNs = 0;
};

class Dataplane {
 public:
  // EAL must be initialised, with the uplink and TAP devices probed.
  static Result<std::unique_ptr<Dataplane>> start(const DataplaneOptions& options);
  ~Dataplane();
  Dataplane(const Dataplane&) = delete;
  Dataplane& operator=(const Dataplane&) = delete;

  // Stops the threads and the ports; the state file keeps the flows.
  void stop();

  uint64_t epoch() const { return epoch_; }
  Result<void> sync(const ServiceTable& table);
  Result<void> apply(const ServiceDiff& diff);
  DataplaneStatus status() const;
  std::vector<DescribedFrontend> describeFrontends() const;
  // The Maglev slot tables of one service port, per family and locality
  // (ids as backend ids); kNotFound when the tables do not hold it.
  Result<DescribedSelection> describeSelection(const ServiceKey& key) const;
  // At most `limit` flows (0: all), read by each worker between bursts.
  std::vector<DescribedDpdkFlow> describeFlows(size_t limit) const;
  const PipelineConfig& pipelineConfig() const { return options_.pipeline; }

 private:
  Dataplane() = default;
  struct WorkerCtx;
  Result<void> setUpPorts();
  Result<void> setUpState();
  // Hands the resolver the remote backends of the tables (writer_ held).
  void trackRemoteBackends();
  void workerLoop(uint32_t w);
  void controlLoop();

  DataplaneOptions options_;
  uint64_t epoch_ = 0;
  uint16_t uplinkPort_ = 0, tapPort_ = 0;
  uint16_t tapQueues_ = 0;
  rte_mempool* pool_ = nullptr;

  std::unique_ptr<StateFile> state_;
  std::vector<std::byte> heapBackends_, heapAffinity_;  // without a state file
  std::unique_ptr<Rcu> rcu_;
  std::unique_ptr<BackendRegistry> backends_;
  std::unique_ptr<AffinityTable> affinity_;
  std::unique_ptr<ServiceTables> tables_;
  std::unique_ptr<Steering> steering_;
  std::vector<std::unique_ptr<WorkerCtx>> workers_;
  std::unique_ptr<LcoreCounters> controlCounters_;
  std::unique_ptr<NextHops> nextHops_;
  std::unique_ptr<NeighbourResolver> resolver_;
  uint64_t adopted_ = 0;

  mutable std::mutex writer_;  // the tables' one writer at a time
  uint64_t applies_ = 0, applyErrors_ = 0;
  std::atomic<bool> running_{false};
  std::vector<std::thread> threads_;
};

}  // namespace sluice::dpdk
