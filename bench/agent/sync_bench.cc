// End-to-end network programming time of the agent's proxy, with N
// services x 10 endpoints held by a real API server (HTTPS, SQLite, watch)
// and a real EbpfMode (pinned maps on a private bpffs), at N = 1k, 10k, 100k:
//   full_sync_ms  ProxySync start (informers list Services and
//                 EndpointSlices) to the first full sync applied;
//   mode_sync_ms  of which EbpfMode::sync() itself;
//   p50/p99_ms    single-endpoint changes: an EndpointSlice patched through
//                 the API to ProxySync having applied it.
// Setup is outside the timed regions: service 0 and its slice are created
// through the REST API, the other N-1 are copies of what the server stored
// for them, written straight into its store from several threads (through
// REST, 100,000 services and slices take longer than this whole bench).
// Needs root (BPF maps); exits 77 otherwise.
//
//   build-px/bench/agent/sync_bench [--benchmark_filter=/100000]
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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
#include "control/api/json_codec.h"
#include "control/api/registry.h"
#include "control/server/api_server.h"
#include "control/server/object_store.h"
#include "tests/bpf/bpffs.h"
#include "tests/control/controllers/control_plane.h"

namespace sluice::agent {
namespace {

using client::Json;
using Clock = std::chrono::steady_clock;

// Endpoint `ep` of service `svc`; `round` (0 at creation) changes only
// endpoint 0's address, never back to the address it has now. Round 0 is
// 10.0.0.0/8 at svc * 10 + ep (up to 1.6M services); later rounds of
// endpoint 0 are 11.0.0.0/8: the round (mod 128) and the service (< 2^17).
std::string podIp(int svc, int ep, int round) {
  const uint32_t host = round == 0 ? 0x0a000000u + static_cast<uint32_t>(svc) * 10 + ep
                                   : 0x0b000000u + (static_cast<uint32_t>(round % 128) << 17) +
                                         static_cast<uint32_t>(svc);
  return std::to_string(host >> 24) + "." + std::to_string((host >> 16) & 255) + "." +
         std::to_string((host >> 8) & 255) + "." + std::to_string(host & 255);
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

// ClusterIP of service i >= 1: 10.97.0.0 onwards (inside the default
// 10.96.0.0/12 service range), skipping the one the allocator gave svc-0.
std::string clusterIp(int i, const std::string& taken) {
  for (uint32_t a = 0x0a610000u + static_cast<uint32_t>(i);; a += 0x00080000u) {
    std::string ip = std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
                     std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
    if (ip != taken) return ip;
  }
}

Json serviceJson(const std::string& name) {
  return {{"metadata", {{"name", name}, {"namespace", "default"}}},
          {"spec", {{"ports", Json::array({{{"port", 80}, {"targetPort", 8080}}})}}}};
}

Json sliceJson(const std::string& name, int svc) {
  return {{"metadata",
           {{"name", name}, {"namespace", "default"}, {"labels", {{kServiceNameLabel, name}}}}},
          {"addressType", "IPv4"},
          {"ports", Json::array({{{"port", 8080}, {"protocol", "TCP"}}})},
          {"endpoints", endpoints(svc, 0)}};
}

// Services svc-1 .. svc-(n-1) and their slices, written into the server's
// store as copies of svc-0's (as the REST path stored them: defaults,
// allocated fields), each with its own name, uid, ClusterIP and endpoints.
// SQLite commits concurrent writers in one transaction, hence the threads.
Result<void> fillStore(server::ApiServer& srv, const Json& svc0, const Json& slice0, int n) {
  const api::Registry& reg = api::Registry::builtin();
  const api::ResourceType* svcType = reg.find("", "v1", "services");
  const api::ResourceType* sliceType = reg.find("discovery.k8s.io", "v1", "endpointslices");
  if (!svcType || !sliceType) return Error::internal("registry: no services/endpointslices");
  const std::string taken = svc0["spec"]["clusterIP"];
  std::mutex mu;
  std::optional<Error> failed;
  auto write = [&](const api::ResourceType& type, Json obj, const std::string& name) {
    obj["metadata"].erase("resourceVersion");
    std::unique_ptr<google::protobuf::Message> msg(type.prototype->New());
    if (auto r = api::decodeJson(obj, *msg, nullptr); !r) return r;
    auto r = srv.store().create(server::ObjectStore::key(type, "default", name),
                                server::ObjectStore::encode(*msg));
    if (!r) return Result<void>(r.error());
    return okResult();
  };
  auto worker = [&](int first, int step) {
    for (int i = first; i < n; i += step) {
      const std::string name = "svc-" + std::to_string(i);
      char uid[40];
      std::snprintf(uid, sizeof uid, "00000000-0000-4000-8000-%012d", i);
      Json svc = svc0;
      svc["metadata"]["name"] = name;
      svc["metadata"]["uid"] = uid;
      const std::string ip = clusterIp(i, taken);
      svc["spec"]["clusterIP"] = ip;
      svc["spec"]["clusterIPs"] = Json::array({ip});
      Json slice = slice0;
      slice["metadata"]["name"] = name;
      slice["metadata"]["uid"] = std::string(uid).replace(9, 4, "0001");
      slice["metadata"]["labels"][kServiceNameLabel] = name;
      slice["endpoints"] = endpoints(i, 0);
      auto r = write(*svcType, std::move(svc), name);
      if (r) r = write(*sliceType, std::move(slice), name);
      if (!r) {
        std::lock_guard lock(mu);
        if (!failed) failed = r.error().wrap(name);
        return;
      }
    }
  };
  constexpr int kWriters = 8;
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) threads.emplace_back(worker, 1 + t, kWriters);
  for (std::thread& t : threads) t.join();
  if (failed) return *failed;
  return okResult();
}

// The EbpfMode, timing its full syncs (the share of full_sync_ms spent
// programming the maps; the rest is listing, decoding and translating).
class TimedMode final : public ProxyMode {
 public:
  explicit TimedMode(ProxyMode& inner) : inner_(inner) {}
  std::string_view name() const override { return inner_.name(); }
  Result<void> sync(const ServiceTable& table) override {
    const auto t0 = Clock::now();
    auto r = inner_.sync(table);
    lastSyncMs_ = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    return r;
  }
  Result<void> apply(const ServiceDiff& diff) override { return inner_.apply(diff); }
  ProxyStats stats() const override { return inner_.stats(); }
  ModeCapabilities capabilities() const override { return inner_.capabilities(); }
  uint64_t epoch() const override { return inner_.epoch(); }
  void onStateLost(std::function<void()> listener) override { inner_.onStateLost(std::move(listener)); }
  Result<std::vector<DescribedFrontend>> describeFrontends() const override {
    return inner_.describeFrontends();
  }
  Result<DescribedSelection> describeSelection(const ServiceKey& key) const override {
    return inner_.describeSelection(key);
  }
  Result<std::vector<DescribedFlow>> describeFlows(size_t limit) const override {
    return inner_.describeFlows(limit);
  }
  double lastSyncMs() const { return lastSyncMs_; }

