// The DPDK Environment Abstraction Layer as the dpdk suite runs it: once per
// test process, without hugepages (--no-huge: hugepages are not reserved on
// CI machines), without PCI, with a file prefix unique to the process, no
// shared config files and no telemetry socket, and with the main lcore
// free to run on every CPU the process may use (EAL would otherwise pin
// it to CPU 0 on a machine other jobs share). Torn down, runtime directory
// included, when the process exits.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::dpdk::testing {

// Initialises EAL (once) with `extraArgs` appended (e.g. --vdev=...).
// Returns "" or the reason it failed, for a skip (exit 77).
std::string initEal(const std::vector<std::string>& extraArgs = {});
// A pool of single-segment mbufs with RTE_MBUF_DEFAULT_BUF_SIZE data room.
rte_mempool* testPool();

// An mbuf holding a copy of `frame`; the caller frees it.
rte_mbuf* mbufOf(const std::vector<uint8_t>& frame);
std::vector<uint8_t> bytesOf(const rte_mbuf* m);

}  // namespace sluice::dpdk::testing
