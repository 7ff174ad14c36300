// endpoints_bench: the Endpoints and EndpointSlice controllers at scale, as
// Kubernetes' network-programming-latency SLI measures them: S Services
// (default 10,000) with E ready endpoints each (default 10; pods written
// straight through the API with their status, no agent), then C single-pod
// changes (default 200): one pod's readiness flips with a unique Ready
// lastTransitionTime, and the time until BOTH its Service's Endpoints and
// EndpointSlice carry that time in endpoints.kubernetes.io/last-change-
// trigger-time is the controllers' time for that change (observed through
// watches, as a proxy would). Prints p50/p90/p99/max for each object and
// for both, plus setup times.
//
// The API server runs in this process (a fresh SQLite file under
// $SLUICE_BENCH_DIR, else /tmp); only the two endpoint controllers run.
//
//   endpoints_bench [--services S] [--endpoints E] [--changes C] [--threads T]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "control/client/api_client.h"
#include "control/controllers/cluster/cluster_util.h"
#include "control/controllers/manager.h"
#include "control/server/api_server.h"

namespace {

using sluice::client::Json;
using Steady = std::chrono::steady_clock;
namespace res = sluice::client::resources;
constexpr const char* kTriggerPointer = "/metadata/annotations/endpoints.kubernetes.io~1last-change-trigger-time";

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "endpoints_bench: %s\n", what.c_str());
  std::exit(1);
}

std::string svcName(int s) { return "svc-" + std::to_string(s); }
std::string podName(int s, int e) { return "p-" + std::to_string(s) + "-" + std::to_string(e); }
// 10.(s / 256 % 256).(s % 256) would collide past 65,536 services; pod IPs
// only need to be valid and distinct per Service.
std::string podIp(int s, int e) {
  int n = s * 16 + e;
  return "10." + std::to_string(64 + n / 65536 % 64) + "." + std::to_string(n / 256 % 256) + "." +
         std::to_string(n % 256);
}

Json readyStatus(const std::string& ip, bool ready, const std::string& transition) {
  return {{"phase", "Running"},
          {"podIP", ip},
          {"podIPs", {{{"ip", ip}}}},
          {"conditions", {{{"type", "Ready"}, {"status", ready ? "True" : "False"}, {"lastTransitionTime", transition}}}}};
}

// Runs fn(i) for i in [0, n) on `threads` threads.
template <typename F>
void parallel(int n, int threads, F fn) {
  std::atomic<int> next{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      for (int i = next++; i < n; i = next++) fn(i);
    });
  }
  for (auto& t : ts) t.join();
}

template <typename T>
T retry(const std::function<sluice::Result<T>()>& call, const std::string& what) {
  for (int attempt = 0;; ++attempt) {
    auto r = call();
    if (r) return *r;
    if (attempt > 20) die(what + ": " + r.error().message);
    std::this_thread::sleep_for(std::chrono::milliseconds(50 * (attempt + 1)));
  }
}

double ms(Steady::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

void report(const char* what, std::vector<double> v) {
  if (v.empty()) return;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) { return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))]; };
  std::printf("  %-26s p50 %7.2f ms   p90 %7.2f ms   p99 %7.2f ms   max %7.2f ms   (n=%zu)\n", what, pct(0.5),
              pct(0.9), pct(0.99), v.back(), v.size());
}

// Last trigger time seen per Service, per watched kind.
struct Seen {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::pair<std::string, Steady::time_point>> endpoints, slices;
};

}  // namespace

