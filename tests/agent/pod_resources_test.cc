// Pod resources against real cgroups, real processes and a real server:
// limits written where the kubelet writes them, a memory limit ending in an
// OOM kill reported as OOMKilled, a CPU limit throttling a busy loop, cgroups
// removed with the pod; and the agent's PodMetrics/NodeMetrics read back
// through the API and by the real kubectl (`kubectl top pods/nodes`).
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "control/agent/runtime/cgroups.h"
#include "control/agent/runtime/metrics_reporter.h"
#include "control/agent/runtime/node_agent.h"
#include "control/api/quantity.h"
#include "tests/agent/agent_fixture.h"

namespace sluice::agent::testing {
namespace {

using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr const char* kKubectl = "/usr/bin/kubectl";

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

uint64_t readU64(const std::string& path) {
  std::string s = readText(path);
  return s.empty() ? 0 : std::stoull(s);
}

bool dirExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Output (stdout+stderr) and exit code of a shell command.
std::string run(const std::string& cmd, int* rc) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) {
    *rc = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

Json container(const std::string& name, const std::vector<std::string>& command,
               const Json& resources) {
  Json c = {{"name", name}, {"image", "busybox"}, {"command", command}};
  if (!resources.is_null()) c["resources"] = resources;
  return c;
}

int64_t cpuNanocores(const Json& usage) {
  auto q = api::parseQuantity(usage.value("cpu", ""));
  return q ? static_cast<int64_t>(q->nanos) : -1;
}

class PodResourcesTest : public AgentTest {
 protected:
  void SetUp() override {
    auto cg = CgroupManager::detect(cgroupParent_);
    if (!cg) GTEST_SKIP() << "no usable cgroups here: " << cg.error().message;
    cgroups_.emplace(std::move(*cg));
    AgentTest::SetUp();
  }
  void TearDown() override {
    if (!cgroups_) return;
    AgentTest::TearDown();
    for (const std::string& d : cgroups_->parentDirs().unique()) {
      EXPECT_FALSE(dirExists(d)) << "cgroup parent left behind: " << d;
    }
  }
  CgroupDirs containerDirs(const std::string& uid, const std::string& name) const {
    return cgroups_->podDirs(uid).child(name);
  }
  std::string cpuFile(const CgroupDirs& d, const char* v1, const char* v2) const {
    return d.cpu + "/" + (cgroups_->version() == CgroupVersion::kV1 ? v1 : v2);
  }

  std::optional<CgroupManager> cgroups_;
};

class PodMetricsTest : public PodResourcesTest {
 protected:
  PodMetricsTest() { metricsResolution_ = std::chrono::milliseconds(1000); }
};

// Limits land in the container's cgroup as the kubelet maps them, the
// container process is in it, a 100m CPU limit holds a busy loop far below
// one CPU (cpuacct, measured), and deleting the pod removes the cgroups.
TEST_F(PodResourcesTest, LimitsAreWrittenCpuIsThrottledAndCgroupsGoWithThePod) {
  createPod("limited",
            {{"containers",
              {container("spin", {"sh", "-c", "while :; do :; done"},
                         {{"limits", {{"cpu", "100m"}, {"memory", "64Mi"}}}}),
               container("idle", {"sleep", "1000"}, {{"requests", {{"cpu", "250m"}}}})}}});
  Json pod =
      waitPod("limited", [](const Json& p) { return running(p, "spin") && running(p, "idle"); });
  ASSERT_TRUE(running(pod, "spin")) << pod.dump(2);
  const std::string uid = pod["metadata"]["uid"];
  const CgroupDirs spin = containerDirs(uid, "spin");
  const CgroupDirs idle = containerDirs(uid, "idle");
  if (cgroups_->version() == CgroupVersion::kV1) {
    EXPECT_EQ(readText(spin.cpu + "/cpu.cfs_quota_us"), "10000");
    EXPECT_EQ(readText(spin.cpu + "/cpu.cfs_period_us"), "100000");
    EXPECT_EQ(readText(spin.cpu + "/cpu.shares"), "102");  // request defaulted to the limit
    EXPECT_EQ(readText(spin.memory + "/memory.limit_in_bytes"), "67108864");
    EXPECT_EQ(readText(idle.cpu + "/cpu.shares"), "256");
    EXPECT_EQ(readText(idle.cpu + "/cpu.cfs_quota_us"), "-1");
    EXPECT_GT(readU64(idle.memory + "/memory.limit_in_bytes"), uint64_t{1} << 40);  // unlimited
  } else {
    EXPECT_EQ(readText(spin.cpu + "/cpu.max"), "10000 100000");
    EXPECT_EQ(readText(spin.cpu + "/cpu.weight"), "4");
    EXPECT_EQ(readText(spin.memory + "/memory.max"), "67108864");
    EXPECT_EQ(readText(idle.cpu + "/cpu.max"), "max 100000");
    EXPECT_EQ(readText(idle.memory + "/memory.max"), "max");
  }
  // The container's first process (and so all it forks) is in its cgroup.
  const int pid = containerPid(uid, "spin");
  ASSERT_GT(pid, 0);
  for (const std::string& dir : spin.unique()) {
    std::string procs = readText(dir + "/cgroup.procs");
    std::istringstream in(procs);
    bool found = false;
    for (int p = 0; in >> p;) found = found || p == pid;
    EXPECT_TRUE(found) << pid << " not in " << dir << ": " << procs;
  }

  // CPU time over ~2 s of wall time: the quota allows 10 %; a generous
  // bound (under 40 %) still proves the throttle, and above zero that the
  // counter is this container's.
  auto usage = [&] {
    auto u = cgroups_->usage(spin);
    return u ? u->cpuNanos : 0;
  };
  const uint64_t before = usage();
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(seconds(2));
  const uint64_t after = usage();
  const double wallNs =
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
  const double share = static_cast<double>(after - before) / wallNs;
  std::cout << "100m busy loop: " << (after - before) / 1000000 << " ms CPU in "
            << static_cast<int64_t>(wallNs / 1e6) << " ms wall (" << share * 100 << "%)\n";
  EXPECT_GT(after, before) << "the busy loop got no CPU time at all";
  EXPECT_LT(share, 0.40) << "a 100m-limited busy loop used " << share * 100 << "% of a CPU";

  const std::vector<std::string> podDirs = cgroups_->podDirs(uid).unique();
  for (const std::string& d : podDirs) EXPECT_TRUE(dirExists(d)) << d;
  // A graceful delete: the agent removes the object only after cleaning up,
  // so once it is gone the cgroups must be too (a force delete would race).
  ASSERT_TRUE(client().remove(client::resources::kPods, "default", "limited",
                              Json{{"gracePeriodSeconds", 1}}));
  ASSERT_TRUE(waitGone("limited"));
  for (const std::string& d : podDirs) EXPECT_FALSE(dirExists(d)) << "cgroup left behind: " << d;
}

// A container over its 32Mi limit (dd's 100 MiB buffer) is killed by the
// kernel's OOM killer: reported terminated OOMKilled with exit code 137, as
// the kubelet does, and restarted by policy.
TEST_F(PodResourcesTest, ContainerOverMemoryLimitIsOomKilledAndRestarts) {
  createPod("hog", {{"containers",
                     {container("hog", {"dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"},
                                {{"limits", {{"memory", "32Mi"}}}})}}});
  Json pod = waitPod("hog", [](const Json& p) {
    const Json* s = containerStatus(p, "hog");
    return s != nullptr && (*s)["restartCount"].get<int>() >= 1 &&
           (*s)["lastState"].contains("terminated");
  });
  const Json* s = containerStatus(pod, "hog");
  ASSERT_NE(s, nullptr) << pod.dump(2);
  ASSERT_GE((*s)["restartCount"].get<int>(), 1) << pod.dump(2);
  const Json& last = (*s)["lastState"]["terminated"];
  EXPECT_EQ(last["reason"], "OOMKilled") << pod.dump(2);
  EXPECT_EQ(last["exitCode"], 137);
  std::cout << "lastState: " << last.dump() << "\n";
  const std::string uid = pod["metadata"]["uid"];
  const CgroupDirs dirs = containerDirs(uid, "hog");
  if (cgroups_->version() == CgroupVersion::kV1) {
    EXPECT_EQ(readText(dirs.memory + "/memory.limit_in_bytes"), "33554432");
  } else {
    EXPECT_EQ(readText(dirs.memory + "/memory.max"), "33554432");
  }
  auto u = cgroups_->usage(dirs);
  ASSERT_TRUE(u);
  EXPECT_GE(u->oomKills, 1u);
}

// A restarted agent adopts a limited pod with its cgroup: the same process
// stays in it with the same limit, and a restart after adoption (kill -9)
// lands the new process in that cgroup again.
TEST_F(PodResourcesTest, AdoptedPodKeepsItsCgroup) {
  createPod("kept", {{"containers",
                      {container("main", {"sleep", "1000"}, {{"limits", {{"memory", "48Mi"}}}})}}});
  Json pod = waitPod("kept", [](const Json& p) { return running(p, "main"); });
  ASSERT_TRUE(running(pod, "main")) << pod.dump(2);
  const std::string uid = pod["metadata"]["uid"];
  const CgroupDirs dirs = containerDirs(uid, "main");
  const std::string limitFile =
      dirs.memory +
      (cgroups_->version() == CgroupVersion::kV1 ? "/memory.limit_in_bytes" : "/memory.max");
  auto inCgroup = [&](int pid) {
    std::istringstream in(readText(dirs.memory + "/cgroup.procs"));
    for (int p = 0; in >> p;) {
      if (p == pid) return true;
    }
    return false;
  };
  const int pid = containerPid(uid, "main");
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(inCgroup(pid));

  stopRuntime();
  EXPECT_TRUE(dirExists(dirs.memory)) << "cgroup removed with the agent";
  startRuntime();
  std::this_thread::sleep_for(seconds(1));
  EXPECT_EQ(containerPid(uid, "main"), pid);
  EXPECT_TRUE(inCgroup(pid)) << "adopted process left its cgroup";
  EXPECT_EQ(readText(limitFile), "50331648");

  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  pod = waitPod("kept", [](const Json& p) {
    const Json* s = containerStatus(p, "main");
    return s != nullptr && (*s)["restartCount"] == 1 && running(p, "main");
  });
  const int pid2 = containerPid(uid, "main");
  ASSERT_GT(pid2, 0);
  EXPECT_NE(pid2, pid);
  EXPECT_TRUE(inCgroup(pid2)) << "restarted container is outside its cgroup";
  EXPECT_EQ((*containerStatus(pod, "main"))["lastState"]["terminated"]["reason"], "Error")
      << "a kill -9 is not an OOM kill";
}

// An exec probe runs inside the container's cgroups (limited and accounted
// like the container, as the kubelet's exec is): while a slow probe runs,
// the container's cgroup holds more than the container's own process.
TEST_F(PodResourcesTest, ExecProbeRunsInTheContainersCgroup) {
  Json c = container("main", {"sleep", "1000"}, {{"limits", {{"memory", "40Mi"}}}});
  c["readinessProbe"] = {
      {"exec", {{"command", {"sleep", "2"}}}}, {"periodSeconds", 1}, {"timeoutSeconds", 5}};
  createPod("probed", {{"containers", {c}}});
  Json pod = waitPod("probed", [](const Json& p) { return running(p, "main"); });
  ASSERT_TRUE(running(pod, "main")) << pod.dump(2);
  const std::string uid = pod["metadata"]["uid"];
  const int pid = containerPid(uid, "main");
  ASSERT_GT(pid, 0);
  const CgroupDirs dirs = containerDirs(uid, "main");
  std::string procs;
  EXPECT_TRUE(sluice::testing::ControlPlane::eventually(
      [&] {
        procs = readText(dirs.memory + "/cgroup.procs");
        std::istringstream in(procs);
        int n = 0, other = 0;
        for (int p = 0; in >> p; ++n) other += p != pid ? 1 : 0;
        return other > 0;
      },
      seconds(20)))
      << "no probe process ever joined the container's cgroup: " << procs;
}

// A busy pod's PodMetrics show CPU > 0 and its memory working set through
// the API, with timestamp and window; NodeMetrics for the node appear; the
// real kubectl prints both with `top`; deleting the pod removes its
// PodMetrics.
TEST_F(PodMetricsTest, BusyPodReportsCpuAndKubectlTopPrintsIt) {
  NodeAgentOptions no;
  no.nodeName = nodeName_;
  no.internalIp = "192.0.2.77";
  no.podCidr = podCidr_;
  auto node = NodeAgent::start(client(), no);
  ASSERT_TRUE(node) << node.error().message;

  createPod("busy", {{"containers",
                      {container("spin", {"sh", "-c", "while :; do :; done"},
                                 {{"limits", {{"cpu", "500m"}}}})}}});
  waitPod("busy", [](const Json& p) { return running(p, "spin"); });
  Json metrics;
  ASSERT_TRUE(sluice::testing::ControlPlane::eventually(
      [&] {
        auto m = client().get(kPodMetricsResource, "default", "busy");
        if (!m) return false;
        metrics = *m;
        const Json& cs = metrics.value("containers", Json::array());
        return !cs.empty() && cpuNanocores(cs[0]["usage"]) > 0;
      },
      seconds(60)))
      << metrics.dump(2);
  EXPECT_EQ(metrics["containers"][0]["name"], "spin");
  EXPECT_FALSE(metrics.value("timestamp", "").empty());
  EXPECT_FALSE(metrics.value("window", "").empty());
  EXPECT_EQ(metrics["metadata"]["labels"][kMetricsNodeLabel], nodeName_);
  auto mem = api::parseQuantity(metrics["containers"][0]["usage"].value("memory", ""));
  ASSERT_TRUE(mem);
  EXPECT_GT(mem->nanos, 0);
  // Limited to half a CPU: the rate can never honestly exceed ~0.5 CPU.
  EXPECT_LT(cpuNanocores(metrics["containers"][0]["usage"]), 800000000) << metrics.dump(2);

  Json nodeMetrics;
  ASSERT_TRUE(sluice::testing::ControlPlane::eventually(
      [&] {
        auto m = client().get(kNodeMetricsResource, "", nodeName_);
        if (!m) return false;
        nodeMetrics = *m;
        return true;
      },
      seconds(30)));
  EXPECT_GT(cpuNanocores(nodeMetrics["usage"]), 0) << nodeMetrics.dump(2);
  EXPECT_FALSE(nodeMetrics.value("window", "").empty());

  if (::access(kKubectl, X_OK) == 0) {
    const std::string k =
        "KUBECONFIG=" + cp_->server().kubeconfigPath() + " " + std::string(kKubectl) + " ";
    int rc = 0;
    std::string out = run(k + "top pods", &rc);
    std::cout << "kubectl top pods:\n" << out;
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("busy"), std::string::npos) << out;
    EXPECT_NE(out.find("CPU(cores)"), std::string::npos) << out;
    out = run(k + "top pods busy --containers", &rc);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("spin"), std::string::npos) << out;
    out = run(k + "top nodes", &rc);
    std::cout << "kubectl top nodes:\n" << out;
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find(nodeName_), std::string::npos) << out;
  } else {
    std::cerr << "note: " << kKubectl << " not installed; `kubectl top` not exercised\n";
  }

  ASSERT_TRUE(client().remove(client::resources::kPods, "default", "busy",
                              Json{{"gracePeriodSeconds", 0}}));
  ASSERT_TRUE(waitGone("busy"));
  EXPECT_TRUE(sluice::testing::ControlPlane::eventually(
      [&] {
        auto m = client().get(kPodMetricsResource, "default", "busy");
        return !m && m.error().code == ErrorCode::kNotFound;
      },
      seconds(20)))
      << "PodMetrics of a deleted pod were kept";
  (*node)->stop();
}

}  // namespace
}  // namespace sluice::agent::testing
