// Next hops of remote backends: the Ethernet address a frame for a backend
// on another node must carry on the uplink, learnt from the node's kernel.
//
// The kernel already does neighbour discovery for the dataplane: the
// node's addresses and routes live on the TAP, ARP/ND requests the kernel
// sends there leave through the uplink, and the answers come back through
// the exception path. So the resolver asks the kernel (rtnetlink) which
// next hop its routing table gives for a backend (RTM_GETROUTE) and what
// link-layer address it has for that hop on the TAP (RTM_GETNEIGH). A hop
// the kernel does not know yet is added as a *managed* neighbour
// (NTF_EXT_MANAGED, Linux 5.16+): the kernel resolves it at once and keeps
// it reachable from then on, which is what its flag is for ("managed by
// the kernel on behalf of a user space control plane"). Older kernels get
// NTF_USE, a one-off resolution, repeated while the hop is unresolved.
//
// Workers read the result per packet from NextHops, one relaxed load; a
// backend whose hop is not known yet falls back to --gateway-mac, or is
// dropped no_next_hop.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dataplane/dpdk/backend_registry.h"
#include "dataplane/dpdk/mac.h"
#include "dataplane/ip_address.h"
#include "dataplane/result.h"

namespace sluice::dpdk {

// The next hop's MAC of each remote backend, by BackendRegistry id. One
// word per registry slot: the MAC, the id's generation (so a slot reused
// by another backend reads as unknown until resolved again) and a valid
// bit. Written by one thread (the resolver), read by any.
class NextHops {
 public:
  // `capacity`: the BackendRegistry's, a power of two.
  explicit NextHops(uint32_t capacity);

  std::optional<MacAddr> of(uint32_t backendId) const {
    const uint64_t v = slots_[backendId & mask_].load(std::memory_order_relaxed);
    if ((v >> 63) == 0 || ((v >> 48) & kGenerationMask) != generationOf(backendId)) {
      return std::nullopt;
    }
    MacAddr m;
    for (size_t i = 0; i < 6; ++i) m[i] = static_cast<uint8_t>(v >> (40 - 8 * i));
    return m;
  }
  void set(uint32_t backendId, const MacAddr& mac);
  // Forgets `backendId`'s hop (not a newer backend's in the same slot).
  void clear(uint32_t backendId);

 private:
  static constexpr uint64_t kGenerationMask = 0xfff;  // BackendRegistry: 12 bits
  static uint64_t generationOf(uint32_t id) {
    return (id >> BackendRegistry::kIndexBits) & kGenerationMask;
  }

  std::unique_ptr<std::atomic<uint64_t>[]> slots_;
  uint32_t mask_;
};

struct NeighbourStats {
  uint64_t resolved = 0;    // backends whose next hop is known now
  uint64_t unresolved = 0;  // backends routed into the TAP, next hop not (yet) known
  uint64_t unrouted = 0;    // backends the kernel routes elsewhere (or not at all)
  uint64_t requests = 0;    // resolutions asked of the kernel since start
};

// Keeps NextHops current for the backends it is given, on a thread of its
// own (netlink round trips stay off the workers and the exception path).
class NeighbourResolver {
 public:
  // `tapInterface`: the kernel's side of the dataplane; only next hops
  // routed through it can be reached from the uplink.
  static Result<std::unique_ptr<NeighbourResolver>> start(NextHops& hops,
                                                         std::string tapInterface);
  ~NeighbourResolver();
  NeighbourResolver(const NeighbourResolver&) = delete;
  NeighbourResolver& operator=(const NeighbourResolver&) = delete;

  // The remote backends (id, address) to keep resolved, replacing the
  // previous set; ids no longer in it are cleared. Wakes the thread.
  void track(std::vector<std::pair<uint32_t, IpAddress>> backends);
  NeighbourStats stats() const;

 private:
  NeighbourResolver(NextHops& hops, std::string tap);
  struct Hop {
    std::optional<MacAddr> mac;
    bool routed = false;  // through the TAP
  };
  void run();
  void round();
  Hop resolve(int tap, const IpAddress& address, uint64_t& requests);

  NextHops& hops_;
  std::string tap_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool changed_ = false;
  std::vector<std::pair<uint32_t, IpAddress>> wanted_;  // under mu_
  NeighbourStats stats_;                                // under mu_
  std::vector<uint32_t> set_;  // ids whose hop the last round set (the thread's)
  struct Netlink;
  std::unique_ptr<Netlink> nl_;
  std::thread thread_;
};

}  // namespace sluice::dpdk
