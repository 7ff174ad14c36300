// Steering: which worker lcore owns a flow, and which SNAT ports each worker
// may hand out so that replies come back to it. Both directions of a flow
// must reach the worker whose conntrack holds it (per-lcore tables, no
// locks), without flow-director rules (most NICs and every VM lack them:
// DPVS #56, #80, #121, #562, #627, #826).
//
// Software mode (a PMD without RSS, or one RX queue: every vdev here): any
// worker may receive any packet, computes the owner below, and hands the
// packet over a lock-free ring if it is not the owner itself.
//   - to a frontend: hash(source address, source port), the client;
//   - to a SNAT address, on a port of the SNAT range: the port's owner,
//     port % workers (each worker hands out only its own ports);
//   - anything else: hash(destination address, destination port), which
//     for the reply of a flow not SNATed (destination = the client) is the
//     same worker as its first packet.
// RSS mode (a NIC hashing with a known Toeplitz key and redirection
// table): a flow is owned by the worker of the queue its first packet came
// in on, and a SNAT port is eligible for that worker only if the NIC's
// hash of the *reply* tuple lands on one of the worker's queues, so
// replies need no handoff (rssQueueOf() computes it as the NIC does).
//
// Threading: immutable after construction; any number of workers.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "dataplane/flow.h"
#include "dataplane/ip_address.h"

namespace sluice::dpdk {

struct PortRange {
  uint16_t first = 1024;
  uint16_t last = 65535;
  bool contains(uint16_t p) const { return p >= first && p <= last; }
};

// A NIC's RSS configuration as DPDK reports it.
struct RssConfig {
  std::vector<uint8_t> key;           // Toeplitz key (40 bytes for most NICs, 52 for some)
  std::vector<uint16_t> reta;         // redirection table: hash % size -> RX queue
  std::vector<uint32_t> queueWorker;  // RX queue -> worker
};

class Steering {
 public:
  // `workers` >= 1. `snatAddresses`: every address flows are SNATed to,
  // with the port range each is handed out from.
  Steering(uint32_t workers, std::vector<std::pair<IpAddress, PortRange>> snatAddresses);
  // RSS mode (see above).
  Steering(uint32_t workers, std::vector<std::pair<IpAddress, PortRange>> snatAddresses,
           RssConfig rss);

  uint32_t workers() const { return workers_; }
  bool rss() const { return !rss_.reta.empty(); }

  // The SNAT range of `a`, or nullptr if `a` is not a SNAT address.
  const PortRange* snatRange(const IpAddress& a) const {
    for (const auto& [addr, range] : snat_) {
      if (addr == a) return &range;
    }
    return nullptr;
  }

  // The owner of a packet travelling as `t` (an ICMP error travels as its
  // quoted tuple reversed); `toFrontend`: t.dst:dstPort is a frontend;
  // `rxWorker`: in RSS mode, the worker whose NIC queue the packet came in
  // on (unset for frames from the kernel side, which the control thread
  // receives).
  uint32_t owner(const FlowTuple& t, bool toFrontend, std::optional<uint32_t> rxWorker) const {
    if (workers_ == 1) return 0;
    // First: a frontend port is never a SNAT port (the pipeline skips
    // those), even where a NodePort lies inside the SNAT range.
    if (toFrontend) {
      // RSS mode: the NIC placed the first packet; that worker keeps the flow.
      if (rss() && rxWorker) return *rxWorker;
      return endpointOwner(t.src, t.srcPort);
    }
    if (const PortRange* r = snatRange(t.dst); r != nullptr && r->contains(t.dstPort)) {
      return rss() ? ownerOfQueue(rssQueueOf(t)) : t.dstPort % workers_;
    }
    return endpointOwner(t.dst, t.dstPort);
  }
  uint32_t endpointOwner(const IpAddress& a, uint16_t port) const;

  // Whether `worker` may SNAT a flow to `replyTuple.dst:dstPort` (the
  // reply tuple with that SNAT endpoint): its replies will reach `worker`.
  bool snatPortEligible(const FlowTuple& replyTuple, uint32_t worker) const {
    if (rss()) return ownerOfQueue(rssQueueOf(replyTuple)) == worker;
    return workers_ == 1 || replyTuple.dstPort % workers_ == worker;
  }

  // RSS mode: the RX queue the NIC picks for a packet of `t` (Toeplitz over
  // source, destination, ports as the NIC's RTE_ETH_RSS_*_TCP/UDP types).
  uint16_t rssQueueOf(const FlowTuple& t) const;
  uint32_t rssHash(const FlowTuple& t) const;
  uint32_t ownerOfQueue(uint16_t queue) const {
    return queue < rss_.queueWorker.size() ? rss_.queueWorker[queue] : 0;
  }

 private:
  uint32_t workers_;
  std::vector<std::pair<IpAddress, PortRange>> snat_;
  RssConfig rss_;
};

}  // namespace sluice::dpdk
