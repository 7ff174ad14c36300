#include "control/agent/runtime/pod_worker.h"
#include "control/agent/runtime/private_files.h"

#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "control/agent/runtime/runtime_metrics.h"
#include "dataplane/log.h"

namespace sluice::agent {
namespace fs = std::filesystem;
namespace {

constexpr int64_t kDefaultGraceSeconds = 30;
// How long a dead container may lack its shim's exit record before it is
// reported as lost (the shim writes it microseconds after the exit).
constexpr int64_t kExitRecordWaitMs = 3000;
constexpr std::string_view kEchoImage = "sluice/echo";

// Pod problems repeat on every sync of a failing pod (a CNI that keeps
// failing, an API server that is down): one line per pod and kind of
// problem per interval.
void logLine(const std::string& pod, std::string_view what, const std::string& err) {
  log::warning(log::Limit{"pod/" + pod + "/" + std::string(what)}, "agent", what, {{"pod", pod}, {"err", err}});
}

int64_t graceSeconds(const Json& pod) {
  const Json& spec = pod["spec"];
  if (spec.contains("terminationGracePeriodSeconds") &&
      spec["terminationGracePeriodSeconds"].is_number()) {
    return spec["terminationGracePeriodSeconds"].get<int64_t>();
  }
  return kDefaultGraceSeconds;
}

std::string restartPolicy(const Json& pod) { return pod["spec"].value("restartPolicy", "Always"); }

// "sluice/echo:v2" -> ("sluice/echo", "v2"); a registry prefix is kept.
std::pair<std::string, std::string> splitImage(const std::string& image) {
  size_t slash = image.rfind('/');
  size_t colon = image.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    return {image.substr(0, colon), image.substr(colon + 1)};
  }
  return {image, "latest"};
}

bool isEchoImage(const std::string& repo) {
  return repo == kEchoImage || repo == "docker.io/" + std::string(kEchoImage);
}

std::string fieldRef(const Json& pod, const std::string& path, const std::string& podIp,
                     const std::string& hostIp) {
  const Json& m = pod["metadata"];
  if (path == "metadata.name") return m.value("name", "");
  if (path == "metadata.namespace") return m.value("namespace", "");
  if (path == "metadata.uid") return m.value("uid", "");
  if (path == "spec.nodeName") return pod["spec"].value("nodeName", "");
  if (path == "spec.serviceAccountName") return pod["spec"].value("serviceAccountName", "");
  if (path == "status.podIP") return podIp;
  if (path == "status.hostIP") return hostIp;
  return "";
}

std::string timeText(int64_t ms) {
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// In the calling thread's network namespace (a fresh one has lo down).
Result<void> bringLoopbackUp() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{ErrorCode::kInternal, "socket for lo"};
  struct ifreq ifr {};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "lo");
  bool ok = ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  ok = ok && ::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  ::close(fd);
  if (!ok) return Error{ErrorCode::kInternal, "set lo up"};
  return okResult();
}

}  // namespace

cni::RuntimeConfig PodEnv::attachment(const std::string& uid, const std::string& ns,
                                      const std::string& name) const {
  cni::RuntimeConfig rc;
  rc.containerId = uid;
  rc.netns = cni::Netns::pathOf(netnsName(uid));
  rc.ifName = "eth0";
  rc.args = {{"IgnoreUnknown", "1"},
             {"K8S_POD_NAMESPACE", ns},
             {"K8S_POD_NAME", name},
             {"K8S_POD_INFRA_CONTAINER_ID", uid},
             {"K8S_POD_UID", uid}};
  return rc;
}

PodWorker::PodWorker(PodEnv& env, client::ObjectPtr pod, std::unique_ptr<PersistedPod> restored)
    : env_(env), pod_(std::move(pod)) {
  if (restored) {
    state_ = std::move(*restored);
  } else {
    state_.uid = client::uidOf(*pod_);
    state_.ns = client::namespaceOf(*pod_);
    state_.name = client::nameOf(*pod_);
    state_.startTimeMs = nowUnixMs();
  }
  thread_ = std::thread([this] { run(); });
}

