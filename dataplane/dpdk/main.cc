// sluice-dpdk: the DPDK dataplane process. It owns the uplink NIC's queues
// (a PCI device, or a vdev on a kernel interface: net_af_packet, net_af_xdp),
// creates the TAP its exception path uses (the kernel's view of the node),
// re-attaches the flows a previous run left in the state file, and serves
// the node agent over gRPC (dpdk.proto) on a unix socket.
//
//   sluice-dpdk --uplink-vdev net_af_packet0,iface=eth1 --tap sl-tap0
//     --kernel-address 192.168.88.1/24 --kernel-route 10.96.0.0/12
//     --node-address 192.168.88.1 --socket /run/sluice/dpdk.sock
//
// Runs without hugepages (--no-huge; 2 MB pages are used when mounted,
// which cuts the TLB misses of large flow tables). SIGTERM/SIGINT stop it
// cleanly; the state file and the uplink's kernel-side drop stay for the
// next start. Exit status 2: bad flags; 1: could not start.
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "dataplane/dpdk/dataplane.h"
#include "dataplane/dpdk/server.h"

namespace {

using sluice::IpAddress;
using sluice::dpdk::DataplaneOptions;

struct Flags {
  std::string uplinkVdev, uplinkPci, tap = "sl-tap0", socket = "/run/sluice/dpdk.sock";
  std::string stateFile = "/dev/shm/sluice-dpdk.state", filePrefix, gatewayMac, snatPorts;
  std::vector<std::string> kernelAddresses, kernelRoutes, nodeAddresses, eal;
  uint32_t workers = 1, conntrack = 1u << 18, maxBackends = 1u << 16, affinityBuckets = 1u << 14;
  uint32_t memoryMb = 512;
  bool stealUplink = true;
};

void usage() {
  std::fprintf(
      stderr,
      "usage: sluice-dpdk (--uplink-vdev SPEC | --uplink-pci ADDR) [--tap NAME] [--workers N]\n"
      "  [--socket PATH] [--state-file PATH|''] [--conntrack-capacity N] [--max-backends N]\n"
      "  [--affinity-buckets N] [--node-address IP]... [--gateway-mac MAC] [--snat-ports A-B]\n"
      "  [--kernel-address CIDR]... [--kernel-route CIDR]... [--steal-uplink true|false]\n"
      "  [--memory MB] [--file-prefix NAME] [--eal ARG]...\n");
}

bool parse(int argc, char** argv, Flags& f) {
  std::map<std::string, std::string*> strings = {{"--uplink-vdev", &f.uplinkVdev},
                                                 {"--uplink-pci", &f.uplinkPci},
                                                 {"--tap", &f.tap},
                                                 {"--socket", &f.socket},
                                                 {"--state-file", &f.stateFile},
                                                 {"--file-prefix", &f.filePrefix},
                                                 {"--gateway-mac", &f.gatewayMac},
                                                 {"--snat-ports", &f.snatPorts}};
  std::map<std::string, std::vector<std::string>*> lists = {
      {"--kernel-address", &f.kernelAddresses},
      {"--kernel-route", &f.kernelRoutes},
      {"--node-address", &f.nodeAddresses},
      {"--eal", &f.eal}};
  std::map<std::string, uint32_t*> numbers = {{"--workers", &f.workers},
                                              {"--conntrack-capacity", &f.conntrack},
                                              {"--max-backends", &f.maxBackends},
                                              {"--affinity-buckets", &f.affinityBuckets},
                                              {"--memory", &f.memoryMb}};
  for (int i = 1; i < argc; ++i) {
    std::string name = argv[i], value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::fprintf(stderr, "sluice-dpdk: %s: needs a value\n", name.c_str());
      return false;
    }
    if (auto s = strings.find(name); s != strings.end()) {
      *s->second = value;
    } else if (auto l = lists.find(name); l != lists.end()) {
      l->second->push_back(value);
    } else if (auto n = numbers.find(name); n != numbers.end()) {
      char* end = nullptr;
      const unsigned long v = std::strtoul(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || v == 0 || v > (1ul << 28)) {
        std::fprintf(stderr, "sluice-dpdk: %s %s: want a number 1-268435456\n", name.c_str(),
                     value.c_str());
        return false;
      }
      *n->second = uint32_t(v);
    } else if (name == "--steal-uplink") {
      f.stealUplink = value == "true";
    } else {
      std::fprintf(stderr, "sluice-dpdk: unknown flag %s\n", name.c_str());
      return false;
    }
  }
  if (f.uplinkVdev.empty() == f.uplinkPci.empty()) {
    std::fprintf(stderr, "sluice-dpdk: give exactly one of --uplink-vdev and --uplink-pci\n");
    return false;
  }
  return true;
}

