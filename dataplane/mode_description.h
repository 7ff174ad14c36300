// What a ProxyMode holds, described the same way whatever the mode, for
// `sluice debug` (like `cilium bpf lb list` / `ipvsadm -Ln` / `cilium bpf ct
// list`) and tests. A mode fills these from its own state (BPF maps, kernel
// virtual servers, the DPDK process's tables); the agent only formats them,
// so every tool works unchanged with a new mode.
//
// Ids and slots are the mode's own (BPF backend ids, IPVS has none: 0);
// fields a mode has no notion of stay at their zero value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/ip_address.h"
#include "dataplane/service.h"

namespace sluice {

struct Endpoint {
  IpAddress address;
  uint16_t port = 0;  // host order

  // "10.0.0.1:80", "[fd00::1]:80".
  std::string toString() const;
  friend auto operator<=>(const Endpoint&, const Endpoint&) = default;
};

struct DescribedBackend {
  uint32_t id = 0;  // the mode's backend id (0: none)
  Endpoint endpoint;
  uint16_t weight = 1;
  BackendState state = BackendState::kActive;
  bool nodeLocal = false;
  uint32_t slot = 0;  // 1-based position in the frontend's backend set; 0: unordered
  // Connections the datapath holds to this backend through this frontend,
  // where it counts them (IPVS: established / other states); 0 otherwise.
  uint32_t activeConnections = 0;
  uint32_t inactiveConnections = 0;
};

// One frontend as the datapath holds it.
struct DescribedFrontend {
  Frontend frontend;
  std::string service;     // owning service port "ns/name:port" ("" if unknown)
  uint32_t serviceId = 0;  // the mode's service id (0: none)
  bool affinity = false;
  uint32_t affinityTimeoutSeconds = 0;
  bool local = false;      // a Local traffic policy applies to this frontend
  bool maglev = false;
  uint32_t maglevSize = 0;
  std::string scheduler;   // the mode's selection algorithm name, e.g. "mh", "rr" (IPVS)
  uint32_t active = 0;     // backends taking new flows
  uint32_t terminating = 0;
  std::vector<DescribedBackend> backends;  // in slot order where the mode has slots
};

// The consistent-hash tables behind one service port (one per address
// family and locality in the eBPF mode).
struct SelectionTable {
  uint32_t id = 0;
  IpFamily family = IpFamily::kV4;
  bool nodeLocal = false;
  std::vector<uint32_t> slots;  // backend id per slot
};

struct DescribedSelection {
  std::string service;
  uint32_t serviceId = 0;
  std::vector<SelectionTable> tables;
  std::vector<DescribedBackend> backends;
};

// One tracked flow (a connection-tracking entry).
struct DescribedFlow {
  bool reply = false;  // the entry for the reply direction
  Protocol protocol = Protocol::kTcp;
  Endpoint source;
  Endpoint destination;
  uint32_t backendId = 0;
  std::optional<Endpoint> backend;  // the backend, if it still exists
  std::optional<Endpoint> nat;      // reply: the frontend restored; service: the SNAT source
  std::vector<std::string> flags;   // hairpin, node-frontend, snat, ...
  uint32_t setId = 0;
  std::string tcpFlags;             // "SYN|ACK"
  uint64_t idleMs = 0;
};

}  // namespace sluice
