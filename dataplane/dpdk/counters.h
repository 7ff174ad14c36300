// Per-lcore counters of the DPDK fast path: why packets were dropped (one
// slot per DropReason, the enum every stage shares) and what happened to the
// rest (Event). Each worker owns one LcoreCounters and is its only writer;
// the control thread sums them for stats() and /metrics.
//
// Threading: add() is a relaxed load + store by the owning lcore (no lock
// prefix: ~1 cycle); readers on other threads load relaxed and may see a
// value a few packets old, never a torn one.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dataplane/drop_reason.h"

namespace sluice::dpdk {

// What the pipeline did with a packet it did not drop. Names match
// bpf/abi/metrics.h's events where the meaning is the same, so one dump
// reads alike in either mode. Values index counter arrays: append only.
enum class Event : uint8_t {
  kSvcNew,               // first packet of a flow: backend chosen, conntrack entry made
  kSvcEstablished,       // conntrack hit in the original direction
  kSvcReselect,          // conntrack named a backend that is gone: chosen again
  kRevNat,               // reply direction: frontend (and client) restored
  kAffinityHit,          // ClientIP affinity chose the backend
  kTerminatingFallback,  // no ready backend: a terminating one took the flow
  kRejectTcpRst,         // refused (no backend): TCP RST sent back
  kRejectIcmp,           // refused (no backend): ICMP port unreachable sent back
  kPassNonService,       // not service traffic: passed on unchanged
  kHairpin,              // a client reached itself through its service: SNATed
  kSnat,                 // SNATed so that replies come back through this node
  kIcmpErrRev,           // an ICMP error about a service flow translated
  kArpReply,             // ARP request for a service address answered
  kNdReply,              // IPv6 neighbor solicitation for a service address answered
  kException,            // handed to the kernel through the exception path
  kExceptionPriority,    // ... on the priority ring (ARP, ND, routing protocols)
  kHandoff,              // sent to the lcore owning the flow (software RSS)
  kDsr,                  // encapsulated to a remote backend (direct server return)
  kCount,
};
inline constexpr size_t kEventCount = static_cast<size_t>(Event::kCount);

std::string_view toString(Event event);

// A counter with one writer.
class Counter {
 public:
  void add(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void set(uint64_t v) { v_.store(v, std::memory_order_relaxed); }  // a gauge
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// One lcore's counters, on their own cache lines so that workers never
// write a line another worker writes.
struct alignas(64) LcoreCounters {
  std::array<Counter, kDropReasonCount> drops;
  std::array<Counter, kEventCount> events;
  Counter rxPackets;
  Counter txPackets;
  Counter idlePolls;  // bursts that came back empty (load = 1 - idle / polls)
  Counter polls;

  void drop(DropReason r, uint64_t n = 1) { drops[static_cast<size_t>(r)].add(n); }
  void event(Event e, uint64_t n = 1) { events[static_cast<size_t>(e)].add(n); }
  uint64_t dropCount(DropReason r) const { return drops[static_cast<size_t>(r)].get(); }
  uint64_t eventCount(Event e) const { return events[static_cast<size_t>(e)].get(); }
};

}  // namespace sluice::dpdk
