#include "control/agent/runtime/pod_runtime.h"
#include "control/agent/runtime/private_files.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <unistd.h>

#include <filesystem>

#include "control/agent/runtime/metrics_reporter.h"
#include "control/agent/runtime/pod_worker.h"
#include "dataplane/log.h"

namespace sluice::agent {
namespace fs = std::filesystem;
namespace {

std::string defaultConfig(const PodRuntimeOptions& o) {
  Json conf = {{"cniVersion", "1.0.0"},
               {"name", "sluice"},
               {"plugins", Json::array({{{"type", "sluice-cni"},
                                         {"ipam",
                                          {{"type", "sluice-ipam"},
                                           {"subnet", o.podCidr},
                                           {"dataDir", o.dataDir + "/ipam"}}}}})}};
  return conf.dump();
}

// The calling thread's namespace's first non-loopback IPv4 address.
std::string firstAddress() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string out;
  for (ifaddrs* i = list; i != nullptr && out.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    auto* a = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
    if ((ntohl(a->sin_addr.s_addr) >> 24) == 127) continue;
    char ip[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
    out = ip;
  }
  ::freeifaddrs(list);
  return out;
}

Result<std::unique_ptr<PodEnv>> makeEnv(client::ApiClient* client,
                                        const PodRuntimeOptions& options) {
  auto env = std::make_unique<PodEnv>();
  env->client = client;
  env->options = options;
  // Logs and pod state live below it (private_files.h).
  if (auto r = makePrivateDirs(options.dataDir + "/pods"); !r) return r.error();
  cni::RuntimeOptions ro;
  ro.pluginDirs = options.cniPluginDirs;
  ro.cacheDir = options.dataDir + "/cni-cache";
  ro.pluginTimeoutMs = 60000;
  if (!options.nodeNetnsPath.empty()) {
    auto ns = cni::Netns::open(options.nodeNetnsPath);
    if (!ns) return Error{ns.error().code, "node network namespace: " + ns.error().message};
    env->nodeNetns.emplace(std::move(*ns));
    ro.execNetnsFd = env->nodeNetns->fd();
  }
  auto rt = cni::CniRuntime::create(ro);
  if (!rt) return rt.error();
  env->cni.emplace(std::move(*rt));
  auto list = cni::NetworkConfigList::parse(options.cniConfig.empty() ? defaultConfig(options)
                                                                      : options.cniConfig);
  if (!list) return Error{ErrorCode::kInvalidArgument, "CNI config: " + list.error().msg};
  env->network = std::move(*list);
  auto cgroups = CgroupManager::detect(options.cgroupParent);
  if (cgroups) {
    env->cgroups.emplace(std::move(*cgroups));
  } else {
    env->cgroupError = cgroups.error().message;
  }
  env->hostIp = options.hostIp;
  if (env->hostIp.empty()) {
    if (env->nodeNetns) {
      auto ip = env->nodeNetns->run([]() -> Result<std::string> { return firstAddress(); });
      if (ip) env->hostIp = *ip;
    } else {
      env->hostIp = firstAddress();
    }
  }
  return env;
}

std::vector<PersistedPod> loadAll(const std::string& dataDir) {
  std::vector<PersistedPod> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dataDir + "/pods", ec)) {
    auto p = PersistedPod::load(entry.path().string() + "/state.json");
    if (p) out.push_back(std::move(*p));
  }
  return out;
}

}  // namespace

PodRuntime::PodRuntime(client::ApiClient& client, PodRuntimeOptions options) : client_(client) {
  (void)options;
}

PodRuntime::~PodRuntime() { stop(); }

const std::string& PodRuntime::hostIp() const { return env_->hostIp; }