PodWorker::~PodWorker() {
  stop_.store(true);
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PodWorker::update(client::ObjectPtr pod) {
  std::lock_guard<std::mutex> lock(mu_);
  pod_ = std::move(pod);
  wake_ = true;
  cv_.notify_all();
}

void PodWorker::gone() {
  std::lock_guard<std::mutex> lock(mu_);
  gone_ = true;
  wake_ = true;
  cv_.notify_all();
}

void PodWorker::run() {
  // An adopted pod's veth is announced again: the proxy restarted with us.
  if (state_.networkReady && !state_.hostInterface.empty() && env_.options.podInterfaceHook) {
    env_.options.podInterfaceHook(state_.hostInterface, true);
  }
  while (!stop_.load() && !finished_.load()) {
    sync();
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, env_.options.syncPeriod, [&] { return stop_.load() || wake_; });
    wake_ = false;
  }
}

void PodWorker::sync() {
  Json pod;
  bool gone = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pod = *pod_;
    gone = gone_;
  }
  int64_t now = nowUnixMs();
  ensureRecords(pod);
  if (gone || pod["metadata"].contains("deletionTimestamp")) {
    terminate(pod, gone, now);
    takeSnapshot(pod);  // terminating: no longer reported
    return;
  }
  if (!state_.networkReady && now >= networkRetryAtMs_) {
    if (setUpNetwork(pod)) {
      runtime_metrics::podStarted();
    } else {
      runtime_metrics::podStartFailed();
      networkRetryAtMs_ = now + 2000;
    }
  }
  if (state_.networkReady) {
    if (!state_.initDone && !state_.initFailed) reconcileInit(pod, now);
    if (state_.initDone) {
      for (ContainerRecord& rec : state_.containers) {
        if (!rec.init) reconcileMain(pod, rec, now);
      }
    }
    for (ContainerRecord& rec : state_.containers) {
      if (!rec.init) probe(pod, rec, now);
    }
  }
  // On disk before the API hears of it: what a status reports (a running
  // container's pid) is then always recorded for adoption.
  persist();
  publish(pod);
  takeSnapshot(pod);
}

void PodWorker::ensureRecords(const Json& pod) {
  if (!state_.containers.empty()) return;
  for (const char* key : {"initContainers", "containers"}) {
    if (!pod["spec"].contains(key)) continue;
    for (const Json& c : pod["spec"][key]) {
      ContainerRecord rec;
      rec.name = c.value("name", "");
      rec.init = std::string(key) == "initContainers";
      state_.containers.push_back(rec);
    }
  }
  if (std::none_of(state_.containers.begin(), state_.containers.end(),
                   [](auto& r) { return r.init; })) {
    state_.initDone = true;
  }
}

const Json* PodWorker::containerSpec(const Json& pod, const ContainerRecord& rec) const {
  const char* key = rec.init ? "initContainers" : "containers";
  if (!pod["spec"].contains(key)) return nullptr;
  for (const Json& c : pod["spec"][key]) {
    if (c.value("name", "") == rec.name) return &c;
  }
  return nullptr;
}

bool PodWorker::setUpNetwork(const Json& pod) {
  const std::string name = PodEnv::netnsName(state_.uid);
  auto ns = cni::Netns::open(cni::Netns::pathOf(name));
  if (!ns) ns = cni::Netns::create(name);
  if (!ns) {
    networkError_ = "create network namespace: " + ns.error().message;
    runtime_metrics::operationFailed("create_netns");
    return false;
  }
  // Loopback up, as the reference `loopback` plugin would.
  (void)ns->run([]() -> Result<void> { return bringLoopbackUp(); });
  cni::RuntimeConfig rc = env_.attachment(state_.uid, state_.ns, state_.name);
  std::lock_guard<std::mutex> lock(env_.cniMu);
  auto added = env_.cni->add(env_.network, rc);
  if (!added || added->ips.empty()) {
    networkError_ = "CNI ADD: " + (added ? std::string("no IP in result") : added.error().msg);
    runtime_metrics::operationFailed("cni_add");
    (void)env_.cni->del(env_.network, rc);
    logLine(state_.ns + "/" + state_.name, "pod network setup failed", networkError_);
    return false;
  }
  state_.netnsPath = rc.netns;
  state_.podIp = added->ips[0].address.address().toString();
  for (const cni::Interface& i : added->interfaces) {
    if (i.sandbox.empty() && state_.hostInterface.empty()) state_.hostInterface = i.name;
  }
  state_.networkReady = true;
  if (env_.options.podInterfaceHook && !state_.hostInterface.empty()) {
    env_.options.podInterfaceHook(state_.hostInterface, true);
  }
  networkError_.clear();
  (void)pod;
  return true;
}

