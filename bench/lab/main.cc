// sluice-bench: the proxy-mode lab (docs/lab.md). For each mode and each
// service count S it builds a fresh topology (lab_topology.h), programs S
// services x E endpoints through the mode, and measures from the client
// namespace: full-sync time, endpoint change -> visible to traffic, connect
// latency, requests/s with CPU and softirq per request, kernel objects,
// kernel memory (/proc/meminfo delta, lab_measure.h) and userspace RSS.
// Writes results.csv, results.md and plots into --out.
//
// Exit: 0 done; 1 error; 77 the machine cannot run the lab (not root, no
// netns, no BPF, a mode's tool missing), with the reason; 130 interrupted.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/lab/lab_measure.h"
#include "bench/lab/lab_mode.h"
#include "bench/lab/lab_topology.h"
#include "bench/lab/report.h"
#include "bench/lab/traffic.h"
#include "tests/bpf/bpffs.h"

namespace sluice::lab {
namespace {

constexpr uint16_t kServicePort = 80;
constexpr int kBackendNetns = 4;
constexpr double kMiB = 1024.0 * 1024.0;

struct Config {
  std::vector<std::string> modes = {"ebpf", "iptables", "nftables"};
  std::vector<int> services = {1, 1000, 10000, 100000};
  int endpoints = 10;
  std::string out;
  bool quick = false;
  int budgetSeconds = 120;
  int changes = 100;
  int connects = 1000;
  double rpsSeconds = 3;
  int threads = 4;
  uint32_t maglevTableSize = 0;  // 0: random selection (kube-proxy's); else Maglev, M slots
  std::string baseline = "ebpf";  // the mode ratios are to
  // Longest wait for /proc/meminfo to settle, per reading (two per point);
  // excluded from the point's budget.
  std::chrono::milliseconds settle{10000};
};

// One progress line per step, on stderr (stdout stays free for scripts).
void progress(const std::string& mode, int services, const std::string& what) {
  std::fprintf(stderr, "[%s S=%d] %s\n", mode.c_str(), services, what.c_str());
  std::fflush(stderr);
}

void onSignal(int) {
  if (gStop.exchange(true)) ::_exit(130);  // a second Ctrl-C: leave now
}

IpAddress clusterIp(int i) { return IpAddress::v4FromHost(0x0a600000u + static_cast<uint32_t>(i) + 1); }

Service makeService(int i, const std::vector<IpAddress>& ips, int endpoints,
                    uint32_t maglevTableSize) {
  Service s;
  if (maglevTableSize > 0) {
    s.algorithm = LbAlgorithm::kMaglev;
    s.maglevTableSize = maglevTableSize;
  }
  s.key = {"lab", "svc-" + std::to_string(i), ""};
  s.frontends.push_back({clusterIp(i), kServicePort, Protocol::kTcp, FrontendScope::kClusterIp});
  for (int j = 0; j < endpoints; ++j) {
    Backend b;
    b.address = ips[(static_cast<size_t>(i) * endpoints + j) % ips.size()];
    b.port = LabTopology::kBackendPort;
    // Every backend runs on the lab's one node: modes that place backends
    // by locality (dpdk: behind the kernel's TAP, not the uplink) need it.
    b.nodeLocal = true;
    s.backends.push_back(b);
  }
  return s;
}

std::string preflight(const Config& c) {
  if (::geteuid() != 0) return "needs root (network namespaces, BPF, iptables)";
  if (std::system("ip -V >/dev/null 2>&1") != 0) return "iproute2 (ip) not found";
  const std::string probe = "slab-probe-" + std::to_string(::getpid());
  if (std::system(("ip netns add " + probe + " >/dev/null 2>&1").c_str()) != 0) {
    return "cannot create network namespaces";
  }
  (void)std::system(("ip netns del " + probe).c_str());
  for (const std::string& m : c.modes) {
    if (m == "ebpf") {
      testing::ScopedBpffs fs;
      if (!fs.ok()) return "no BPF filesystem: " + fs.error();
    } else if (m == "iptables") {
      if (std::system("command -v iptables-restore >/dev/null && command -v iptables-save >/dev/null") != 0) {
        return "iptables-restore not found (apt-get install iptables)";
      }
    } else if (m == "kube-ipvs") {
      if (std::system("command -v ipvsadm >/dev/null && command -v ipset >/dev/null && "
                      "command -v iptables-restore >/dev/null") != 0) {
        return "kube-ipvs needs ipvsadm, ipset and iptables-restore (apt-get install ipvsadm ipset "
               "iptables)";
      }
      if (::access("/proc/sys/net/ipv4/vs", F_OK) != 0) {
        return "kube-ipvs: no IPVS in this kernel (run the lab in the vm suite's kernel)";
      }
    } else if (m == "ipvs") {
      if (::access("/proc/sys/net/ipv4/vs", F_OK) != 0) {
        return "ipvs: no IPVS in this kernel (run the lab in the vm suite's kernel)";
      }
    } else if (m == "nftables") {
      if (std::system("command -v nft >/dev/null") != 0) return "nft not found (apt-get install nftables)";
    }
  }
  return "";
}

// Measures one (mode, S) point on a fresh topology.
PointResult runPoint(const Config& c, const std::string& modeName, int services) {
  PointResult r{modeName, services, c.endpoints, std::vector<Figure>(columns().size()), ""};
  const auto tag = [&](const std::string& what) {
    progress(modeName, services, what);
  };
  const auto start = Clock::now();
  auto deadline = start + std::chrono::seconds(c.budgetSeconds);
  const int ipsPerNetns = std::max(16, (c.endpoints + kBackendNetns) / kBackendNetns + 1);
  std::string error;
  tag("topology");
  auto topo = LabTopology::create(kBackendNetns, ipsPerNetns, &error);
  if (!topo) {
    r.note = error;
    return r;
  }
  std::vector<IpAddress> pool;
  for (const std::string& ip : topo->backendIps()) pool.push_back(*IpAddress::parse(ip));
  std::vector<Target> targets;
  for (int i = 0; i < services; ++i) targets.push_back({clusterIp(i).toString(), kServicePort});

  ScopedSetns inNode(topo->nodeNetnsFd());
  if (!inNode.ok()) {
    r.note = "setns into the node namespace failed";
    return r;
  }
  // Baselines: topology up, mode not loaded, nothing programmed. Settling
  // (deferred frees of the previous point's namespaces) is not the mode's
  // time: the deadline moves by it.
  tag("settling kernel memory (baseline)");
  auto settleStart = Clock::now();
  const KernelMemoryReading kernelBefore = settledKernelMemory(c.settle);
  const uint64_t rssBefore = trimmedRssBytes();
  deadline += Clock::now() - settleStart;

  std::unique_ptr<LabMode> mode = makeLabMode(
      modeName, LabScale{static_cast<uint32_t>(services), static_cast<uint32_t>(c.endpoints),
                         c.maglevTableSize});
  struct TearDown {
    LabMode* m;
    ~TearDown() { m->tearDown(); }
  } tearDown{mode.get()};
  if (auto s = mode->setUp(*topo); !s) {
    r.note = "setUp: " + s.error().message;
    return r;
  }

  // Service 0 is the probe service: one endpoint, moved by each change.
  ServiceTable table;
  for (int i = 0; i < services; ++i) {
    Service s = makeService(i, pool, i == 0 ? 1 : c.endpoints, c.maglevTableSize);
    if (auto u = table.upsert(std::move(s)); !u) {
      r.note = "table: " + u.error().message;
      return r;
    }
  }
  auto& fig = r.figures;
  auto overBudgetFrom = [&](size_t col) {
    for (size_t i = col; i < fig.size(); ++i) {
      if (!fig[i].value) fig[i].overBudget = true;
    }
  };

  const uint64_t rssWithTable = trimmedRssBytes();
  tag("full sync of " + std::to_string(services) + " services");
  const auto t0 = Clock::now();
  if (auto s = mode->sync(table, deadline); !s) {
    if (s.error().code == ErrorCode::kAborted) {
      overBudgetFrom(kSyncMs);
      r.note = "sync: killed at the budget (" + std::to_string(c.budgetSeconds) + " s)";
    } else {
      r.note = "sync: " + s.error().message;
    }
    return r;
  }
  const double syncMs = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  fig[kSyncMs].value = syncMs;
  if (Clock::now() > deadline) {
    fig[kSyncMs].value.reset();
    overBudgetFrom(kSyncMs);
    r.note = "sync took " + std::to_string(static_cast<int>(syncMs)) + " ms";
    return r;
  }
  // Traffic must pass before anything is timed against it.
  const Target probe = targets[0];
  if (!waitForBackend(topo->clientNetnsFd(), probe, pool[0].toString(), Clock::now(),
                      std::min(deadline, Clock::now() + std::chrono::seconds(10)))) {
    r.note = "no answer through the mode from the probe service";
    return r;
  }
  {
    tag("settling kernel memory (programmed)");
    settleStart = Clock::now();
    const KernelMemoryReading kernelAfter = settledKernelMemory(c.settle);
    const uint64_t rssAfter = trimmedRssBytes();
    deadline += Clock::now() - settleStart;
    fig[kKernelMiB].value = (kernelAfter.bytes - kernelBefore.bytes) / kMiB;
    fig[kKernelNoiseMiB].value = std::max(kernelBefore.noiseBytes, kernelAfter.noiseBytes) / kMiB;
    const ModeMemory m = mode->memory();
    fig[kKernelObjects].value = static_cast<double>(m.objects);
    if (m.bpfMapBytes) fig[kBpfMapMiB].value = static_cast<double>(*m.bpfMapBytes) / kMiB;
    // A mode that programs through a tool: the tool's peak; one that runs
    // in this process: what this process grew by (the ServiceTable and the
    // mode's own mirrors). kube-proxy's own process is not simulated.
    if (m.toolPeakRssBytes) {
      fig[kRssMiB].value = static_cast<double>(*m.toolPeakRssBytes) / kMiB;
    } else {
      fig[kRssMiB].value =
          (static_cast<double>(rssAfter) - static_cast<double>(rssBefore)) / kMiB;
      char split[160];
      std::snprintf(split, sizeof(split),
                    "RSS delta: loading + ServiceTable %.1f MiB, sync %.1f MiB",
                    (static_cast<double>(rssWithTable) - static_cast<double>(rssBefore)) / kMiB,
                    (static_cast<double>(rssAfter) - static_cast<double>(rssWithTable)) / kMiB);
      tag(split);
    }
  }

  tag(std::to_string(c.changes) + " endpoint changes");
  std::vector<double> changeMs;
  Service current = *table.find(ServiceKey{"lab", "svc-0", ""});
  for (int k = 1; k <= c.changes && !gStop && Clock::now() < deadline; ++k) {
    Service changed = current;
    changed.backends[0].address = pool[static_cast<size_t>(k) % pool.size()];
    (void)table.upsert(changed);
    const auto since = Clock::now();
    if (auto a = mode->applyOneEndpointChange(table, current, changed, deadline); !a) {
      if (a.error().code != ErrorCode::kAborted) r.note = "change: " + a.error().message + "; ";
      break;
    }
    auto ms = waitForBackend(topo->clientNetnsFd(), probe, changed.backends[0].address.toString(),
                             since, deadline);
    if (!ms) break;
    changeMs.push_back(*ms);
    current = changed;
  }
  fig[kNetlinkPerChange].value = mode->netlinkRequestsPerChange();
  if (!changeMs.empty()) {
    fig[kChangeP50Ms].value = percentile(changeMs, 50);
    fig[kChangeP99Ms].value = percentile(changeMs, 99);
  }
  if (static_cast<int>(changeMs.size()) < c.changes) {
    r.note += "changes: " + std::to_string(changeMs.size()) + "/" + std::to_string(c.changes) + "; ";
    if (changeMs.empty()) overBudgetFrom(kChangeP50Ms);
  }
  if (gStop) return r;

  tag(std::to_string(c.connects) + " connects to random services");
  const ConnectResult cr = measureConnect(topo->clientNetnsFd(), targets, c.connects, deadline);
  if (!cr.latenciesUs.empty()) {
    fig[kConnectP50Us].value = percentile(cr.latenciesUs, 50);
    fig[kConnectP99Us].value = percentile(cr.latenciesUs, 99);
  }
  if (cr.failures > 0) r.note += "connect failures: " + std::to_string(cr.failures) + "; ";
  if (cr.outOfTime) {
    r.note += "connects: " + std::to_string(cr.latenciesUs.size()) + "; ";
    if (cr.latenciesUs.empty()) {
      fig[kConnectP50Us].overBudget = fig[kConnectP99Us].overBudget = true;
    }
  }
  if (gStop) return r;

  const double left = std::chrono::duration<double>(deadline - Clock::now()).count();
  if (left < 3 * c.rpsSeconds + 2) {
    fig[kRpsNewConn].overBudget = fig[kCpuUsPerRequest].overBudget = true;
    fig[kSoftirqUsPerRequest].overBudget = true;
    fig[kRpsKeepAlive].overBudget = fig[kWrkRps].overBudget = true;
    return r;
  }
  // CPU per request counts the echo servers and ksoftirqd with the lab.
  std::vector<pid_t> servers = ksoftirqdPids();
  for (const BackendNetns& b : topo->backends()) servers.push_back(b.echoPid);
  tag("requests/s, new connection each");
  const RpsResult fresh =
      measureRps(topo->clientNetnsFd(), targets, c.threads, c.rpsSeconds, false, servers);
  fig[kRpsNewConn].value = fresh.rps;
  fig[kCpuUsPerRequest].value = fresh.cpuUsPerRequest;
  fig[kSoftirqUsPerRequest].value = fresh.softirqUsPerRequest;
  if (gStop) return r;
  tag("requests/s, keep-alive");
  fig[kRpsKeepAlive].value =
      measureRps(topo->clientNetnsFd(), targets, c.threads, c.rpsSeconds, true, servers).rps;
  if (gStop) return r;
  // wrk drives one service: the last one (S > 1: E endpoints).
  tag("wrk");
  fig[kWrkRps].value = runWrk(topo->clientNetns(), targets.back(), c.rpsSeconds, 4 * c.threads);
  return r;
}

int run(const Config& c, const std::string& command) {
  if (const std::string why = preflight(c); !why.empty()) {
    std::fprintf(stderr, "sluice-bench: skipped: %s\n", why.c_str());
    return 77;
  }
  ::mkdir(c.out.c_str(), 0755);
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a tool killed at the budget closes our pipe
  // Maglev services hold one map fd each in EbpfMode: S of them.
  rlimit fdLimit{};
  if (::getrlimit(RLIMIT_NOFILE, &fdLimit) == 0 && fdLimit.rlim_cur < fdLimit.rlim_max) {
    fdLimit.rlim_cur = fdLimit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &fdLimit);
  }

