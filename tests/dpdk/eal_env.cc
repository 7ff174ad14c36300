#include "tests/dpdk/eal_env.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>

namespace sluice::dpdk::testing {
namespace {

std::string gError;
bool gInitialised = false;
std::string gRuntimeDir;
rte_mempool* gPool = nullptr;

void teardown() {
  if (gPool != nullptr) rte_mempool_free(gPool);
  gPool = nullptr;
  rte_eal_cleanup();
  std::error_code ec;
  if (!gRuntimeDir.empty()) std::filesystem::remove_all(gRuntimeDir, ec);
}

// "0@(0,1)": lcore 0 may run on every CPU this process may use.
std::string floatingMainLcore() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::string cpus;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus += (cpus.empty() ? "" : ",") + std::to_string(c);
    }
  }
  return "--lcores=0@(" + (cpus.empty() ? std::string("0") : cpus) + ")";
}

}  // namespace

std::string initEal(const std::vector<std::string>& extraArgs) {
  static std::once_flag once;
  std::call_once(once, [&] {
    const std::string prefix = "sluice-test-" + std::to_string(::getpid());
    std::vector<std::string> args = {"sluice-test",
                                     "--no-huge",
                                     "-m",
                                     "128",
                                     "--no-pci",
                                     "--no-shconf",
                                     "--no-telemetry",
                                     "--log-level=warning",
                                     "--file-prefix=" + prefix,
                                     floatingMainLcore()};
    args.insert(args.end(), extraArgs.begin(), extraArgs.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
      gError = std::string("rte_eal_init: ") + rte_strerror(rte_errno);
      return;
    }
    gInitialised = true;
    gRuntimeDir = rte_eal_get_runtime_dir();
    // 8191 mbufs (2^13 - 1, the mempool's optimum): enough for bursts and
    // the rings of the tests, ~17 MiB without hugepages.
    gPool = rte_pktmbuf_pool_create("sluice_test", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                    SOCKET_ID_ANY);
    if (gPool == nullptr) {
      gError = std::string("rte_pktmbuf_pool_create: ") + rte_strerror(rte_errno);
    }
    std::atexit(teardown);
  });
  return gError;
}

rte_mempool* testPool() { return gPool; }

rte_mbuf* mbufOf(const std::vector<uint8_t>& frame) {
  rte_mbuf* m = rte_pktmbuf_alloc(gPool);
  if (m == nullptr) return nullptr;
  char* p = rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size()));
  if (p == nullptr && !frame.empty()) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  if (!frame.empty()) std::memcpy(p, frame.data(), frame.size());
  return m;
}

std::vector<uint8_t> bytesOf(const rte_mbuf* m) {
  const auto* p = static_cast<const uint8_t*>(m->buf_addr) + m->data_off;
  return {p, p + m->data_len};
}

}  // namespace sluice::dpdk::testing