bool PodWorker::start(const Json& pod, ContainerRecord& rec) {
  Live& live = live_[rec.name];
  const Json* spec = containerSpec(pod, rec);
  if (spec == nullptr) return false;
  const std::string image = spec->value("image", "");
  auto [repo, tag] = splitImage(image);
  std::vector<std::string> command = spec->value("command", std::vector<std::string>{});
  std::vector<std::string> args = spec->value("args", std::vector<std::string>{});
  std::string rootfs;
  for (const std::string& dir :
       {env_.options.dataDir + "/images/" + image, env_.options.dataDir + "/images/" + repo}) {
    struct stat st {};
    if (!image.empty() && ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      rootfs = dir;
      break;
    }
  }
  std::vector<std::string> argv = command;
  if (command.empty() && isEchoImage(repo)) {
    argv = env_.options.echoCommand;
    if (spec->contains("ports")) {
      for (const Json& p : (*spec)["ports"]) {
        if (p.value("protocol", "TCP") == "SCTP") continue;
        std::string port = std::to_string(p.value("containerPort", 0));
        if (std::find(argv.begin(), argv.end(), port) == argv.end()) {
          argv.push_back("--port");
          argv.push_back(port);
        }
      }
    }
    argv.push_back("--tag");
    argv.push_back(tag);
    rootfs.clear();
  } else if (command.empty()) {
    live.waitingReason = "ErrImageNotFound";
    live.waitingMessage =
        rootfs.empty()
            ? "image \"" + image +
                  "\" not found: sluice runs no container engine and pulls no images. Give the "
                  "container a `command` (it runs from the host filesystem), use image "
                  "sluice/echo[:tag] for the "
                  "built-in echo workload, or unpack a root filesystem at " +
                  env_.options.dataDir + "/images/" + repo
            : "image \"" + image + "\" at " + rootfs +
                  " has no default command: set the container's `command`";
    return false;
  } else {
    argv.insert(argv.end(), args.begin(), args.end());
  }
  if (command.empty() && isEchoImage(repo)) argv.insert(argv.end(), args.begin(), args.end());

  ContainerLaunch l;
  l.hostname = pod["spec"].value("hostname", state_.name).substr(0, 63);
  l.netnsPath = state_.netnsPath;
  l.rootfs = rootfs;
  l.argv = argv;
  l.workingDir = spec->value("workingDir", "");
  l.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOSTNAME=" + l.hostname};
  if (spec->contains("env")) {
    for (const Json& e : (*spec)["env"]) {
      std::string value = e.value("value", "");
      if (e.contains("valueFrom") && e["valueFrom"].contains("fieldRef")) {
        value = fieldRef(pod, e["valueFrom"]["fieldRef"].value("fieldPath", ""), state_.podIp,
                         env_.hostIp);
      }
      l.env.push_back(e.value("name", "") + "=" + value);
    }
  }
  const std::string dir = env_.podDir(state_.uid);
  if (spec->contains("volumeMounts")) {
    for (const Json& vm : (*spec)["volumeMounts"]) {
      const std::string vname = vm.value("name", "");
      const Json* vol = nullptr;
      if (pod["spec"].contains("volumes")) {
        for (const Json& v : pod["spec"]["volumes"]) {
          if (v.value("name", "") == vname) vol = &v;
        }
      }
      VolumeMount m;
      m.target = vm.value("mountPath", "");
      m.readOnly = vm.value("readOnly", false);
      if (vol != nullptr && vol->contains("hostPath")) {
        m.source = (*vol)["hostPath"].value("path", "");
      } else if (vol != nullptr && vol->contains("emptyDir")) {
        m.source = dir + "/volumes/" + vname;
        std::error_code ec;
        fs::create_directories(m.source, ec);
      } else {
        live.waitingReason = "CreateContainerConfigError";
        live.waitingMessage =
            "volume \"" + vname + "\": only emptyDir and hostPath volumes are supported";
        return false;
      }
      l.mounts.push_back(m);
    }
  }
  std::error_code ec;
  const std::string cdir = dir + "/containers/" + rec.name;
  (void)makePrivateDirs(dir);
  fs::create_directories(cdir + "/root", ec);
  (void)makePrivateDirs(dir + "/logs");
  (void)makePrivateDirs(dir + "/logs/" + rec.name);
  const int instance = rec.restartCount;
  l.rootDir = cdir + "/root";
  l.logPath = dir + "/logs/" + rec.name + "/" + std::to_string(instance) + ".log";
  l.exitPath = cdir + "/" + std::to_string(instance) + ".exit";
  fs::remove(l.exitPath, ec);

  if (auto cg = prepareCgroup(*spec, rec, l); !cg) {
    live.waitingReason = cg.error().code == ErrorCode::kInvalidArgument
                             ? "CreateContainerConfigError"
                             : "CreateContainerError";
    live.waitingMessage = cg.error().message;
    return false;
  }

  const int64_t now = nowUnixMs();
  rec.started = true;
  rec.startedAtMs = now;
  rec.ready = false;
  live.liveness.reset();
  live.readiness.reset();
  live.stopDeadlineMs = 0;
  live.exitWaitSinceMs = 0;
  live.waitingReason.clear();
  live.waitingMessage.clear();
  if (!commandExists(rootfs, argv[0])) {
    runtime_metrics::containerStartFailed(rec.init, "StartError");
    rec.running = false;
    rec.terminated = TerminatedInfo{
        128, 0,  "StartError", "exec: \"" + argv[0] + "\": executable file not found in $PATH",
        now, now};
    return true;
  }
  auto launched = launchContainer(l);
  if (!launched) {
    runtime_metrics::containerStartFailed(rec.init, "StartError");
    rec.running = false;
    rec.terminated = TerminatedInfo{128, 0, "StartError", launched.error().message, now, now};
    return true;
  }
  rec.proc = *launched;
  runtime_metrics::containerStarted(rec.init);
  rec.running = true;
  rec.terminated.reset();
  return true;
}