// Runs a host networking command (ip, tc, sysctl); setup, not the fast path.
bool run(const std::string& command, bool quiet = false) {
  const int status = std::system((command + (quiet ? " >/dev/null 2>&1" : "")).c_str());
  if (status != 0 && !quiet) std::fprintf(stderr, "sluice-dpdk: failed: %s\n", command.c_str());
  return status == 0;
}

std::string vdevArg(const std::string& spec, const std::string& key) {
  const size_t at = spec.find(key + "=");
  if (at == std::string::npos) return "";
  const size_t start = at + key.size() + 1;
  return spec.substr(start, spec.find(',', start) - start);
}

bool hugepagesMounted() {
  std::ifstream mounts("/proc/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    if (line.find(" hugetlbfs ") != std::string::npos) return true;
  }
  return false;
}


}  // namespace

int main(int argc, char** argv) {
  // SIGTERM/SIGINT are blocked in every thread (EAL's, the workers',
  // gRPC's inherit this mask) and taken by sigwait() on this one once the
  // process runs. A handler with pause() here lost them: the kernel may
  // deliver a process signal to any thread that does not block it, and
  // pause() in this thread then never returned (a process a test's cleanup
  // SIGTERMed kept running).
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGTERM);
  sigaddset(&stopSignals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);
  Flags f;
  if (!parse(argc, argv, f)) {
    usage();
    return 2;
  }
  DataplaneOptions o;
  o.workers = f.workers;
  o.state = {f.workers, f.conntrack, std::bit_ceil(f.maxBackends),
             std::bit_ceil(f.affinityBuckets)};
  o.stateFile = f.stateFile;
  for (const std::string& a : f.nodeAddresses) {
    auto ip = IpAddress::parse(a);
    if (!ip) {
      std::fprintf(stderr, "sluice-dpdk: --node-address %s: %s\n", a.c_str(),
                   ip.error().message.c_str());
      return 2;
    }
    (ip->isV4() ? o.pipeline.nodeV4 : o.pipeline.nodeV6) = *ip;
  }
  if (!f.gatewayMac.empty()) {
    auto mac = sluice::dpdk::parseMac(f.gatewayMac);
    if (!mac) {
      std::fprintf(stderr, "sluice-dpdk: --gateway-mac: %s\n", mac.error().message.c_str());
      return 2;
    }
    o.pipeline.gatewayMac = *mac;
  }
  if (!f.snatPorts.empty()) {
    unsigned a = 0, b = 0;
    if (std::sscanf(f.snatPorts.c_str(), "%u-%u", &a, &b) != 2 || a < 1 || a > b || b > 65535) {
      std::fprintf(stderr, "sluice-dpdk: --snat-ports %s: want FIRST-LAST within 1-65535\n",
                   f.snatPorts.c_str());
      return 2;
    }
    o.pipeline.nodeSnatPorts = {uint16_t(a), uint16_t(b)};
  }

  // EAL: the uplink and the TAP as devices, no hugepages unless mounted.
  const std::string uplinkDevice =
      f.uplinkPci.empty() ? f.uplinkVdev.substr(0, f.uplinkVdev.find(',')) : f.uplinkPci;
  o.uplinkDevice = uplinkDevice;
  o.tapDevice = "net_tap_sl0";
  o.tapInterface = f.tap;
  std::vector<std::string> args = {
      "sluice-dpdk",
      "-m",
      std::to_string(f.memoryMb),
      "--no-telemetry",
      "--log-level=warning",
      "--file-prefix=" +
          (f.filePrefix.empty() ? "sluice-dpdk-" + std::to_string(::getpid()) : f.filePrefix),
      "--vdev=" + o.tapDevice + ",iface=" + f.tap};
  if (!hugepagesMounted()) args.push_back("--no-huge");
  if (f.uplinkPci.empty()) {
    args.push_back("--no-pci");
    args.push_back("--vdev=" + f.uplinkVdev);
  } else {
    args.push_back("--allow=" + f.uplinkPci);
  }
  args.insert(args.end(), f.eal.begin(), f.eal.end());
  std::vector<char*> argvEal;
  for (std::string& a : args) argvEal.push_back(a.data());
  // A kernel-side uplink must not answer for what DPDK now handles: its
  // frames still reach the vdev's packet socket (taps run before the
  // ingress hooks) while an nftables netdev ingress chain drops them for
  // the kernel's stack (an nft chain rather than tc: kernels built without
  // tc actions are common). net_af_xdp needs none: XDP redirects them.
  const std::string uplinkIface = vdevArg(f.uplinkVdev, "iface");
  if (f.stealUplink && !uplinkIface.empty() && f.uplinkVdev.rfind("net_af_packet", 0) == 0) {
    const std::string table = "netdev sluice_dpdk_" + uplinkIface;
    run("nft add table " + table);
    run("nft add chain " + table + " uplink_in '{ type filter hook ingress device " + uplinkIface +
        " priority -500; policy drop; }'");
    run("sysctl -qw net.ipv6.conf." + uplinkIface + ".disable_ipv6=1", true);
  }
  if (rte_eal_init(int(argvEal.size()), argvEal.data()) < 0) {
    std::fprintf(stderr, "sluice-dpdk: EAL: %s\n", rte_strerror(rte_errno));
    return 1;
  }
  const std::string runtimeDir = rte_eal_get_runtime_dir();
  int status = 0;
  {
    auto dp = sluice::dpdk::Dataplane::start(o);
    if (!dp) {
      std::fprintf(stderr, "sluice-dpdk: %s\n", dp.error().message.c_str());
      status = 1;
    } else {
      // The kernel's side of the TAP: the node's addresses and the routes
      // into the dataplane (service CIDRs; the kernel-side SNAT addresses,
      // whose ARP/ND the pipeline answers).
      run("ip link set dev " + f.tap + " up");
      run("sysctl -qw net.ipv4.conf." + f.tap + ".rp_filter=0", true);
      for (const std::string& a : f.kernelAddresses) run("ip addr replace " + a + " dev " + f.tap);
      const auto& c = (*dp)->pipelineConfig();
      run("ip route replace " + c.kernelSnatV4.toString() + "/32 dev " + f.tap);
      run("ip -6 route replace " + c.kernelSnatV6.toString() + "/128 dev " + f.tap, true);
      for (const std::string& r : f.kernelRoutes) run("ip route replace " + r + " dev " + f.tap);
      auto server = sluice::dpdk::ApiServer::start(**dp, f.socket);
      if (!server) {
        std::fprintf(stderr, "sluice-dpdk: %s\n", server.error().message.c_str());
        status = 1;
      } else {
        const auto s = (*dp)->status();
        std::printf(
            "sluice-dpdk: epoch %llu, %u worker(s), uplink %s, TAP %s, %llu flows adopted, API on "
            "%s\n",
            static_cast<unsigned long long>(s.epoch), f.workers, uplinkDevice.c_str(),
            f.tap.c_str(), static_cast<unsigned long long>(s.adoptedFlows), f.socket.c_str());
        std::fflush(stdout);
        int sig = 0;
        while (sigwait(&stopSignals, &sig) != 0) {
        }
        (*server)->stop();
      }
      (*dp)->stop();
    }
  }
  rte_eal_cleanup();
  std::error_code ec;
  std::filesystem::remove_all(runtimeDir, ec);
  return status;
}
