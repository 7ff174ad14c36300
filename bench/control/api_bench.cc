// API server benchmarks (issue 3), end to end over HTTPS with the REST client
// the controllers and agents use, each against a baseline measured in the
// same run on the same disk:
//   1. create throughput: 16 concurrent clients creating pods, vs 16 threads
//      writing the same bytes straight into a SqliteStore;
//   2. create latency p50/p99 at a steady 100 writes/s, vs the store alone at
//      the same pace;
//   3. listing 150,000 pods in one request and in pages of 500, vs a store
//      range read of the same keys;
//   4. watch fan-out: pods written at 100/s while 100 watchers stream them,
//      delivery latency (write acknowledged -> event read by the watcher)
//      p50/p99 and completeness, vs a single watcher.
//
// Usage: api_bench [--seconds S] [--pods N] [--watchers W] [--quick]
// Files go under $SLUICE_BENCH_DIR (else /tmp); put it on the disk you mean
// to measure (fsync on tmpfs is free).
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control/api/json_codec.h"
#include "control/api/object_meta.h"
#include "control/api/registry.h"
#include "control/client/api_client.h"
#include "control/server/api_server.h"
#include "control/server/object_store.h"
#include "control/store/sqlite_store.h"

namespace {

using namespace sluice;  // NOLINT
using Clock = std::chrono::steady_clock;
using client::Json;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "api_bench: %s\n", what.c_str());
  std::exit(1);
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * static_cast<double>(v.size())));
  return v[i];
}

Json podJson(const std::string& name) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"labels", {{"app", "bench"}, {"tier", "web"}}}}},
          {"spec",
           {{"containers",
             {{{"name", "web"},
               {"image", "sluice/echo:1"},
               {"ports", {{{"containerPort", 80}, {"protocol", "TCP"}}}},
               {"resources", {{"requests", {{"cpu", "100m"}, {"memory", "64Mi"}}}}}}}}}}};
}

struct Env {
  std::filesystem::path dir;
  std::unique_ptr<server::ApiServer> server;
  std::unique_ptr<client::ApiClient> client;

  explicit Env(const std::filesystem::path& d) : dir(d) {
    server::ApiServerOptions o;
    o.dataDir = dir.string();
    o.listenPort = 0;
    o.compactInterval = std::chrono::seconds(0);
    o.workerThreads = 32;
    auto s = server::ApiServer::start(o);
    if (!s) die(s.error().message);
    server = std::move(*s);
    auto kc = client::Kubeconfig::load(server->kubeconfigPath());
    if (!kc) die(kc.error().message);
    auto c = client::ApiClient::create(*kc, "api-bench");
    if (!c) die(c.error().message);
    client = std::move(*c);
  }
  ~Env() {
    client.reset();
    server.reset();
  }
  void ensureNamespace(const std::string& ns) {
    auto r = client->create(client::resources::kNamespaces, "", Json{{"apiVersion", "v1"}, {"kind", "Namespace"},
                                                                      {"metadata", {{"name", ns}}}});
    if (!r && r.error().code != ErrorCode::kAlreadyExists) die(r.error().message);
  }
};

std::unique_ptr<store::SqliteStore> openStore(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  auto s = store::SqliteStore::open((dir / "state.db").string());
  if (!s) die(s.error().message);
  return std::move(*s);
}

// A pod as the server stores it: defaulted and encoded, so the store
// baseline writes the same bytes the API writes.
std::string storedPodBytes(Env& env) {
  auto created = env.client->create(client::resources::kPods, "default", podJson("template-pod"));
  if (!created) die(created.error().message);
  api::Json j = *created;
  const api::ResourceType* type = api::Registry::builtin().find("", "v1", "pods");
  auto msg = type->newObject();
  if (auto r = api::decodeJson(j, *msg, nullptr); !r) die(r.error().message);
  return server::ObjectStore::encode(*msg);
}

// --- 1. throughput -----------------------------------------------------------