bool PodWorker::checkRunning(ContainerRecord& rec, int64_t nowMs) {
  if (!rec.running) return false;
  Live& live = live_[rec.name];
  if (processAlive(rec.proc)) {
    if (live.stopDeadlineMs != 0 && nowMs >= live.stopDeadlineMs) ::kill(rec.proc.pid, SIGKILL);
    return true;
  }
  const std::string exitPath = env_.podDir(state_.uid) + "/containers/" + rec.name + "/" +
                               std::to_string(rec.restartCount) + ".exit";
  auto record = readExitRecord(exitPath);
  if (!record) {
    if (live.exitWaitSinceMs == 0) live.exitWaitSinceMs = nowMs;
    if (nowMs - live.exitWaitSinceMs < kExitRecordWaitMs) return true;
  }
  TerminatedInfo t;
  t.startedAtMs = rec.startedAtMs;
  if (record) {
    t.exitCode = record->exitCode;
    t.signal = record->signal;
    t.finishedAtMs = record->finishedAtMs;
    t.reason = t.exitCode == 0 ? "Completed" : "Error";
    // The kernel's OOM killer ended it (the counter of its own cgroup rose
    // while it ran): the kubelet's "OOMKilled", exit code 137 (SIGKILL).
    if (env_.cgroups && !state_.cgroup.empty() && t.exitCode != 0) {
      auto u = env_.cgroups->usage(state_.cgroup.child(rec.name));
      if (u && u->oomKills > rec.oomKillsAtStart) t.reason = "OOMKilled";
    }
  } else {
    t.exitCode = 137;
    t.finishedAtMs = nowMs;
    t.reason = "ContainerStatusUnknown";
    t.message = "The container could not be located when the pod was terminated";
  }
  rec.terminated = t;
  rec.running = false;
  rec.ready = false;
  live.stopDeadlineMs = 0;
  live.liveness.reset();
  live.readiness.reset();
  return false;
}

bool PodWorker::restartIfDue(const Json& pod, ContainerRecord& rec, bool wantRestart,
                             int64_t nowMs) {
  if (!wantRestart) return false;
  Live& live = live_[rec.name];
  if (live.backoffUntilMs == 0) {
    int64_t delay = 0;
    if (rec.restartCount > 0) {
      int shift = std::min(rec.restartCount - 1, 20);
      delay = std::min<int64_t>(env_.options.backoffBase.count() << shift,
                                env_.options.backoffMax.count());
    }
    live.backoffUntilMs = (rec.terminated ? rec.terminated->finishedAtMs : nowMs) + delay;
  }
  if (nowMs < live.backoffUntilMs) {
    live.waitingReason = "CrashLoopBackOff";
    int64_t secs =
        (live.backoffUntilMs - (rec.terminated ? rec.terminated->finishedAtMs : nowMs) + 999) /
        1000;
    live.waitingMessage = "back-off " + std::to_string(secs) +
                          "s restarting failed container=" + rec.name + " pod=" + state_.name +
                          "_" + state_.ns + "(" + state_.uid + ")";
    return true;
  }
  live.backoffUntilMs = 0;
  rec.last = rec.terminated;
  rec.terminated.reset();
  rec.restartCount++;
  start(pod, rec);
  return true;
}