  std::vector<PointResult> results;
  for (const std::string& m : c.modes) {
    // A larger S cannot fit a budget a smaller one blew, nor one its full
    // sync would blow if it grew only linearly with S (no mode here syncs
    // in less than linear time: every service is written at least once).
    std::string skip;
    int lastS = 0;
    double lastSyncMs = 0;
    for (int s : c.services) {
      if (gStop) break;
      // From S >= 100 only: below that a tool-driven mode's sync is its
      // fixed per-exec cost (seconds under TCG), not a per-service one.
      if (skip.empty() && lastSyncMs > 0 && lastS >= 100 &&
          lastSyncMs * s / lastS > 1000.0 * c.budgetSeconds) {
        char why[160];
        std::snprintf(why, sizeof(why),
                      "not run: S=%d synced in %.0f s, so S=%d needs at least %.0f s", lastS,
                      lastSyncMs / 1000, s, lastSyncMs * s / lastS / 1000);
        skip = why;
      }
      if (!skip.empty()) {
        PointResult r{m, s, c.endpoints, std::vector<Figure>(columns().size()), skip};
        for (Figure& f : r.figures) f.overBudget = true;
        results.push_back(r);
        progress(m, s, skip);
        continue;
      }
      const auto t0 = Clock::now();
      results.push_back(runPoint(c, m, s));
      if (results.back().figures[kSyncMs].overBudget) skip = "not run: smaller S over budget";
      if (const auto& v = results.back().figures[kSyncMs].value) {
        lastS = s;
        lastSyncMs = *v;
      }
      const PointResult& r = results.back();
      std::ostringstream line;
      for (size_t i = 0; i < columns().size(); ++i) {
        const Figure& f = r.figures[i];
        line << " " << columns()[i].key << "="
             << (f.overBudget ? ">budget" : f.value ? std::to_string(*f.value) : "-");
      }
      std::fprintf(stderr, "[%s S=%d] done in %.1f s:%s %s\n", m.c_str(), s,
                   std::chrono::duration<double>(Clock::now() - t0).count(), line.str().c_str(),
                   r.note.c_str());
    }
  }
  std::string error;
  const auto files = writeReport(c.out, results, command, &error, c.baseline);
  if (!error.empty()) std::fprintf(stderr, "sluice-bench: %s\n", error.c_str());
  for (const std::string& f : files) {
    struct stat st {};
    if (::stat(f.c_str(), &st) != 0 || st.st_size == 0) {
      std::fprintf(stderr, "sluice-bench: %s missing or empty\n", f.c_str());
      return 1;
    }
    std::fprintf(stderr, "wrote %s\n", f.c_str());
  }
  if (gStop) {
    std::fprintf(stderr, "sluice-bench: interrupted; partial results written\n");
    return 130;
  }
  return files.size() >= 2 && error.empty() ? 0 : 1;
}

}  // namespace
}  // namespace sluice::lab

