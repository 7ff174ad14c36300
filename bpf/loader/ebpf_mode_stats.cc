// EbpfMode's counters: the per-CPU drop-reason and event maps summed, with
// the names /metrics and `sluice debug` show (one per enum value of
// bpf/abi/metrics.h, checked at compile time).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <iterator>
#include <string>
#include <vector>

#include "bpf/loader/abi_layout.h"
#include "bpf/loader/ebpf_mode.h"
#include "dataplane/drop_reason.h"

namespace sluice {

using bpf::MapRef;

namespace {

static_assert(kDropReasonCount == SL_DROP_MAX, "one drop-reason list (dataplane/drop_reasons.h)");

constexpr const char* kEventNames[] = {
#define SL_NAME(name, str) #str,
    SL_EVENTS(SL_NAME)
#undef SL_NAME
};
static_assert(std::size(kEventNames) == SL_EV_MAX);

}  // namespace

uint64_t EbpfMode::sumCounter(const MapRef& map, uint32_t index) const {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return 0;
  std::vector<sl_counter> values(static_cast<size_t>(cpus));
  if (bpf_map_lookup_elem(map.fd(), &index, values.data()) < 0) return 0;
  uint64_t sum = 0;
  for (const sl_counter& c : values) sum += c.packets;
  return sum;
}

ProxyStats EbpfMode::stats() const {
  ProxyStats s;
  {
    std::lock_guard lock(entriesMu_);
    s.services = programmer_->serviceCount();
    s.frontends = programmer_->frontendCount();
    s.backends = programmer_->backendCount();
    s.applies = applies_;
    s.applyErrors = applyErrors_;
    s.counters["map.writes"] = ops_.writes;
    s.counters["map.deletes"] = ops_.deletes;
  }
  for (uint32_t i = 1; i < SL_DROP_MAX; ++i) {
    s.counters["drop." + std::string(toString(static_cast<DropReason>(i)))] = sumCounter(drops_, i);
  }
  for (uint32_t i = 0; i < SL_EV_MAX; ++i) {
    s.counters[std::string("event.") + kEventNames[i]] = sumCounter(events_, i);
  }
  return s;
}

}  // namespace sluice