Result<std::unique_ptr<PodRuntime>> PodRuntime::start(client::ApiClient& client,
                                                      PodRuntimeOptions options) {
  if (options.nodeName.empty())
    return Error{ErrorCode::kInvalidArgument, "pod runtime: node name required"};
  auto env = makeEnv(&client, options);
  if (!env) return env.error();
  std::unique_ptr<PodRuntime> rt(new PodRuntime(client, options));
  rt->env_ = std::move(*env);
  for (PersistedPod& p : loadAll(options.dataDir)) {
    std::string uid = p.uid;
    rt->restored_[uid] = std::make_unique<PersistedPod>(std::move(p));
  }
  client::ListOptions lo;
  lo.fieldSelector = "spec.nodeName=" + options.nodeName;
  rt->informer_ = std::make_unique<client::Informer>(client, client::resources::kPods, "", lo);
  PodRuntime* self = rt.get();
  rt->informer_->addHandlers(
      {[self](const client::ObjectPtr& p) { self->onPod(p); },
       [self](const client::ObjectPtr&, const client::ObjectPtr& p) { self->onPod(p); },
       [self](const client::ObjectPtr& p) { self->onPodDeleted(p); }});
  rt->informer_->start();
  if (!rt->informer_->waitForSync(std::chrono::seconds(60))) {
    return Error{ErrorCode::kUnavailable,
                 "pod runtime: pods of node " + options.nodeName + " did not list in 60s"};
  }
  // Recorded pods the API no longer has were deleted while we were away.
  std::vector<std::unique_ptr<PersistedPod>> orphans;
  {
    std::lock_guard<std::mutex> lock(rt->mu_);
    for (auto& [uid, p] : rt->restored_) orphans.push_back(std::move(p));
    rt->restored_.clear();
  }
  for (auto& p : orphans) {
    log::info(0, "agent", "pod is gone from the API: removing its containers",
              {{"pod", p->ns + "/" + p->name}, {"uid", p->uid}});
    cleanupPod(*rt->env_, *p);
  }
  rt->housekeeper_ = std::thread([self] { self->housekeeping(); });
  if (!rt->env_->cgroups) {
    log::warning("agent", "no cgroups: containers with resource limits will not start, and pods report no metrics",
                 {{"err", rt->env_->cgroupError}});
  }
  if (options.metricsResolution.count() > 0) {
    MetricsReporterOptions mo;
    mo.nodeName = options.nodeName;
    mo.resolution = options.metricsResolution;
    const CgroupManager* cg = rt->env_->cgroups ? &*rt->env_->cgroups : nullptr;
    rt->metrics_ = std::make_unique<MetricsReporter>(client, cg, mo, [self] {
      std::vector<PodWorker::Snapshot> out;
      std::lock_guard<std::mutex> lock(self->mu_);
      for (const auto& [uid, w] : self->workers_) out.push_back(w->snapshot());
      return out;
    });
  }
  return rt;
}

void PodRuntime::onPod(const client::ObjectPtr& pod) {
  const std::string uid = client::uidOf(*pod);
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_.load()) return;
  auto it = workers_.find(uid);
  if (it != workers_.end()) {
    it->second->update(pod);
    return;
  }
  std::unique_ptr<PersistedPod> restored;
  if (auto r = restored_.find(uid); r != restored_.end()) {
    restored = std::move(r->second);
    restored_.erase(r);
  }
  workers_[uid] = std::make_unique<PodWorker>(*env_, pod, std::move(restored));
}

void PodRuntime::onPodDeleted(const client::ObjectPtr& pod) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = workers_.find(client::uidOf(*pod));
  if (it != workers_.end()) it->second->gone();
}

void PodRuntime::housekeeping() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_.load()) {
    cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return stop_.load(); });
    std::vector<std::unique_ptr<PodWorker>> done;
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (it->second->finished()) {
        done.push_back(std::move(it->second));
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
    lock.unlock();
    done.clear();  // joins their threads outside the lock
    lock.lock();
  }
}

void PodRuntime::stop() {
  if (stop_.exchange(true)) return;
  if (metrics_) metrics_->stop();
  cv_.notify_all();
  if (informer_) informer_->stop();
  if (housekeeper_.joinable()) housekeeper_.join();
  std::map<std::string, std::unique_ptr<PodWorker>> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    workers.swap(workers_);
  }
  workers.clear();
}

void PodRuntime::teardownAll(const PodRuntimeOptions& options) {
  auto env = makeEnv(nullptr, options);
  if (!env) {
    log::error("agent", "teardown failed", {{"err", env.error().message}});
    return;
  }
  for (const PersistedPod& p : loadAll(options.dataDir)) cleanupPod(**env, p);
  // The parent goes too once no pod uses it (another agent's pods keep it).
  if ((*env)->cgroups) {
    for (const std::string& dir : (*env)->cgroups->parentDirs().unique()) {
      (void)::rmdir(dir.c_str());
    }
  }
}

}  // namespace sluice::agent