void PodWorker::reconcileMain(const Json& pod, ContainerRecord& rec, int64_t nowMs) {
  if (checkRunning(rec, nowMs)) return;
  if (!rec.started) {
    start(pod, rec);
    return;
  }
  if (!rec.terminated) return;
  const std::string policy = restartPolicy(pod);
  bool want = policy == "Always" || (policy == "OnFailure" && rec.terminated->exitCode != 0);
  restartIfDue(pod, rec, want, nowMs);
}

void PodWorker::reconcileInit(const Json& pod, int64_t nowMs) {
  for (ContainerRecord& rec : state_.containers) {
    if (!rec.init) continue;
    if (checkRunning(rec, nowMs)) return;
    if (!rec.started) {
      start(pod, rec);
      return;
    }
    if (!rec.terminated) return;  // waiting to start
    if (rec.terminated->exitCode == 0) continue;
    if (restartPolicy(pod) == "Never") {
      state_.initFailed = true;
      return;
    }
    restartIfDue(pod, rec, true, nowMs);
    return;
  }
  state_.initDone = true;
}

void PodWorker::requestStop(ContainerRecord& rec, int64_t graceMs, int64_t nowMs) {
  Live& live = live_[rec.name];
  if (!rec.running || live.stopDeadlineMs != 0) return;
  ::kill(rec.proc.pid, graceMs > 0 ? SIGTERM : SIGKILL);
  live.stopDeadlineMs = nowMs + std::max<int64_t>(graceMs, 1);
}

void PodWorker::probe(const Json& pod, ContainerRecord& rec, int64_t nowMs) {
  Live& live = live_[rec.name];
  const Json* spec = containerSpec(pod, rec);
  if (!rec.running || spec == nullptr || live.stopDeadlineMs != 0) {
    if (!rec.running) rec.ready = false;
    return;
  }
  ProbeTarget target{state_.netnsPath, state_.podIp, rec.proc.pid, spec};
  if (spec->contains("livenessProbe")) {
    if (!live.liveness) live.liveness.emplace((*spec)["livenessProbe"], true);
    if (live.liveness->due(nowMs, rec.startedAtMs)) {
      ProbeOutcome o = runProbe(live.liveness->spec(), target);
      runtime_metrics::probe("Liveness", o.success);
      if (!live.liveness->record(o.success, nowMs)) {
        log::info(0, "agent", "container failed its liveness probe, will be restarted",
                  {{"pod", state_.ns + "/" + state_.name}, {"container", rec.name}, {"err", o.message}});
        requestStop(rec, graceSeconds(pod) * 1000, nowMs);
        rec.ready = false;
        return;
      }
    }
  }
  if (spec->contains("readinessProbe")) {
    if (!live.readiness) live.readiness.emplace((*spec)["readinessProbe"], rec.ready);
    if (live.readiness->due(nowMs, rec.startedAtMs)) {
      const bool ok = runProbe(live.readiness->spec(), target).success;
      runtime_metrics::probe("Readiness", ok);
      live.readiness->record(ok, nowMs);
    }
    rec.ready = live.readiness->healthy();
  } else {
    rec.ready = true;
  }
}