template <class Fn>
double runConcurrent(int threads, double seconds, Fn op) {
  std::atomic<int64_t> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int64_t i = 0; !stop.load(); ++i) {
        op(t, i);
        done.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : ts) th.join();
  return static_cast<double>(done.load()) / std::chrono::duration<double>(Clock::now() - start).count();
}

// --- 2. paced latency ----------------------------------------------------------

template <class Fn>
std::vector<double> runPaced(double perSecond, double seconds, Fn op) {
  // Open-loop: each request is sent at its scheduled time from a pool of
  // senders, so one slow write does not delay the next (no coordinated
  // omission).
  int total = static_cast<int>(perSecond * seconds);
  std::vector<double> lat(static_cast<size_t>(total));
  std::atomic<int> next{0};
  auto start = Clock::now();
  auto interval = std::chrono::duration<double>(1.0 / perSecond);
  std::vector<std::thread> ts;
  for (int t = 0; t < 8; ++t) {
    ts.emplace_back([&] {
      for (int i; (i = next.fetch_add(1)) < total;) {
        auto due = start + std::chrono::duration_cast<Clock::duration>(interval * i);
        std::this_thread::sleep_until(due);
        op(i);
        lat[static_cast<size_t>(i)] = ms(Clock::now() - due);
      }
    });
  }
  for (auto& th : ts) th.join();
  return lat;
}

// --- 4. watch fan-out ----------------------------------------------------------

struct FanOut {
  double p50 = 0, p99 = 0, max = 0;
  int64_t delivered = 0, expected = 0;
};

