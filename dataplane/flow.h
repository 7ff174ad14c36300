// FlowTuple: the 5-tuple that identifies a flow in conntrack and NAT.
// For ICMP echo the identifier stands in both port fields (as Linux
// conntrack does); for ICMP errors the tuple is the quoted inner packet's.
#pragma once

#include <cstdint>
#include <functional>

#include "dataplane/ip_address.h"

namespace sluice {

struct FlowTuple {
  IpAddress src;
  IpAddress dst;
  uint16_t srcPort = 0;  // host order
  uint16_t dstPort = 0;  // host order
  Protocol protocol = Protocol::kTcp;

  // The tuple of packets flowing the other way.
  FlowTuple reversed() const { return {dst, src, dstPort, srcPort, protocol}; }

  friend bool operator==(const FlowTuple&, const FlowTuple&) = default;
};

// 64-bit mix over the tuple's bytes; stable within a process (not across
// processes: anything shared between processes must hash explicitly).
uint64_t hashFlow(const FlowTuple& t);

struct FlowTupleHash {
  size_t operator()(const FlowTuple& t) const { return hashFlow(t); }
};

}  // namespace sluice