void PodWorker::terminate(const Json& pod, bool gone, int64_t nowMs) {
  int64_t grace = graceSeconds(pod);
  const Json& m = pod["metadata"];
  if (m.contains("deletionGracePeriodSeconds") && m["deletionGracePeriodSeconds"].is_number()) {
    grace = m["deletionGracePeriodSeconds"].get<int64_t>();
  }
  if (gone) grace = 0;  // force-deleted (or shortened to 0) while terminating
  if (!terminating_) {
    terminating_ = true;
    killDeadlineMs_ = nowMs + grace * 1000;
    for (ContainerRecord& rec : state_.containers) {
      if (rec.running && processAlive(rec.proc))
        ::kill(rec.proc.pid, grace > 0 ? SIGTERM : SIGKILL);
    }
  }
  // A shorter grace period given later (kubectl delete --grace-period=N,
  // --force) moves the SIGKILL closer; a longer one never extends it.
  killDeadlineMs_ = std::min(killDeadlineMs_, nowMs + grace * 1000);
  bool anyRunning = false;
  for (ContainerRecord& rec : state_.containers) {
    if (!rec.running) continue;
    if (processAlive(rec.proc)) {
      if (nowMs >= killDeadlineMs_) ::kill(rec.proc.pid, SIGKILL);
      anyRunning = true;
    } else if (checkRunning(rec, nowMs)) {
      anyRunning = true;  // waiting for the exit record
    }
  }
  if (anyRunning) return;
  cleanupPod(env_, state_);
  if (!gone) {
    Json opts = {{"gracePeriodSeconds", 0}, {"preconditions", {{"uid", state_.uid}}}};
    auto r = env_.client->remove(client::resources::kPods, state_.ns, state_.name, opts);
    if (!r && r.error().code != ErrorCode::kNotFound && r.error().code != ErrorCode::kAborted) {
      logLine(state_.ns + "/" + state_.name, "deleting the pod failed", r.error().message);
      return;  // retried on the next sync; cleanupPod is idempotent
    }
  }
  finished_.store(true);
}