 private:
  ProxyMode& inner_;
  std::atomic<double> lastSyncMs_{0};
};

// One row of the table printed at the end.
struct Row {
  int services = 0;
  double setupS = 0, fullSyncMs = 0, modeSyncMs = 0, p50Ms = 0, p99Ms = 0;
  size_t samples = 0;
};
std::vector<Row>& rows() {
  static std::vector<Row> r;
  return r;
}

void BM_SliceChangeToApplied(benchmark::State& state) {
  const int services = static_cast<int>(state.range(0));
  Row row;
  row.services = services;
  sluice::testing::ScopedBpffs fs;
  if (!fs.ok()) {
    state.SkipWithError(("bpffs: " + fs.error()).c_str());
    return;
  }
  sluice::testing::ControlPlane::Options cpo;
  cpo.startControllers = false;
  sluice::testing::ControlPlane cp("sync-bench-" + std::to_string(services), cpo);
  client::ApiClient& api = cp.client();
  const auto setupStart = Clock::now();
  auto svc0 = api.create(client::resources::kServices, "default", serviceJson("svc-0"));
  auto slice0 = api.create(client::resources::kEndpointSlices, "default", sliceJson("svc-0", 0));
  if (!svc0.ok() || !slice0.ok()) {
    state.SkipWithError("creating svc-0 through the API failed");
    return;
  }
  if (auto r = fillStore(cp.server(), *svc0, *slice0, services); !r) {
    state.SkipWithError(("filling the store: " + r.error().message).c_str());
    return;
  }
  row.setupS = std::chrono::duration<double>(Clock::now() - setupStart).count();

  // Map capacities as the lab sizes them: what N x 10 needs plus a quarter
  // and 1,024 of headroom (an endpoint change adds the new backend before
  // the old one goes).
  const auto withHeadroom = [](uint64_t n) { return static_cast<uint32_t>(n + n / 4 + 1024); };
  EbpfOptions eo;
  eo.pinDir = fs.pinDir();
  eo.maxFrontends = withHeadroom(static_cast<uint64_t>(services));
  eo.maxSlots = eo.maxBackends = withHeadroom(static_cast<uint64_t>(services) * 10);
  auto mode = EbpfMode::create(eo);
  if (!mode) {
    state.SkipWithError(mode.error().message.c_str());
    return;
  }
  TimedMode timed(**mode);
  ProxySyncOptions so;
  so.translator.nodeName = "node-1";
  // Applied = ProxySync's hook ran (after apply() returned) with a diff
  // holding the endpoint this iteration wrote.
  std::mutex mu;
  std::condition_variable cv;
  std::optional<IpAddress> want;
  bool applied = false;
  ProxySync sync(api, timed, so, [&](const ServiceDiff& diff, bool) {
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
    state.SkipWithError(("no initial sync: " + sync.lastError()).c_str());
    return;
  }
  row.fullSyncMs = std::chrono::duration<double, std::milli>(Clock::now() - syncStart).count();
  row.modeSyncMs = timed.lastSyncMs();
  // Everything written was listed and programmed, not a prefix of it (the
  // server's own default/kubernetes service comes on top).
  int complete = 0;
  for (const auto& [key, svc] : sync.table()) {
    if (key.name.rfind("svc-", 0) == 0 && svc.backends.size() == 10) ++complete;
  }
  const ProxyStats ps = (*mode)->stats();
  if (complete != services || ps.backends < static_cast<uint64_t>(services) * 10) {
    state.SkipWithError(("programmed " + std::to_string(complete) + " of the services, " +
                         std::to_string(ps.backends) + " backends in the maps")
                            .c_str());
    return;
  }

  std::vector<double> samples;
  int generation = 0;
  for (auto _ : state) {
    // Isolated changes: wait out ProxySync's 20 ms minimum sync period, so
    // the rate limiter (which coalesces bursts) is not what is measured.
    std::this_thread::sleep_for(so.minSyncPeriod + std::chrono::milliseconds(10));
    ++generation;
    // Spread over the table (a prime stride), not just its first services.
    const int svc = static_cast<int>((static_cast<int64_t>(generation) * 7919) % services);
    const int round = generation;
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
    return samples[std::min(samples.size() - 1,
                            static_cast<size_t>(p * static_cast<double>(samples.size())))];
  };
  row.p50Ms = pct(0.50);
  row.p99Ms = pct(0.99);
  row.samples = samples.size();
  state.counters["p50_ms"] = row.p50Ms;
  state.counters["p99_ms"] = row.p99Ms;
  state.counters["full_sync_ms"] = row.fullSyncMs;
  state.counters["mode_sync_ms"] = row.modeSyncMs;
  state.counters["backends"] = static_cast<double>(services) * 10;
  rows().push_back(row);
}
BENCHMARK(BM_SliceChangeToApplied)
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(100000)
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
  using sluice::agent::Row;
  std::printf("\nservices x 10 endpoints | setup s | full sync ms (of which EbpfMode::sync) | "
              "endpoint change p50 ms | p99 ms | changes\n");
  for (const Row& r : sluice::agent::rows()) {
    std::printf("%23d | %7.1f | %11.1f (%9.1f)                 | %21.2f | %6.2f | %zu\n",
                r.services, r.setupS, r.fullSyncMs, r.modeSyncMs, r.p50Ms, r.p99Ms, r.samples);
  }
  return 0;
}
