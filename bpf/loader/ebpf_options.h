// EbpfOptions: where the eBPF mode pins its maps and how large they are.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "bpf/loader/kernel_features.h"

namespace sluice {

struct EbpfOptions {
  // bpffs directory for the pinned maps; created if missing. One per node
  // agent: two agents sharing it would fight over the entries.
  std::string pinDir = "/sys/fs/bpf/sluice";
  // Map capacities (entries). A pinned map of another size is not adopted:
  // create() fails and says so (resizing would drop conntrack).
  uint32_t maxFrontends = 65536;   // sl_services
  uint32_t maxSlots = 262144;      // sl_slots: sum over sets of their backends
  uint32_t maxBackends = 262144;   // sl_backends
  uint32_t maxMaglevTables = 1024; // sl_maglev: Maglev services x families x locality
  uint32_t maxConntrack = 262144;  // sl_ct: two entries per flow (LRU)
  uint32_t maxAffinity = 65536;    // sl_affinity (LRU)
  uint32_t maxSockReverse = 262144;  // sl_sock_rev: sockets sent to a backend (LRU)
  // The network namespace whose sockets the cgroup hooks translate (its
  // SO_NETNS_COOKIE); unset: the namespace of the thread calling create(),
  // 0: every namespace in the cgroup.
  std::optional<uint64_t> netnsCookie;
  // What the kernel offers (kernel_features.h): objects and program
  // variants are chosen from it. Unset: this kernel, probed. Set by tests
  // that load the variant for a kernel without some feature.
  std::optional<bpf::KernelFeatures> kernel;
};

}  // namespace sluice
