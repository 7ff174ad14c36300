// ProxyMode: the one interface every fast path (ebpf, ipvs, dpdk) implements.
// Exactly one place, the agent's mode factory, picks an implementation.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "dataplane/result.h"
#include "dataplane/service_diff.h"

namespace sluice {

struct ProxyStats {
  uint64_t services = 0;   // services programmed now
  uint64_t frontends = 0;  // frontends programmed now
  uint64_t backends = 0;   // backend entries programmed now (summed over services)
  uint64_t applies = 0;    // apply() calls that succeeded since start
  uint64_t applyErrors = 0;
  // Mode-specific datapath counters, e.g. "drop.no_backend" or "ct.entries".
  std::map<std::string, uint64_t> counters;
};

class ProxyMode {
 public:
  virtual ~ProxyMode() = default;

  // "ebpf", "ipvs", "dpdk": what --mode= names.
  virtual std::string_view name() const = 0;

  // Start-up: make the datapath program exactly `table`, adopting state left by
  // a previous run (pinned maps, kernel virtual servers) so that established
  // connections survive, and removing what `table` no longer has.
  virtual Result<void> sync(const ServiceTable& table) = 0;

  // Incremental: touch only the services in `diff`. On error, services before
  // the failing one are applied; the failing one is left as it was, and the
  // error names it so the caller can retry or resync.
  virtual Result<void> apply(const ServiceDiff& diff) = 0;

  virtual ProxyStats stats() const = 0;
};

}  // namespace sluice
