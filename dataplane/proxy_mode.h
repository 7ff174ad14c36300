// ProxyMode: the one interface every fast path (ebpf, ipvs, dpdk) implements
// for service entries; its node-level half (pod interfaces, the uplink,
// service addresses) is Datapath in dataplane/datapath.h. Exactly one place,
// the agent's mode factory, names an implementation.
//
// The contract between the agent (ProxySync) and a mode:
// - sync(table) makes the datapath hold exactly `table`, adopting what an
//   earlier run left (pinned maps, kernel tables) so established flows
//   survive. It runs at start and whenever the agent resyncs.
// - apply(diff) changes only the services in `diff`. If it fails, services
//   before the failing one are applied and the failing one may be partly
//   written; the agent then assumes nothing about the services of `diff`
//   and recovers with a full sync() of what it wants (after its retry
//   period), never by retrying the diff against a state it cannot see.
// - epoch() changes whenever the mode has lost programmed state that the
//   agent cannot know about (the DPDK process restarted and re-attached
//   only its connection tables, say). The agent remembers the epoch of its
//   last successful sync() and resyncs when it differs; a mode that lost
//   state also calls the listener set with onStateLost() so the agent
//   does not wait for its next change to notice.
// - Calls come from one agent thread at a time (sync/apply/describe may
//   come from different threads, never concurrently with each other unless
//   the mode documents otherwise); stats() and capabilities() may be
//   called from any thread at any time.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/mode_description.h"
#include "dataplane/result.h"
#include "dataplane/service_diff.h"

namespace sluice {

struct ProxyStats {
  uint64_t services = 0;   // services programmed now
  uint64_t frontends = 0;  // frontends programmed now
  uint64_t backends = 0;   // backend entries programmed now (summed over services)
  uint64_t applies = 0;    // apply() calls that succeeded since start
  uint64_t applyErrors = 0;
  // Mode-specific datapath counters: "drop.<reason>" (DropReason names),
  // "event.<name>", anything else by its own name.
  std::map<std::string, uint64_t> counters;
};

// What a Service can ask for that a mode may not honour.
enum class ModeFeature : uint8_t {
  kMaglev,                // consistent-hash selection (LbAlgorithm::kMaglev)
  kMaglevTableSize,       // a Maglev table size of the Service's choosing
  kSessionAffinity,       // sessionAffinity ClientIP with its timeout
  kExternalTrafficLocal,  // externalTrafficPolicy Local, strictly node-local
  kInternalTrafficLocal,  // internalTrafficPolicy Local
  kTerminatingFallback,   // terminating endpoints serve when none is ready
  kSctp,
  kIpv6,
  kSocketLb,              // translation at connect() for the node's own sockets
  kUdpStaleFlowCleanup,   // UDP flows to a removed backend are cut at once
  kIcmpErrorTranslation,  // ICMP errors about service flows carry the frontend
  kDsr,                   // direct server return
  kLoadBalancerSourceRanges,  // spec.loadBalancerSourceRanges on LoadBalancer frontends
  // Node-level features an older kernel can take away (bpf/loader/kernel_features.h).
  kXdpEarlyDrop,          // what the node drops anyway is dropped before an skb exists
  kSocketLbPeerName,      // getpeername() names the Service, not the backend
  kSocketLbErrno,         // a refused connect() reads ECONNREFUSED, not EPERM
};

std::string_view toString(ModeFeature feature);

// What a mode cannot do on this node, each with what a user loses. A
// feature absent from `missing` is honoured. Kernel-dependent modes fill
// this from feature probes at load.
struct ModeCapabilities {
  std::map<ModeFeature, std::string> missing;
  // Set when the mode's Maglev tables have one fixed size (IPVS `mh`: a
  // kernel build option); a Service asking for another size gets this one.
  std::optional<uint32_t> fixedMaglevTableSize;

  bool supports(ModeFeature f) const { return !missing.count(f); }
};

// What `service` asks for that `caps` cannot honour, each with a line for
// the user ("sessionAffinity ClientIP (timeout 10800 s): <what is lost>").
// Empty when the mode does everything the service asks.
struct UnmetRequest {
  ModeFeature feature;
  std::string message;
  friend auto operator<=>(const UnmetRequest&, const UnmetRequest&) = default;
};
std::vector<UnmetRequest> unmetRequests(const Service& service, const ModeCapabilities& caps);

class ProxyMode {
 public:
  virtual ~ProxyMode() = default;

  // "ebpf", "ipvs", "dpdk": what --mode= names.
  virtual std::string_view name() const = 0;
  virtual ModeCapabilities capabilities() const = 0;

  // See the contract above.
  virtual Result<void> sync(const ServiceTable& table) = 0;
  virtual Result<void> apply(const ServiceDiff& diff) = 0;
  virtual ProxyStats stats() const = 0;

  virtual uint64_t epoch() const { return 0; }
  // `listener` may be called from any thread; it must only wake the agent.
  virtual void onStateLost(std::function<void()> listener) { (void)listener; }

  // Introspection, read from the datapath itself (not from what the agent
  // asked for): may cost O(entries) syscalls or RPCs.
  virtual Result<std::vector<DescribedFrontend>> describeFrontends() const = 0;
  // The selection tables of one service port (kNotFound if it has none).
  virtual Result<DescribedSelection> describeSelection(const ServiceKey& key) const = 0;
  // At most `limit` tracked flows (0: all).
  virtual Result<std::vector<DescribedFlow>> describeFlows(size_t limit) const = 0;
};

}  // namespace sluice
