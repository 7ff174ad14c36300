// The pod runtime against a real server, real CNI binaries and real
// processes in namespaces: status, the echo image, restarts with back-off,
// probes, init containers with emptyDir, restart policies, graceful
// termination, unknown images.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "control/controllers/manager.h"
#include "tests/agent/agent_fixture.h"

namespace sluice::agent::testing {
namespace {

using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

Json shell(const std::string& script) {
  return {{"name", "main"}, {"image", "busybox"}, {"command", {"sh", "-c", script}}};
}

std::string tmpFile(const std::string& tag) {
  return "/tmp/sluice-agent-test-" + std::to_string(::getpid()) + "-" + tag;
}

// An echo pod: Running with every condition True, podIP from the node's CIDR,
// hostIP, a running container status; HTTP and UDP from the node namespace
// answer with the pod's hostname and IP; deleting it removes the process,
// the network namespace and the pod.
TEST_F(AgentTest, EchoPodAnswersWithHostnameAndIpAndReportsStatus) {
  createPod("echo-a",
            {{"containers",
              {{{"name", "echo"},
                {"image", "sluice/echo:v2"},
                {"ports",
                 {{{"containerPort", 8080}}, {{"containerPort", 5353}, {"protocol", "UDP"}}}}}}}});
  Json pod = waitPod("echo-a", [](const Json& p) { return condition(p, "Ready") == "True"; });
  ASSERT_EQ(condition(pod, "Ready"), "True") << pod.dump(2);
  const Json& st = pod["status"];
  EXPECT_EQ(st["phase"], "Running");
  for (const char* type : {"PodScheduled", "Initialized", "ContainersReady", "Ready"}) {
    EXPECT_EQ(condition(pod, type), "True") << type;
  }
  EXPECT_EQ(st["hostIP"], "192.0.2.77");
  const std::string ip = st.value("podIP", "");
  ASSERT_EQ(ip.rfind("10.250.1.", 0), 0u) << ip;
  const Json* cs = containerStatus(pod, "echo");
  ASSERT_NE(cs, nullptr);
  EXPECT_TRUE((*cs)["state"].contains("running"));
  EXPECT_EQ((*cs)["restartCount"], 0);
  EXPECT_EQ((*cs)["ready"], true);
  EXPECT_EQ((*cs)["image"], "sluice/echo:v2");

  std::optional<std::string> body;
  ASSERT_TRUE(sluice::testing::ControlPlane::eventually(
      [&] { return (body = httpGet(node_.path(), ip, 8080, "/hello")).has_value(); }, seconds(20)));
  EXPECT_NE(body->find("hostname: echo-a\n"), std::string::npos) << *body;
  EXPECT_NE(body->find("pod-ip: " + ip + "\n"), std::string::npos) << *body;
  EXPECT_NE(body->find("version: v2\n"), std::string::npos) << *body;
  EXPECT_NE(body->find("request: GET /hello HTTP/1.1"), std::string::npos) << *body;
  auto udp = udpExchange(node_.path(), ip, 5353, "ping");
  ASSERT_TRUE(udp.has_value());
  EXPECT_EQ(*udp, "hostname: echo-a\npod-ip: " + ip + "\nping");

  const std::string uid = pod["metadata"]["uid"];
  int pid = containerPid(uid, "echo");
  ASSERT_GT(pid, 0);
  // The pod's host-side veth (from the CNI result) hangs in the node
  // namespace, is recorded for the proxy's hook, and was announced once.
  std::string hostIf;
  {
    std::ifstream in(podDir(uid) + "/state.json");
    hostIf = Json::parse(in, nullptr, false).value("hostInterface", "");
  }
  ASSERT_FALSE(hostIf.empty());
  auto links = cni::testing::linkNames(node_.netns());
  EXPECT_NE(std::find(links.begin(), links.end(), hostIf), links.end()) << hostIf;
  EXPECT_EQ(interfaceEvents(), "+" + hostIf + ";");
  ASSERT_TRUE(client().remove(client::resources::kPods, "default", "echo-a"));
  ASSERT_TRUE(waitGone("echo-a"));
  EXPECT_NE(::kill(pid, 0), 0) << "container process survived its pod";
  struct stat sb {};
  EXPECT_NE(::stat(("/run/netns/sluice-" + uid).c_str(), &sb), 0) << "netns left behind";
  EXPECT_FALSE(std::filesystem::exists(podDir(uid)));
  EXPECT_EQ(interfaceEvents(), "+" + hostIf + ";-" + hostIf + ";");
  links = cni::testing::linkNames(node_.netns());
  EXPECT_EQ(std::find(links.begin(), links.end(), hostIf), links.end()) << "veth left behind";
}

// kill -9 of the container: it comes back with restartCount 1 and lastState
// terminated (137, signal 9); a second kill waits out the back-off (1 s base
// here), visible as CrashLoopBackOff, then restartCount 2.
TEST_F(AgentTest, KilledContainerRestartsWithBackoff) {
  createPod("crash", {{"containers", {shell("sleep 1000")}}});
  Json pod = waitPod("crash", [](const Json& p) { return running(p, "main"); });
  const std::string uid = pod["metadata"]["uid"];
  int pid = containerPid(uid, "main");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  pod = waitPod("crash", [](const Json& p) {
    const Json* s = containerStatus(p, "main");
    return s != nullptr && (*s)["restartCount"] == 1 && running(p, "main");
  });
  const Json* cs = containerStatus(pod, "main");
  ASSERT_NE(cs, nullptr);
  ASSERT_EQ((*cs)["restartCount"], 1) << pod.dump(2);
  const Json& last = (*cs)["lastState"]["terminated"];
  EXPECT_EQ(last["exitCode"], 137);
  EXPECT_EQ(last["signal"], 9);
  EXPECT_EQ(last["reason"], "Error");

  int pid2 = containerPid(uid, "main");
  ASSERT_GT(pid2, 0);
  ASSERT_NE(pid2, pid);
  auto killedAt = Clock::now();
  ASSERT_EQ(::kill(pid2, SIGKILL), 0);
  Json backoff = waitPod("crash", [](const Json& p) {
    const Json* s = containerStatus(p, "main");
    return s != nullptr && (*s)["state"].contains("waiting");
  });
  const Json* ws = containerStatus(backoff, "main");
  ASSERT_NE(ws, nullptr);
  EXPECT_EQ((*ws)["state"]["waiting"]["reason"], "CrashLoopBackOff") << backoff.dump(2);
  pod = waitPod("crash", [](const Json& p) {
    const Json* s = containerStatus(p, "main");
    return s != nullptr && (*s)["restartCount"] == 2 && running(p, "main");
  });
  EXPECT_GE(Clock::now() - killedAt, std::chrono::milliseconds(900))
      << "restarted without back-off";
  EXPECT_EQ((*containerStatus(pod, "main"))["restartCount"], 2);
}

// A liveness probe (exec) that starts failing restarts the container; one
// that passes (httpGet on the echo port) never does.
TEST_F(AgentTest, FailingLivenessProbeRestartsContainer) {
  const std::string alive = tmpFile("alive");
  { std::ofstream(alive) << "ok"; }
  Json probe = {{"exec", {{"command", {"test", "-f", alive}}}},
                {"periodSeconds", 1},
                {"failureThreshold", 2}};
  Json main = shell("trap 'exit 0' TERM; while true; do sleep 0.2; done");
  main["livenessProbe"] = probe;
  Json echo = {{"name", "echo"},
               {"image", "sluice/echo"},
               {"ports", {{{"containerPort", 8080}, {"name", "http"}}}},
               {"livenessProbe",
                {{"httpGet", {{"path", "/healthz"}, {"port", "http"}}}, {"periodSeconds", 1}}}};
  createPod("live", {{"terminationGracePeriodSeconds", 2}, {"containers", {main, echo}}});
  Json pod =
      waitPod("live", [](const Json& p) { return running(p, "main") && running(p, "echo"); });
  std::this_thread::sleep_for(seconds(3));  // several passing probes
  pod = *getPod("live");
  EXPECT_EQ((*containerStatus(pod, "main"))["restartCount"], 0);
  std::filesystem::remove(alive);
  pod = waitPod("live", [](const Json& p) {
    const Json* s = containerStatus(p, "main");
    return s != nullptr && (*s)["restartCount"] == 1;
  });
  EXPECT_EQ((*containerStatus(pod, "main"))["restartCount"], 1) << pod.dump(2);
  EXPECT_EQ((*containerStatus(pod, "main"))["lastState"]["terminated"]["exitCode"], 0)
      << "SIGTERM handled";
  EXPECT_EQ((*containerStatus(pod, "echo"))["restartCount"], 0);
}

// Readiness (exec) flips Ready and ContainersReady both ways without
// restarting anything, and the Endpoints controller follows it: the pod's IP
// moves between the Service's ready and not-ready addresses.
TEST_F(AgentTest, FailingReadinessProbeFlipsReady) {
  controllers::ManagerOptions mo;
  mo.only = {"endpoints"};
  auto manager = controllers::ControllerManager::start(client(), mo);
  ASSERT_TRUE(manager.ok()) << manager.error().message;
  auto svc = client().create(client::resources::kServices, "default",
                             Json{{"apiVersion", "v1"},
                                  {"kind", "Service"},
                                  {"metadata", {{"name", "ready"}}},
                                  {"spec", {{"selector", {{"app", "ready"}}}, {"ports", {{{"port", 80}}}}}}});
  ASSERT_TRUE(svc.ok()) << svc.error().message;
  // The pod's IP in the Service's Endpoints: "ready", "notReady" or "".
  auto endpointsState = [&](const std::string& ip) -> std::string {
    auto ep = client().get(client::resources::kEndpoints, "default", "ready");
    if (!ep.ok() || !ep->contains("subsets")) return "";
    for (const auto& subset : (*ep)["subsets"]) {
      for (const char* kind : {"addresses", "notReadyAddresses"}) {
        if (!subset.contains(kind)) continue;
        for (const auto& a : subset[kind]) {
          if (a.value("ip", "") == ip) return kind == std::string("addresses") ? "ready" : "notReady";
        }
      }
    }
    return "";
  };

  const std::string ready = tmpFile("ready");
  std::filesystem::remove(ready);
  Json main = shell("sleep 1000");
  main["readinessProbe"] = {{"exec", {{"command", {"test", "-f", ready}}}}, {"periodSeconds", 1}};
  createPod("ready", {{"containers", {main}}});
  ASSERT_TRUE(client()
                  .patch(client::resources::kPods, "default", "ready",
                         Json{{"metadata", {{"labels", {{"app", "ready"}}}}}})
                  .ok());
  Json pod = waitPod("ready", [](const Json& p) { return running(p, "main"); });
  std::this_thread::sleep_for(seconds(2));
  pod = *getPod("ready");
  EXPECT_EQ(condition(pod, "Ready"), "False");
  EXPECT_EQ(condition(pod, "ContainersReady"), "False");
  const std::string ip = pod["status"].value("podIP", "");
  ASSERT_FALSE(ip.empty());
  EXPECT_TRUE(sluice::testing::ControlPlane::eventually([&] { return endpointsState(ip) == "notReady"; }))
      << "an unready pod is listed under notReadyAddresses";
  { std::ofstream(ready) << "ok"; }
  pod = waitPod("ready", [](const Json& p) { return condition(p, "Ready") == "True"; });
  EXPECT_EQ(condition(pod, "Ready"), "True");
  EXPECT_EQ((*containerStatus(pod, "main"))["ready"], true);
  EXPECT_TRUE(sluice::testing::ControlPlane::eventually([&] { return endpointsState(ip) == "ready"; }))
      << "a ready pod serves the Service";
  std::filesystem::remove(ready);
  pod = waitPod("ready", [](const Json& p) { return condition(p, "Ready") == "False"; });
  EXPECT_EQ(condition(pod, "Ready"), "False");
  EXPECT_EQ((*containerStatus(pod, "main"))["restartCount"], 0);
  EXPECT_TRUE(sluice::testing::ControlPlane::eventually([&] { return endpointsState(ip) == "notReady"; }))
      << "a failing readiness probe takes the pod out of the Service's ready addresses";
  (*manager)->stop();
}

// The seed's example: init containers run in order and write into an
// emptyDir (`hostname > /data/index.html`); the main container serves it.
TEST_F(AgentTest, InitContainersRunInOrderAndShareEmptyDir) {
  Json init1 = {{"name", "first"},
                {"image", "busybox"},
                {"command", {"sh", "-c", "hostname > /data/index.html; echo first >> /data/order"}},
                {"volumeMounts", {{{"name", "www"}, {"mountPath", "/data"}}}}};
  Json init2 = {{"name", "second"},
                {"image", "busybox"},
                {"command", {"sh", "-c", "test -f /data/index.html && echo second >> /data/order"}},
                {"volumeMounts", {{{"name", "www"}, {"mountPath", "/data"}}}}};
  Json web = {{"name", "web"},
              {"image", "python"},
              {"command", {"python3", "-m", "http.server", "8000", "--directory", "/data"}},
              {"ports", {{{"containerPort", 8000}}}},
              {"readinessProbe", {{"tcpSocket", {{"port", 8000}}}, {"periodSeconds", 1}}},
              {"volumeMounts", {{{"name", "www"}, {"mountPath", "/data"}}}}};
  createPod("seed", {{"initContainers", {init1, init2}},
                     {"containers", {web}},
                     {"volumes", {{{"name", "www"}, {"emptyDir", Json::object()}}}}});
  Json pod = waitPod("seed", [](const Json& p) { return condition(p, "Ready") == "True"; });
  ASSERT_EQ(condition(pod, "Ready"), "True") << pod.dump(2);
  EXPECT_EQ(condition(pod, "Initialized"), "True");
  for (const char* name : {"first", "second"}) {
    const Json* s = containerStatus(pod, name, true);
    ASSERT_NE(s, nullptr) << name;
    EXPECT_EQ((*s)["state"]["terminated"]["exitCode"], 0) << name;
    EXPECT_EQ((*s)["state"]["terminated"]["reason"], "Completed") << name;
  }
  const std::string ip = pod["status"]["podIP"];
  auto index = httpGet(node_.path(), ip, 8000, "/index.html");
  ASSERT_TRUE(index.has_value());
  EXPECT_EQ(*index, "seed\n");
  auto order = httpGet(node_.path(), ip, 8000, "/order");
  ASSERT_TRUE(order.has_value());
  EXPECT_EQ(*order, "first\nsecond\n");
  EXPECT_FALSE(std::filesystem::exists("/data/index.html"))
      << "emptyDir leaked to the host's /data";
}

// restartPolicy Never: a failing container ends the pod Failed with its exit
// code; OnFailure: restarted until it succeeds, then Succeeded.
TEST_F(AgentTest, RestartPolicyNeverAndOnFailure) {
  Json never = shell("echo bye; exit 3");
  createPod("never", {{"restartPolicy", "Never"}, {"containers", {never}}});
  const std::string marker = tmpFile("onfailure");
  std::filesystem::remove(marker);
  createPod("onfailure",
            {{"restartPolicy", "OnFailure"},
             {"containers",
              {shell("if [ -f " + marker + " ]; then exit 0; fi; touch " + marker + "; exit 1")}}});
  Json pod =
      waitPod("never", [](const Json& p) { return p["status"].value("phase", "") == "Failed"; });
  ASSERT_EQ(pod["status"]["phase"], "Failed") << pod.dump(2);
  const Json* s = containerStatus(pod, "main");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ((*s)["state"]["terminated"]["exitCode"], 3);
  EXPECT_EQ((*s)["state"]["terminated"]["reason"], "Error");
  EXPECT_EQ((*s)["restartCount"], 0);
  std::ifstream log(podDir(pod["metadata"]["uid"]) + "/logs/main/0.log");
  std::string line;
  std::getline(log, line);
  EXPECT_EQ(line, "bye");

  pod = waitPod("onfailure",
                [](const Json& p) { return p["status"].value("phase", "") == "Succeeded"; });
  ASSERT_EQ(pod["status"]["phase"], "Succeeded") << pod.dump(2);
  s = containerStatus(pod, "main");
  EXPECT_EQ((*s)["restartCount"], 1);
  EXPECT_EQ((*s)["lastState"]["terminated"]["exitCode"], 1);
  EXPECT_EQ((*s)["state"]["terminated"]["reason"], "Completed");
  std::filesystem::remove(marker);
}

mode_t modeOf(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

// A container's output may hold anything it prints (tokens, customer data):
// its log and the pod's state are the owner's only (issue 18: logs were 0644
// in 0755 directories), while `kubectl logs` still reads them.
TEST_F(AgentTest, PodLogsAndStateArePrivate) {
  createPod("private", {{"restartPolicy", "Never"}, {"containers", {shell("echo secret")}}});
  Json pod = waitPod(
      "private", [](const Json& p) { return p["status"].value("phase", "") == "Succeeded"; });
  ASSERT_EQ(pod["status"]["phase"], "Succeeded") << pod.dump(2);
  const std::string dir = podDir(pod["metadata"]["uid"]);
  EXPECT_EQ(modeOf(data_.path() + "/pods"), 0700u);
  EXPECT_EQ(modeOf(dir), 0700u);
  EXPECT_EQ(modeOf(dir + "/logs"), 0700u);
  EXPECT_EQ(modeOf(dir + "/logs/main"), 0700u);
  EXPECT_EQ(modeOf(dir + "/logs/main/0.log"), 0600u);
  EXPECT_EQ(modeOf(dir + "/state.json"), 0600u);
  std::ifstream log(dir + "/logs/main/0.log");
  std::string line;
  std::getline(log, line);
  EXPECT_EQ(line, "secret");
}

// Deleting a bound pod marks it (deletionTimestamp, grace) and the agent
// stops it: a container that handles SIGTERM goes at once; one that ignores
// it is killed after terminationGracePeriodSeconds.
TEST_F(AgentTest, GracefulTerminationSigtermThenSigkill) {
  createPod("polite",
            {{"containers", {shell("trap 'exit 0' TERM; while true; do sleep 0.1; done")}}});
  createPod("stubborn", {{"terminationGracePeriodSeconds", 3},
                         {"containers", {shell("trap '' TERM; while true; do sleep 0.1; done")}}});
  waitPod("polite", [](const Json& p) { return running(p, "main"); });
  waitPod("stubborn", [](const Json& p) { return running(p, "main"); });

  auto start = Clock::now();
  auto marked = client().remove(client::resources::kPods, "default", "polite");
  ASSERT_TRUE(marked) << marked.error().message;
  EXPECT_TRUE((*marked)["metadata"].contains("deletionTimestamp")) << marked->dump(2);
  EXPECT_EQ((*marked)["metadata"]["deletionGracePeriodSeconds"], 30);
  ASSERT_TRUE(waitGone("polite", seconds(20)));
  EXPECT_LT(Clock::now() - start, seconds(15)) << "SIGTERM was not delivered";

  start = Clock::now();
  ASSERT_TRUE(client().remove(client::resources::kPods, "default", "stubborn"));
  std::this_thread::sleep_for(seconds(1));
  auto still = getPod("stubborn");
  ASSERT_TRUE(still.has_value()) << "removed before the grace period";
  EXPECT_EQ((*still)["metadata"]["deletionGracePeriodSeconds"], 3);
  ASSERT_TRUE(waitGone("stubborn", seconds(30)));
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(2500))
      << "SIGKILL before the grace period";
}

// An image that is neither sluice/echo nor a rootfs, with no command: the
// container waits with ErrImageNotFound and says what to do.
TEST_F(AgentTest, UnknownImageWithoutCommandIsErrImageNotFound) {
  createPod("noimage",
            {{"containers", {{{"name", "app"}, {"image", "registry.example/app:1.0"}}}}});
  Json pod = waitPod("noimage", [](const Json& p) {
    const Json* s = containerStatus(p, "app");
    return s != nullptr && (*s)["state"].contains("waiting") &&
           (*s)["state"]["waiting"].value("reason", "") == "ErrImageNotFound";
  });
  const Json* s = containerStatus(pod, "app");
  ASSERT_NE(s, nullptr) << pod.dump(2);
  EXPECT_EQ((*s)["state"]["waiting"]["reason"], "ErrImageNotFound");
  const std::string msg = (*s)["state"]["waiting"]["message"];
  EXPECT_NE(msg.find("command"), std::string::npos) << msg;
  EXPECT_NE(msg.find("sluice/echo"), std::string::npos) << msg;
  EXPECT_EQ(pod["status"]["phase"], "Pending");
  EXPECT_EQ(condition(pod, "Ready"), "False");
}

// A restarted agent adopts running pods: same process, restartCount 0, still
// serving; it keeps watching them (a kill -9 after adoption is restarted with
// the exit code the shim recorded); a pod deleted while the agent was down is
// cleaned up when it comes back.
TEST_F(AgentTest, RestartedAgentAdoptsRunningPods) {
  createPod(
      "keep",
      {{"containers",
        {{{"name", "echo"}, {"image", "sluice/echo"}, {"ports", {{{"containerPort", 8080}}}}}}}});
  createPod("drop", {{"containers", {shell("sleep 1000")}}});
  Json keep = waitPod("keep", [](const Json& p) { return condition(p, "Ready") == "True"; });
  Json drop = waitPod("drop", [](const Json& p) { return running(p, "main"); });
  const std::string uid = keep["metadata"]["uid"], dropUid = drop["metadata"]["uid"];
  const std::string ip = keep["status"]["podIP"];
  int pid = containerPid(uid, "echo");
  int dropPid = containerPid(dropUid, "main");
  ASSERT_GT(pid, 0);
  ASSERT_GT(dropPid, 0);
  // Ready (no readiness probe) only means the process started: wait until
  // the echo server is listening before taking the agent away.
  ASSERT_TRUE(sluice::testing::ControlPlane::eventually(
      [&] { return httpGet(node_.path(), ip, 8080).has_value(); }))
      << "the echo pod never served";

  stopRuntime();
  EXPECT_EQ(::kill(pid, 0), 0) << "container died with the agent";
  ASSERT_TRUE(client().remove(client::resources::kPods, "default", "drop",
                              Json{{"gracePeriodSeconds", 0}}));
  ASSERT_TRUE(httpGet(node_.path(), ip, 8080).has_value()) << "not serving while the agent is down";
  startRuntime();

  std::this_thread::sleep_for(seconds(2));
  keep = *getPod("keep");
  EXPECT_EQ(containerPid(uid, "echo"), pid);
  EXPECT_EQ((*containerStatus(keep, "echo"))["restartCount"], 0);
  EXPECT_EQ(condition(keep, "Ready"), "True");
  EXPECT_EQ(keep["status"]["podIP"], ip);
  // The adopted pod's veth is announced again (for a proxy that restarted too).
  std::string keepIf;
  {
    std::ifstream in(podDir(uid) + "/state.json");
    keepIf = Json::parse(in, nullptr, false).value("hostInterface", "");
  }
  ASSERT_FALSE(keepIf.empty());
  const std::string events = interfaceEvents();
  size_t announced = 0;
  for (size_t at = events.find("+" + keepIf + ";"); at != std::string::npos;
       at = events.find("+" + keepIf + ";", at + 1)) {
    ++announced;
  }
  EXPECT_EQ(announced, 2u) << events;
  EXPECT_TRUE(sluice::testing::ControlPlane::eventually([&] { return ::kill(dropPid, 0) != 0; },
                                                        seconds(20)))
      << "the deleted pod's container was not killed";

  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  keep = waitPod("keep", [](const Json& p) {
    const Json* s = containerStatus(p, "echo");
    return s != nullptr && (*s)["restartCount"] == 1 && running(p, "echo");
  });
  EXPECT_EQ((*containerStatus(keep, "echo"))["lastState"]["terminated"]["exitCode"], 137)
      << keep.dump(2);
}

}  // namespace
}  // namespace sluice::agent::testing