int main(int argc, char** argv) {
  if (argc > 3 && std::strcmp(argv[1], sluice::lab::kRusageWrapperArg) == 0) {
    return sluice::lab::runRusageWrapper(argv);
  }
  using sluice::lab::Config;
  Config c;
  CLI::App app{"sluice-bench: compare proxy modes on one netns topology"};
  app.require_subcommand(1);
  CLI::App* runCmd = app.add_subcommand("run", "run the lab");
  std::string modes = "ebpf,iptables,nftables";
  std::string services;
  runCmd->add_option("--modes", modes,
                     "comma-separated modes (ebpf,ipvs,dpdk,iptables,nftables,kube-ipvs)");
  runCmd->add_option("--baseline", c.baseline, "the mode every figure is a ratio to")
      ->capture_default_str();
  runCmd->add_option("--services", services,
                     "comma-separated service counts S (default 1,1000,10000,100000)");
  runCmd->add_option("--endpoints", c.endpoints, "endpoints per service")->check(CLI::Range(1, 64));
  runCmd->add_option("--out", c.out, "output directory")->required();
  runCmd->add_flag("--quick", c.quick, "smoke profile: S=1,100, few probes, well under 5 minutes");
  auto* budget = runCmd->add_option("--budget-seconds", c.budgetSeconds, "time budget per (mode, S) point");
  auto* changes = runCmd->add_option("--changes", c.changes, "endpoint changes per point");
  auto* connects = runCmd->add_option("--connects", c.connects, "connects per point");
  auto* rps = runCmd->add_option("--rps-seconds", c.rpsSeconds, "duration of each req/s run");
  runCmd->add_option("--threads", c.threads, "client threads for req/s")->check(CLI::Range(1, 64));
  runCmd->add_option("--maglev-table-size", c.maglevTableSize,
                     "ebpf: Maglev with this (prime) table size instead of random selection");
  CLI11_PARSE(app, argc, argv);

  auto split = [](const std::string& s) {
    std::vector<std::string> out;
    std::stringstream in(s);
    for (std::string item; std::getline(in, item, ',');) {
      if (!item.empty()) out.push_back(item);
    }
    return out;
  };
  c.modes = split(modes);
  for (const std::string& m : c.modes) {
    if (!sluice::lab::makeLabMode(m, sluice::lab::LabScale{})) {
      std::string known;
      for (const std::string& k : sluice::lab::labModeNames()) known += (known.empty() ? "" : ",") + k;
      std::fprintf(stderr, "sluice-bench: unknown mode '%s' (known: %s)\n", m.c_str(), known.c_str());
      return 1;
    }
  }
  if (c.quick) {
    c.services = {1, 100};
    if (budget->count() == 0) c.budgetSeconds = 30;
    if (changes->count() == 0) c.changes = 5;
    if (connects->count() == 0) c.connects = 100;
    if (rps->count() == 0) c.rpsSeconds = 1;
    c.settle = std::chrono::milliseconds(3000);
  }
  if (!services.empty()) {
    c.services.clear();
    for (const std::string& s : split(services)) c.services.push_back(std::stoi(s));
  }
  std::string command;
  for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);
  return sluice::lab::run(c, command);
}
