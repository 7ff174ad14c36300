// End-to-end network programming latency of the agent's proxy: an
// EndpointSlice patched through the API server (HTTPS, SQLite, watch) to
// the moment ProxySync has applied it to a real EbpfMode (pinned maps on a
// private bpffs), with N services x 10 endpoints programmed. Reports the
// p50/p99 of single-endpoint changes at each N, plus the initial full sync.
// Needs root (BPF maps); exits 77 otherwise. Setup (creating the services
// through the API) is outside the timed region.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bpf/loader/ebpf_mode.h"
#include "control/agent/proxy/proxy_sync.h"
#include "tests/bpf/bpffs.h"
#include "tests/control/controllers/control_plane.h"

namespace sluice::agent {
namespace {

using client::Json;
using Clock = std::chrono::steady_clock;

// Endpoint `ep` of service `svc`; `round` (0 at creation) changes only
// endpoint 0's address, never back to the address it has now.
std::string podIp(int svc, int ep, int round) {
  const int host = svc * 16 + ep;  // < 2^16 for up to 4,000 services
  return "10." + std::to_string(round == 0 ? 100 : 101 + round % 150) + "." +
         std::to_string(host / 256) + "." + std::to_string(host % 256);
}

Json endpoints(int svc, int round) {
  Json eps = Json::array();
  for (int e = 0; e < 10; ++e) {
    // One endpoint (index 0) changes with each round: a single change.
    eps.push_back({{"addresses", Json::array({podIp(svc, e, e == 0 ? round : 0)})},
                   {"conditions", {{"ready", true}}}});
  }
  return eps;
}

void BM_SliceChangeToApplied(benchmark::State& state) {
  const int services = static_cast<int>(state.range(0));
  sluice::testing::ScopedBpffs fs;
  if (!fs.ok()) {
    state.SkipWithError(("bpffs: " + fs.error()).c_str());
    return;
  }
  sluice::testing::ControlPlane::Options cpo;
  cpo.startControllers = false;
  sluice::testing::ControlPlane cp("sync-bench-" + std::to_string(services), cpo);
  client::ApiClient& api = cp.client();
  for (int i = 0; i < services; ++i) {
    const std::string name = "svc-" + std::to_string(i);
    Json svc = {{"metadata", {{"name", name}, {"namespace", "default"}}},
                {"spec", {{"ports", Json::array({{{"port", 80}, {"targetPort", 8080}}})}}}};
    Json slice = {{"metadata",
                   {{"name", name}, {"namespace", "default"}, {"labels", {{kServiceNameLabel, name}}}}},
                  {"addressType", "IPv4"},
                  {"ports", Json::array({{{"port", 8080}, {"protocol", "TCP"}}})},
                  {"endpoints", endpoints(i, 0)}};
    if (!api.create(client::resources::kServices, "default", svc).ok() ||
        !api.create(client::resources::kEndpointSlices, "default", slice).ok()) {
      state.SkipWithError("creating services failed");
      return;
    }
  }
  EbpfOptions eo;
  eo.pinDir = fs.pinDir();
  auto mode = EbpfMode::create(eo);
  if (!mode) {
    state.SkipWithError(mode.error().message.c_str());
    return;
  }
  ProxySyncOptions so;
  so.translator.nodeName = "node-1";
  // Applied = ProxySync's hook ran (after apply() returned) with a diff
  // holding the endpoint this iteration wrote.
  std::mutex mu;
  std::condition_variable cv;
  std::optional<IpAddress> want;
  bool applied = false;
  ProxySync sync(api, **mode, so, [&](const ServiceDiff& diff, bool) {
    std::lock_guard lock(mu);
    if (!want) return;
    for (const ServiceChange& c : diff.changes) {
      if (!c.after) continue;
      for (const Backend& b : c.after->backends) {
        if (b.address == *want) applied = true;
      }
    }
    if (applied) cv.notify_all();
  });
  const auto syncStart = Clock::now();
  sync.start();
  if (!sync.waitForInitialSync(std::chrono::minutes(5))) {
    state.SkipWithError("no initial sync");
    return;
  }
  const double fullSyncMs =
      std::chrono::duration<double, std::milli>(Clock::now() - syncStart).count();

  std::vector<double> samples;
  int generation = 0;
  for (auto _ : state) {
    // Isolated changes: wait out ProxySync's 20 ms minimum sync period, so
    // the rate limiter (which coalesces bursts) is not what is measured.
    std::this_thread::sleep_for(so.minSyncPeriod + std::chrono::milliseconds(10));
    ++generation;
    const int svc = generation % services;
    const int round = generation / services + 1;
    const std::string name = "svc-" + std::to_string(svc);
    {
      std::lock_guard lock(mu);
      want = IpAddress::parse(podIp(svc, 0, round)).value();
      applied = false;
    }
    const auto t0 = Clock::now();
    auto r = api.patch(client::resources::kEndpointSlices, "default", name,
                       Json{{"endpoints", endpoints(svc, round)}});
    if (!r.ok()) {
      state.SkipWithError(r.error().message.c_str());
      break;
    }
    {
      std::unique_lock lock(mu);
      if (!cv.wait_for(lock, std::chrono::seconds(30), [&] { return applied; })) {
        state.SkipWithError("change not applied within 30 s");
        break;
      }
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    samples.push_back(secs * 1000);
    state.SetIterationTime(secs);
  }
  sync.stop();
  if (samples.empty()) return;
  std::sort(samples.begin(), samples.end());
  auto pct = [&](double p) {
    return samples[std::min(samples.size() - 1, static_cast<size_t>(p * static_cast<double>(samples.size())))];
  };
  state.counters["p50_ms"] = pct(0.50);
  state.counters["p99_ms"] = pct(0.99);
  state.counters["full_sync_ms"] = fullSyncMs;
  state.counters["backends"] = static_cast<double>(services) * 10;
}
BENCHMARK(BM_SliceChangeToApplied)
    ->Arg(100)
    ->Arg(1000)
    ->Iterations(200)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sluice::agent

int main(int argc, char** argv) {
  if (::geteuid() != 0) {
    std::fprintf(stderr, "SKIP: sync_bench needs root (BPF maps)\n");
    return 77;
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
