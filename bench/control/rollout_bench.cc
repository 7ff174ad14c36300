// rollout_bench: the workload controllers at scale, as Kubernetes' kubemark
// density tests: N hollow nodes (default 100) and a Deployment of R replicas
// (default 1,000) created, then rolled to a new image. Reports the time until
// every replica is available for both phases and the controller manager's
// CPU time (user+sys of this process, which runs only the controllers and
// the polling loop; the API server and the hollow nodes run in forked child
// processes, reported separately).
//
// Pods are bound round-robin by the hollow nodes (bindUnscheduled): only the
// workload controllers run here, so the figures are theirs.
//
//   rollout_bench [--nodes N] [--replicas R] [--quick]
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "control/client/api_client.h"
#include "control/controllers/manager.h"
#include "control/server/api_server.h"
#include "tests/control/controllers/hollow_node.h"

namespace {

using sluice::client::Json;
using Clock = std::chrono::steady_clock;

double cpuSeconds(const rusage& r) {
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

double selfCpu() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return cpuSeconds(r);
}

// utime+stime of another process from /proc/PID/stat, in seconds.
double processCpu(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(f, line);
  size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

void stopChild(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

volatile std::sig_atomic_t gStop = 0;
void onSignal(int) { gStop = 1; }

[[noreturn]] void runServer(const std::string& dir) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::signal(SIGTERM, onSignal);
  sluice::server::ApiServerOptions o;
  o.dataDir = dir;
  o.listenPort = 0;
  o.compactInterval = std::chrono::seconds(0);
  auto s = sluice::server::ApiServer::start(o);
  if (!s) {
    std::cerr << "server: " << s.error().message << "\n";
    _exit(1);
  }
  while (gStop == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*s)->stop();
  _exit(0);
}

[[noreturn]] void runNodes(const std::string& kubeconfig, int nodes) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::signal(SIGTERM, onSignal);
  auto kc = sluice::client::Kubeconfig::load(kubeconfig);
  if (!kc) _exit(1);
  auto c = sluice::client::ApiClient::create(*kc, "hollow-node");
  if (!c) _exit(1);
  sluice::testing::HollowNodeOptions o;
  for (int i = 0; i < nodes; ++i) o.names.push_back("hollow-" + std::to_string(i));
  o.bindUnscheduled = true;
  o.workers = 8;
  auto h = sluice::testing::HollowNodes::start(**c, o);
  if (!h) {
    std::cerr << "hollow nodes: " << h.error().message << "\n";
    _exit(1);
  }
  while (gStop == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*h)->stop();
  _exit(0);
}

Json deployment(int replicas) {
  Json labels = {{"app", "bench"}};
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", {{"name", "bench"}}},
          {"spec",
           {{"replicas", replicas},
            {"selector", {{"matchLabels", labels}}},
            {"template",
             {{"metadata", {{"labels", labels}}},
              {"spec", {{"containers", {{{"name", "app"}, {"image", "sluice/echo:1"}}}}}}}}}}};
}