void cleanupPod(PodEnv& env, const PersistedPod& pod) {
  for (const ContainerRecord& rec : pod.containers) {
    if (rec.running && processAlive(rec.proc)) ::kill(rec.proc.pid, SIGKILL);
  }
  for (int i = 0; i < 100; ++i) {
    bool alive =
        std::any_of(pod.containers.begin(), pod.containers.end(),
                    [](const ContainerRecord& r) { return r.running && processAlive(r.proc); });
    if (!alive) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (env.options.podInterfaceHook && !pod.hostInterface.empty()) {
    env.options.podInterfaceHook(pod.hostInterface, false);
  }
  {
    std::lock_guard<std::mutex> lock(env.cniMu);
    auto r = env.cni->del(env.network, env.attachment(pod.uid, pod.ns, pod.name));
    if (!r) {
      runtime_metrics::operationFailed("cni_del");
      logLine(pod.ns + "/" + pod.name, "CNI DEL failed", r.error().msg);
    }
  }
  (void)cni::Netns::remove(PodEnv::netnsName(pod.uid));
  if (!pod.cgroup.empty()) {
    auto r = CgroupManager::remove(pod.cgroup);
    if (!r) logLine(pod.ns + "/" + pod.name, "removing the pod cgroup failed", r.error().message);
  }
  std::error_code ec;
  fs::remove_all(env.podDir(pod.uid), ec);
}

void PodWorker::persist() {
  std::string text = state_.toJson().dump();
  if (text == lastPersisted_) return;
  const std::string dir = env_.podDir(state_.uid);
  if (!makePrivateDirs(dir)) return;
  if (writePrivateFile(dir + "/state.json", text)) lastPersisted_ = text;
}

void PodWorker::publish(const Json& pod) {
  Json status = buildStatus(pod, nowUnixMs());
  std::string text = status.dump();
  if (text == lastPublished_) return;
  auto r = env_.client->patch(client::resources::kPods, state_.ns, state_.name,
                              Json{{"status", status}}, "application/merge-patch+json", "status");
  if (r) {
    lastPublished_ = text;
  } else if (r.error().code != ErrorCode::kNotFound) {
    logLine(state_.ns + "/" + state_.name, "status update failed", r.error().message);
  }
}

std::string PodWorker::phase(const Json& pod) const {
  if (state_.initFailed) return "Failed";
  if (!state_.initDone) return "Pending";
  const std::string policy = restartPolicy(pod);
  bool allDone = true, anyFailed = false, any = false;
  for (const ContainerRecord& rec : state_.containers) {
    if (rec.init) continue;
    any = true;
    if (!rec.started) return "Pending";
    if (rec.running || !rec.terminated) {
      allDone = false;
      continue;
    }
    bool restarts = policy == "Always" || (policy == "OnFailure" && rec.terminated->exitCode != 0);
    if (restarts) allDone = false;
    if (rec.terminated->exitCode != 0) anyFailed = true;
  }
  if (any && allDone) return anyFailed ? "Failed" : "Succeeded";
  return "Running";
}

Json PodWorker::containerStatus(const Json& pod, const ContainerRecord& rec) const {
  const Json* spec = containerSpec(pod, rec);
  Json s = {{"name", rec.name},
            {"image", spec != nullptr ? spec->value("image", "") : ""},
            {"imageID", ""},
            {"ready", rec.running && rec.ready},
            {"restartCount", rec.restartCount},
            {"started", rec.running}};
  const std::string containerId =
      "sluice://" + state_.uid + "/" + rec.name + "/" + std::to_string(rec.restartCount);
  if (rec.started) s["containerID"] = containerId;
  auto terminated = [&](const TerminatedInfo& t, const std::string& id) {
    Json j = {{"exitCode", t.exitCode},
              {"reason", t.reason},
              {"startedAt", timeText(t.startedAtMs)},
              {"finishedAt", timeText(t.finishedAtMs)},
              {"containerID", id}};
    if (t.signal != 0) j["signal"] = t.signal;
    if (!t.message.empty()) j["message"] = t.message;
    return Json{{"terminated", j}};
  };
  auto it = live_.find(rec.name);
  const std::string reason = it != live_.end() ? it->second.waitingReason : "";
  if (rec.running) {
    s["state"] = {{"running", {{"startedAt", timeText(rec.startedAtMs)}}}};
  } else if (!reason.empty()) {
    s["state"] = {{"waiting", {{"reason", reason}, {"message", it->second.waitingMessage}}}};
  } else if (rec.terminated) {
    s["state"] = terminated(*rec.terminated, containerId);
  } else {
    bool initDone = state_.initDone || rec.init;
    s["state"] = {{"waiting", {{"reason", initDone ? "ContainerCreating" : "PodInitializing"}}}};
  }
  if (rec.last) {
    s["lastState"] = terminated(*rec.last, "sluice://" + state_.uid + "/" + rec.name + "/" +
                                               std::to_string(rec.restartCount - 1));
  } else {
    s["lastState"] = Json::object();
  }
  return s;
}

Json PodWorker::buildStatus(const Json& pod, int64_t nowMs) {
  const std::string ph = phase(pod);
  bool terminal = ph == "Succeeded" || ph == "Failed";
  bool allReady = !terminal;
  Json init = Json::array(), main = Json::array();
  for (const ContainerRecord& rec : state_.containers) {
    (rec.init ? init : main).push_back(containerStatus(pod, rec));
    if (!rec.init && !(rec.running && rec.ready)) allReady = false;
  }
  std::vector<std::pair<std::string, bool>> conds = {{"PodScheduled", true},
                                                     {"Initialized", state_.initDone},
                                                     {"ContainersReady", allReady},
                                                     {"Ready", allReady}};
  Json conditions = Json::array();
  for (const auto& [type, ok] : conds) {
    std::string st = ok ? "True" : "False";
    auto& seen = conditionTimes_[type];
    if (seen.first != st) seen = {st, timeText(nowMs)};
    Json c = {{"type", type}, {"status", st}, {"lastTransitionTime", seen.second}};
    if (!ok && (type == "Ready" || type == "ContainersReady")) {
      std::string names;
      for (const ContainerRecord& rec : state_.containers) {
        if (!rec.init && !(rec.running && rec.ready))
          names += (names.empty() ? "" : " ") + rec.name;
      }
      c["reason"] = terminal ? "PodCompleted" : "ContainersNotReady";
      if (!terminal) c["message"] = "containers with unready status: [" + names + "]";
    }
    if (!ok && type == "Initialized") {
      c["reason"] = "ContainersNotInitialized";
    }
    conditions.push_back(c);
  }
  Json status = {{"phase", ph},
                 {"conditions", conditions},
                 {"hostIP", env_.hostIp},
                 {"hostIPs", Json::array({{{"ip", env_.hostIp}}})},
                 {"startTime", timeText(state_.startTimeMs)},
                 {"containerStatuses", main},
                 {"qosClass", "BestEffort"}};
  if (!init.empty()) status["initContainerStatuses"] = init;
  if (!state_.podIp.empty()) {
    status["podIP"] = state_.podIp;
    status["podIPs"] = Json::array({{{"ip", state_.podIp}}});
  }
  status["message"] = networkError_.empty() ? Json() : Json("pod network: " + networkError_);
  return status;
}

}  // namespace sluice::agent