int main(int argc, char** argv) {
  int services = 10000, endpoints = 10, changes = 200, threads = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    int v = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--services")) services = v;
    else if (!std::strcmp(argv[i], "--endpoints")) endpoints = v;
    else if (!std::strcmp(argv[i], "--changes")) changes = v;
    else if (!std::strcmp(argv[i], "--threads")) threads = v;
    else die(std::string("unknown flag ") + argv[i]);
  }
  if (services < 1 || endpoints < 1 || endpoints > 16 || changes < 1) die("bad sizes (1 <= endpoints <= 16)");
  const char* base = std::getenv("SLUICE_BENCH_DIR");
  std::filesystem::path dir = std::filesystem::path(base ? base : "/tmp") /
                              ("sluice-endpoints-bench-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);

  sluice::server::ApiServerOptions so;
  so.dataDir = dir.string();
  so.listenPort = 0;
  so.compactInterval = std::chrono::seconds(0);
  auto server = sluice::server::ApiServer::start(so);
  if (!server) die("server: " + server.error().message);
  auto kc = sluice::client::Kubeconfig::load((*server)->kubeconfigPath());
  if (!kc) die(kc.error().message);
  auto clientR = sluice::client::ApiClient::create(*kc, "endpoints-bench");
  if (!clientR) die(clientR.error().message);
  auto& api = **clientR;
  std::printf("endpoints_bench: %d services x %d endpoints, %d changes, %d writer threads\n", services, endpoints,
              changes, threads);

  // ---- setup (untimed for the result): services, pods, statuses.
  auto t0 = Steady::now();
  const std::string start = "2024-01-01T00:00:00Z";
  parallel(services, threads, [&](int s) {
    Json svc = {{"apiVersion", "v1"},
                {"kind", "Service"},
                {"metadata", {{"name", svcName(s)}}},
                {"spec", {{"selector", {{"app", svcName(s)}}}, {"ports", {{{"port", 80}, {"targetPort", 8080}}}}}}};
    retry<Json>([&] { return api.create(res::kServices, "default", svc); }, "create " + svcName(s));
  });
  parallel(services * endpoints, threads, [&](int i) {
    int s = i / endpoints, e = i % endpoints;
    Json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", podName(s, e)}, {"labels", {{"app", svcName(s)}}}}},
                {"spec", {{"nodeName", "n1"}, {"containers", {{{"name", "c"}, {"image", "sluice/echo"}}}}}}};
    Json created = retry<Json>([&] { return api.create(res::kPods, "default", pod); }, "create " + podName(s, e));
    created["status"] = readyStatus(podIp(s, e), true, start);
    retry<Json>([&] { return api.updateStatus(res::kPods, "default", created); }, "status " + podName(s, e));
  });
  auto t1 = Steady::now();
  std::printf("  setup: %d services, %d pods written in %.1f s\n", services, services * endpoints,
              std::chrono::duration<double>(t1 - t0).count());

  sluice::controllers::ManagerOptions mo;
  mo.only = {"endpoints", "endpointslice"};
  mo.workers = 4;
  auto manager = sluice::controllers::ControllerManager::start(api, mo);
  if (!manager) die(manager.error().message);
  // Converged: every Service has an Endpoints object with all its addresses
  // (the slices follow the same queue discipline; checked below per change).
  for (;;) {
    auto l = api.list(res::kEndpoints, "default");
    size_t full = 0;
    if (l) {
      for (const auto& ep : (*l)["items"]) {
        size_t n = 0;
        for (const auto& s : ep.value("subsets", Json::array())) n += s.value("addresses", Json::array()).size();
        if (n == static_cast<size_t>(endpoints)) ++full;
      }
    }
    auto sl = api.list(res::kEndpointSlices, "default");
    size_t slices = sl ? (*sl)["items"].size() : 0;
    if (full == static_cast<size_t>(services) && slices >= static_cast<size_t>(services)) break;
    if (Steady::now() - t1 > std::chrono::minutes(20)) die("controllers did not converge in 20 min");
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
  auto t2 = Steady::now();
  std::printf("  initial sync: controllers started and all Endpoints/EndpointSlices written in %.1f s\n",
              std::chrono::duration<double>(t2 - t1).count());

  // ---- the measured part: single pod changes seen through watches.
  Seen seen;
  std::atomic<bool> stop{false};
  auto rv = api.list(res::kPods, "default", [] {
    sluice::client::ListOptions o;
    o.limit = 1;
    return o;
  }());
  if (!rv) die(rv.error().message);
  std::string from = (*rv)["metadata"]["resourceVersion"];
  auto watcher = [&](const sluice::client::Resource& r, bool slice) {
    return std::thread([&, slice, rres = r] {
      sluice::client::ListOptions o;
      o.resourceVersion = from;
      while (!stop) {
        auto w = api.watch(
            rres, "default", o,
            [&](const std::string& type, const Json& obj) {
              std::string rvNow = obj.value("/metadata/resourceVersion"_json_pointer, std::string());
              if (!rvNow.empty()) o.resourceVersion = rvNow;
              if (type == "BOOKMARK") return !stop;
              std::string t = obj.value(Json::json_pointer(kTriggerPointer), std::string());
              std::string svc = slice ? obj.value("/metadata/labels/kubernetes.io~1service-name"_json_pointer,
                                                  std::string())
                                      : obj.value("/metadata/name"_json_pointer, std::string());
              auto now = Steady::now();
              std::lock_guard lock(seen.mu);
              (slice ? seen.slices : seen.endpoints)[svc] = {t, now};
              seen.cv.notify_all();
              return !stop;
            },
            &stop, std::chrono::seconds(30));
        if (!w && !stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
  };
  std::thread we = watcher(res::kEndpoints, false);
  std::thread ws = watcher(res::kEndpointSlices, true);
  std::this_thread::sleep_for(std::chrono::seconds(1));

  std::mt19937 rng(42);
  std::vector<double> epLat, sliceLat, bothLat;
  std::map<std::string, bool> ready;
  for (int c = 0; c < changes; ++c) {
    int s = static_cast<int>(rng() % static_cast<unsigned>(services));
    int e = static_cast<int>(rng() % static_cast<unsigned>(endpoints));
    std::string name = podName(s, e);
    bool next = ready.count(name) ? !ready[name] : false;
    ready[name] = next;
    auto pod = api.get(res::kPods, "default", name);
    if (!pod) die(pod.error().message);
    std::string transition = sluice::controllers::formatRfc3339Nano(std::chrono::system_clock::now());
    (*pod)["status"] = readyStatus(podIp(s, e), next, transition);
    auto sent = Steady::now();
    auto r = api.updateStatus(res::kPods, "default", *pod);
    if (!r) die(r.error().message);
    std::unique_lock lock(seen.mu);
    bool ok = seen.cv.wait_for(lock, std::chrono::seconds(30), [&] {
      return seen.endpoints[svcName(s)].first == transition && seen.slices[svcName(s)].first == transition;
    });
    if (!ok) die("change " + std::to_string(c) + " (" + name + ") not seen in 30 s");
    auto ep = seen.endpoints[svcName(s)].second;
    auto sl = seen.slices[svcName(s)].second;
    epLat.push_back(ms(ep - sent));
    sliceLat.push_back(ms(sl - sent));
    bothLat.push_back(ms(std::max(ep, sl) - sent));
  }
  stop = true;
  we.join();
  ws.join();
  std::printf("  per pod change (status write -> trigger time visible through a watch):\n");
  report("Endpoints", epLat);
  report("EndpointSlice", sliceLat);
  report("both", bothLat);
  (*manager)->stop();
  (*server)->stop();
  std::filesystem::remove_all(dir);
  return 0;
}