// Waits until the Deployment reports every replica updated and available.
bool waitRolledOut(sluice::client::ApiClient& c, int replicas, std::chrono::seconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto d = c.get(sluice::client::resources::kDeployments, "default", "bench");
    if (d) {
      const Json s = d->value("status", Json::object());
      if (s.value("observedGeneration", 0) >= (*d)["metadata"].value("generation", 0) &&
          s.value("updatedReplicas", 0) == replicas && s.value("availableReplicas", 0) == replicas &&
          s.value("replicas", 0) == replicas) {
        return true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  int nodes = 100;
  int replicas = 1000;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      nodes = 10;
      replicas = 100;
    } else if (a == "--nodes" && i + 1 < argc) {
      nodes = std::atoi(argv[++i]);
    } else if (a == "--replicas" && i + 1 < argc) {
      replicas = std::atoi(argv[++i]);
    } else {
      std::cerr << "usage: rollout_bench [--nodes N] [--replicas R] [--quick]\n";
      return 2;
    }
  }
  namespace fs = std::filesystem;
  const char* base = std::getenv("SLUICE_BENCH_DIR");
  fs::path dir = fs::path(base != nullptr ? base : fs::temp_directory_path().string()) /
                 ("sluice-rollout-bench-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string kubeconfig = (dir / "kubeconfig").string();

  // Children are forked before this process starts any thread.
  pid_t server = fork();
  if (server == 0) runServer(dir.string());
  auto ready = Clock::now() + std::chrono::seconds(30);
  while (!fs::exists(kubeconfig) && Clock::now() < ready) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the file is written whole, then served
  pid_t hollow = fork();
  if (hollow == 0) runNodes(kubeconfig, nodes);

  int rc = 0;
  {
    auto kc = sluice::client::Kubeconfig::load(kubeconfig);
    if (!kc) {
      std::cerr << kc.error().message << "\n";
      stopChild(hollow);
      stopChild(server);
      return 1;
    }
    auto c = sluice::client::ApiClient::create(*kc, "rollout-bench");
    if (!c) return 1;
    sluice::client::ApiClient& api = **c;
    // Nodes registered before the clock starts.
    for (auto until = Clock::now() + std::chrono::seconds(60); Clock::now() < until;) {
      auto l = api.list(sluice::client::resources::kNodes, "");
      if (l && static_cast<int>((*l)["items"].size()) >= nodes) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    sluice::controllers::ManagerOptions mo;
    mo.only = {"deployment", "replicaset", "garbagecollector"};
    mo.workers = 4;
    auto m = sluice::controllers::ControllerManager::start(api, mo);
    if (!m) {
      std::cerr << m.error().message << "\n";
      rc = 1;
    } else {
      double cpu0 = selfCpu();
      double srv0 = processCpu(server);
      double hol0 = processCpu(hollow);
      auto t0 = Clock::now();
      auto created = api.create(sluice::client::resources::kDeployments, "default", deployment(replicas));
      bool ok1 = created && waitRolledOut(api, replicas, std::chrono::seconds(900));
      double t1 = std::chrono::duration<double>(Clock::now() - t0).count();
      double cpu1 = selfCpu();
      double srv1 = processCpu(server);
      double hol1 = processCpu(hollow);
      auto t2start = Clock::now();
      Json patch = {{"spec", {{"template", {{"spec", {{"containers", {{{"name", "app"}, {"image", "sluice/echo:2"}}}}}}}}}}};
      auto patched = api.patch(sluice::client::resources::kDeployments, "default", "bench", patch,
                               "application/strategic-merge-patch+json");
      bool ok2 = ok1 && patched && waitRolledOut(api, replicas, std::chrono::seconds(900));
      double t2 = std::chrono::duration<double>(Clock::now() - t2start).count();
      double cpu2 = selfCpu();
      double srv2 = processCpu(server);
      double hol2 = processCpu(hollow);
      std::printf("rollout_bench: %d hollow nodes, Deployment of %d replicas (maxSurge/maxUnavailable 25%%)\n",
                  nodes, replicas);
      std::printf("%-28s %10s %16s %12s %12s\n", "phase", "wall s", "controllers CPU s", "server CPU s",
                  "hollow CPU s");
      std::printf("%-28s %10.2f %16.2f %12.2f %12.2f%s\n", "create -> all available", t1, cpu1 - cpu0, srv1 - srv0,
                  hol1 - hol0, ok1 ? "" : "  (TIMED OUT)");
      std::printf("%-28s %10.2f %16.2f %12.2f %12.2f%s\n", "new image -> all available", t2, cpu2 - cpu1,
                  srv2 - srv1, hol2 - hol1, ok2 ? "" : "  (TIMED OUT)");
      if (!ok1 || !ok2) rc = 1;
      (*m)->stop();
    }
  }
  stopChild(hollow);
  stopChild(server);
  fs::remove_all(dir);
  return rc;
}