FanOut watchFanOut(Env& env, const std::string& ns, int watchers, int writes, double perSecond) {
  env.ensureNamespace(ns);
  std::vector<Clock::time_point> acked(static_cast<size_t>(writes));
  std::vector<std::atomic<bool>> ackedSet(static_cast<size_t>(writes));
  std::mutex mu;
  std::vector<double> lat;
  std::atomic<int64_t> delivered{0};
  std::atomic<int> ready{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> ws;
  auto rv = env.client->list(client::resources::kPods, ns);
  if (!rv) die(rv.error().message);
  std::string fromRv = (*rv)["metadata"].value("resourceVersion", "");
  for (int w = 0; w < watchers; ++w) {
    ws.emplace_back([&] {
      std::vector<double> mine;
      int seen = 0;
      client::ListOptions o;
      o.resourceVersion = fromRv;
      ready.fetch_add(1);
      auto r = env.client->watch(
          client::resources::kPods, ns, o,
          [&](const std::string& type, const Json& obj) {
            if (type != "ADDED") return true;
            auto now = Clock::now();
            std::string name = client::nameOf(obj);
            int i = std::atoi(name.c_str() + 2);  // "p-<i>"
            if (i >= 0 && i < writes) {
              // The watch event may outrun the writer's own ack.
              while (!ackedSet[static_cast<size_t>(i)].load()) std::this_thread::yield();
              mine.push_back(std::max(0.0, ms(now - acked[static_cast<size_t>(i)])));
            }
            delivered.fetch_add(1);
            return ++seen < writes;
          },
          &stop, std::chrono::seconds(120));
      if (!r) std::fprintf(stderr, "api_bench: watcher: %s\n", r.error().message.c_str());
      std::lock_guard lock(mu);
      lat.insert(lat.end(), mine.begin(), mine.end());
    });
  }
  while (ready.load() < watchers) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // streams open
  auto start = Clock::now();
  auto interval = std::chrono::duration<double>(1.0 / perSecond);
  for (int i = 0; i < writes; ++i) {
    std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(interval * i));
    auto r = env.client->create(client::resources::kPods, ns, podJson("p-" + std::to_string(i)));
    acked[static_cast<size_t>(i)] = Clock::now();
    ackedSet[static_cast<size_t>(i)] = true;
    if (!r) die(r.error().message);
  }
  // Watchers end once they have seen every write (or time out).
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (delivered.load() < static_cast<int64_t>(watchers) * writes && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop = true;
  for (auto& t : ws) t.join();
  FanOut f;
  f.delivered = delivered.load();
  f.expected = static_cast<int64_t>(watchers) * writes;
  f.p50 = pct(lat, 50);
  f.p99 = pct(lat, 99);
  f.max = pct(lat, 100);
  return f;
}

double cpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 5;
  int pods = 150'000;
  int watchers = 100;
  int fanWrites = 500;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die(a + ": missing value");
      return argv[++i];
    };
    if (a == "--seconds") {
      seconds = std::atof(next().c_str());
    } else if (a == "--pods") {
      pods = std::atoi(next().c_str());
    } else if (a == "--watchers") {
      watchers = std::atoi(next().c_str());
    } else if (a == "--quick") {
      seconds = 2;
      pods = 20'000;
      watchers = 20;
      fanWrites = 100;
    } else {
      die("unknown flag " + a + " (flags: --seconds S --pods N --watchers W --quick)");
    }
  }
  if (seconds <= 0 || pods <= 0 || watchers <= 0) die("--seconds, --pods and --watchers must be positive");

  const char* base = std::getenv("SLUICE_BENCH_DIR");
  std::string tmpl = (base ? std::filesystem::path(base) : std::filesystem::temp_directory_path()) / "sluice-api-bench-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) die("mkdtemp " + tmpl);
  std::filesystem::path dir = tmpl;
  struct Cleanup {
    std::filesystem::path d;
    ~Cleanup() { std::filesystem::remove_all(d); }
  } cleanup{dir};

  std::printf("api_bench: data under %s\n\n", dir.c_str());
  std::printf("%-44s %14s %14s %8s\n", "measure", "sluice API", "store only", "ratio");
  auto row = [](const char* what, double api, double base, const char* unit) {
    std::printf("%-44s %11.2f %-2s %11.2f %-2s %7.2fx\n", what, api, unit, base, unit, base > 0 ? api / base : 0.0);
    std::fflush(stdout);
  };

  Env env(dir / "api");
  std::string podBytes = storedPodBytes(env);
  auto baseline = openStore(dir / "store");

  // 1. Throughput.
  double apiRate = runConcurrent(16, seconds, [&](int t, int64_t i) {
    auto r = env.client->create(client::resources::kPods, "default",
                                podJson("t" + std::to_string(t) + "-" + std::to_string(i)));
    if (!r) die(r.error().message);
  });
  double storeRate = runConcurrent(16, seconds, [&](int t, int64_t i) {
    auto r = baseline->create("/registry/pods/default/t" + std::to_string(t) + "-" + std::to_string(i), podBytes);
    if (!r) die(r.error().message);
  });
  row("create throughput, 16 clients (writes/s)", apiRate, storeRate, "");

  // 2. Latency at 100 writes/s.
  auto apiLat = runPaced(100, seconds * 2, [&](int i) {
    auto r = env.client->create(client::resources::kPods, "default", podJson("paced-" + std::to_string(i)));
    if (!r) die(r.error().message);
  });
  auto storeLat = runPaced(100, seconds * 2, [&](int i) {
    auto r = baseline->create("/registry/pods/default/paced-" + std::to_string(i), podBytes);
    if (!r) die(r.error().message);
  });
  row("create latency at 100 writes/s, p50", pct(apiLat, 50), pct(storeLat, 50), "ms");
  row("create latency at 100 writes/s, p99", pct(apiLat, 99), pct(storeLat, 99), "ms");

  // 3. List N pods: loaded straight into the server's store (the same bytes
  // the API writes, names and uids varied), then read through the API.
  {
    const api::ResourceType* type = api::Registry::builtin().find("", "v1", "pods");
    auto proto = type->newObject();
    proto->ParseFromString(podBytes);
    env.ensureNamespace("big");
    std::atomic<int> next{0};
    std::vector<std::thread> ts;
    auto loadStart = Clock::now();
    for (int t = 0; t < 64; ++t) {
      ts.emplace_back([&] {
        auto msg = type->newObject();
        msg->CopyFrom(*proto);
        server::ObjectStore objects(env.server->store());
        for (int i; (i = next.fetch_add(1)) < pods;) {
          auto& m = api::mutableMeta(*msg);
          m.set_name("pod-" + std::to_string(i));
          m.set_namespace_("big");
          m.set_uid("00000000-0000-4000-8000-" + std::to_string(100000000000 + i));
          auto r = objects.create(*type, *msg);
          if (!r) die(r.error().message);
          if (auto rb = baseline->create("/registry/pods/big/pod-" + std::to_string(i), podBytes); !rb) {
            die(rb.error().message);
          }
        }
      });
    }
    for (auto& th : ts) th.join();
    std::printf("(loaded %d pods into each store in %.1f s)\n", pods, ms(Clock::now() - loadStart) / 1000);

    auto t0 = Clock::now();
    auto full = env.client->request("GET", "/api/v1/namespaces/big/pods");
    auto apiFull = Clock::now() - t0;
    if (!full || full->status != 200) die("full list failed");
    size_t bytes = full->body.size();
    auto parsed = Json::parse(full->body, nullptr, false);
    if (!parsed.is_object() || parsed["items"].size() != static_cast<size_t>(pods)) die("full list: wrong item count");
    t0 = Clock::now();
    auto raw = baseline->list("/registry/pods/big/");
    auto storeFull = Clock::now() - t0;
    if (!raw || raw->kvs.size() != static_cast<size_t>(pods)) die("store list: wrong count");
    row("list all pods in one request (ms)", ms(apiFull), ms(storeFull), "ms");
    std::printf("  (%d pods, %.1f MiB of JSON)\n", pods, static_cast<double>(bytes) / (1 << 20));

    t0 = Clock::now();
    size_t items = 0;
    client::ListOptions o;
    o.limit = 500;
    for (;;) {
      auto page = env.client->list(client::resources::kPods, "big", o);
      if (!page) die(page.error().message);
      items += (*page)["items"].size();
      std::string cont = (*page)["metadata"].value("continue", "");
      if (cont.empty()) break;
      o.continueToken = cont;
    }
    auto apiPaged = Clock::now() - t0;
    if (items != static_cast<size_t>(pods)) die("paged list: wrong item count");
    t0 = Clock::now();
    size_t storeItems = 0;
    std::string after;
    for (;;) {
      auto page = baseline->list("/registry/pods/big/", 500, after);
      if (!page) die(page.error().message);
      storeItems += page->kvs.size();
      if (!page->more) break;
      after = page->kvs.back().key;
    }
    auto storePaged = Clock::now() - t0;
    row("list all pods in pages of 500 (ms)", ms(apiPaged), ms(storePaged), "ms");

    t0 = Clock::now();
    auto sel = env.client->request("GET", "/api/v1/namespaces/big/pods?labelSelector=app%3Dnone");
    row("list with a selector matching none (ms)", ms(Clock::now() - t0), ms(storeFull), "ms");
    if (!sel || sel->status != 200) die("selector list failed");
  }

  // 4. Watch fan-out.
  double cpu0 = cpuSeconds();
  FanOut one = watchFanOut(env, "fan-1", 1, fanWrites, 100);
  double cpu1 = cpuSeconds();
  FanOut many = watchFanOut(env, "fan-" + std::to_string(watchers), watchers, fanWrites, 100);
  double cpu2 = cpuSeconds();
  char label[96];
  std::snprintf(label, sizeof label, "watch delivery p50, %d watchers vs 1", watchers);
  row(label, many.p50, one.p50, "ms");
  std::snprintf(label, sizeof label, "watch delivery p99, %d watchers vs 1", watchers);
  row(label, many.p99, one.p99, "ms");
  std::snprintf(label, sizeof label, "CPU per write (server+watchers), %d vs 1", watchers);
  row(label, (cpu2 - cpu1) * 1000 / fanWrites, (cpu1 - cpu0) * 1000 / fanWrites, "ms");
  std::printf("  delivered %lld/%lld events to %d watchers (1 watcher: %lld/%lld); max %.1f ms\n",
              static_cast<long long>(many.delivered), static_cast<long long>(many.expected), watchers,
              static_cast<long long>(one.delivered), static_cast<long long>(one.expected), many.max);
  if (many.delivered != many.expected || one.delivered != one.expected) die("watch fan-out lost events");
  return 0;
}
