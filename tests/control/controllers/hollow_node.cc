#include "tests/control/controllers/hollow_node.h"

#include <ctime>
#include <iostream>

namespace sluice::testing {
namespace {

using client::Json;

std::string nodeIp(int i) {
  return "172." + std::to_string(16 + i / 256) + "." + std::to_string(i % 256) + ".1";
}

std::string podIp(int node, int octet) {
  return "10." + std::to_string(200 + node / 256) + "." + std::to_string(node % 256) + "." + std::to_string(octet);
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

const Json* condition(const Json& pod, const std::string& type) {
  const Json* conds = pod.contains("status") ? &pod["status"] : nullptr;
  if (conds == nullptr || !conds->contains("conditions") || !(*conds)["conditions"].is_array()) return nullptr;
  for (const auto& c : (*conds)["conditions"]) {
    if (c.value("type", "") == type) return &c;
  }
  return nullptr;
}

bool deleting(const Json& pod) {
  return pod.contains("metadata") && !pod["metadata"].value("deletionTimestamp", "").empty();
}

}  // namespace

HollowNodes::HollowNodes(client::ApiClient& client, HollowNodeOptions options)
    : client_(client),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : &systemClock_),
      pods_(client, client::resources::kPods) {
  for (size_t i = 0; i < options_.names.size(); ++i) nodeIndex_[options_.names[i]] = static_cast<int>(i);
  usedOctets_.resize(options_.names.size());
  readyDelayMs_ = options_.readyDelay.count();
}

Result<std::unique_ptr<HollowNodes>> HollowNodes::start(client::ApiClient& client, HollowNodeOptions options) {
  if (options.names.empty()) return Error::invalid("hollow nodes: no node names");
  std::unique_ptr<HollowNodes> h(new HollowNodes(client, std::move(options)));
  if (auto r = h->registerNodes(); !r) return r.error();
  auto enqueue = [q = &h->queue_](const client::ObjectPtr& o) { q->add(client::keyOf(*o)); };
  h->pods_.addHandlers({enqueue, [q = &h->queue_](const client::ObjectPtr&, const client::ObjectPtr& o) {
                          q->add(client::keyOf(*o));
                        },
                        enqueue});
  h->pods_.start();
  if (!h->pods_.waitForSync(std::chrono::seconds(60))) return Error{ErrorCode::kUnavailable, "hollow nodes: pod list"};
  for (int i = 0; i < std::max(1, h->options_.workers); ++i) {
    h->workers_.emplace_back([p = h.get()] {
      std::string key;
      while (p->queue_.get(key)) {
        auto r = p->reconcile(key);
        if (r) {
          p->queue_.forget(key);
        } else {
          if (r.error().code != ErrorCode::kAborted && p->queue_.retries(key) > 3) {
            std::cerr << "hollow node: " << key << ": " << r.error().message << "\n";
          }
          p->queue_.addRateLimited(key);
        }
        p->queue_.done(key);
      }
    });
  }
  h->heartbeat_ = std::thread([p = h.get()] { p->heartbeatLoop(); });
  return h;
}

HollowNodes::~HollowNodes() { stop(); }

void HollowNodes::stop() {
  {
    std::lock_guard lock(hbMu_);
    stop_ = true;
  }
  hbCv_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  queue_.shutdown();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
  pods_.stop();
}

std::string HollowNodes::now() const { return rfc3339(clock_->now()); }

Json HollowNodes::nodeObject(int i) const {
  const std::string& name = options_.names[static_cast<size_t>(i)];
  int idx = options_.firstIndex + i;
  std::string t = now();
  Json resources = {{"cpu", options_.cpu}, {"memory", options_.memory}, {"pods", options_.maxPods}};
  std::string cidr = "10." + std::to_string(200 + idx / 256) + "." + std::to_string(idx % 256) + ".0/24";
  return Json{
      {"apiVersion", "v1"},
      {"kind", "Node"},
      {"metadata",
       {{"name", name},
        {"labels", {{"kubernetes.io/hostname", name}, {"kubernetes.io/os", "linux"}, {"sluice.dev/hollow", "true"}}}}},
      {"spec", {{"podCIDR", cidr}, {"podCIDRs", Json::array({cidr})}}},
      {"status",
       {{"capacity", resources},
        {"allocatable", resources},
        {"conditions", Json::array({{{"type", "Ready"},
                                     {"status", "True"},
                                     {"reason", "KubeletReady"},
                                     {"message", "hollow node is posting ready status"},
                                     {"lastHeartbeatTime", t},
                                     {"lastTransitionTime", t}}})},
        {"addresses", Json::array({{{"type", "InternalIP"}, {"address", nodeIp(idx)}},
                                   {{"type", "Hostname"}, {"address", name}}})},
        {"nodeInfo",
         {{"machineID", name},
          {"systemUUID", name},
          {"bootID", name},
          {"kernelVersion", "hollow"},
          {"osImage", "sluice hollow node"},
          {"containerRuntimeVersion", "hollow://0"},
          {"kubeletVersion", "v1.30.0-sluice"},
          {"kubeProxyVersion", ""},
          {"operatingSystem", "linux"},
          {"architecture", "amd64"}}}}}};
}

Result<void> HollowNodes::registerNodes() {
  for (size_t i = 0; i < options_.names.size(); ++i) {
    Json node = nodeObject(static_cast<int>(i));
    auto created = client_.create(client::resources::kNodes, "", node);
    if (created) {
      // Nodes keep status on create; write it again through /status in case
      // the server cleared it.
      Json n = *created;
      n["status"] = node["status"];
      if (auto r = client_.updateStatus(client::resources::kNodes, "", n); !r) return r.error();
      continue;
    }
    if (created.error().code != ErrorCode::kAlreadyExists) return created.error();
    auto r = client_.patch(client::resources::kNodes, "", options_.names[i], Json{{"status", node["status"]}},
                           "application/merge-patch+json", "status");
    if (!r) return r.error();
  }
  return okResult();
}

void HollowNodes::heartbeatLoop() {
  for (;;) {
    {
      std::unique_lock lock(hbMu_);
      hbCv_.wait_for(lock, options_.heartbeat, [this] { return stop_.load(); });
      if (stop_) return;
    }
    std::string t = now();
    for (size_t i = 0; i < options_.names.size() && !stop_; ++i) {
      // The Ready condition's heartbeat, as the kubelet posts it (merge
      // patch: the conditions list is replaced whole).
      Json cond = nodeObject(static_cast<int>(i))["status"]["conditions"];
      cond[0]["lastHeartbeatTime"] = t;
      auto cur = client_.get(client::resources::kNodes, "", options_.names[i]);
      if (cur) {
        const Json* old = nullptr;
        const Json& st = *cur;
        const Json conds = st.contains("status") && st["status"].is_object() && st["status"].contains("conditions")
                               ? st["status"]["conditions"]
                               : Json::array();
        for (const auto& c : conds) {
          if (c.is_object() && c.value("type", "") == "Ready") old = &c;
        }
        if (old != nullptr && old->value("status", "") == "True") {
          cond[0]["lastTransitionTime"] = old->value("lastTransitionTime", t);
        }
      }
      (void)client_.patch(client::resources::kNodes, "", options_.names[i], Json{{"status", {{"conditions", cond}}}},
                          "application/merge-patch+json", "status");
    }
  }
}

void HollowNodes::setPodReady(const std::string& ns, const std::string& name, bool ready) {
  std::string key = ns + "/" + name;
  {
    std::lock_guard lock(mu_);
    if (ready) {
      notReady_.erase(key);
    } else {
      notReady_.insert(key);
    }
  }
  queue_.add(key);
}

void HollowNodes::setReadyDelay(std::chrono::milliseconds d) { readyDelayMs_ = d.count(); }

size_t HollowNodes::runningPods() const {
  std::lock_guard lock(mu_);
  return ips_.size();
}

std::string HollowNodes::allocateIp(const std::string& key, int node) {
  std::lock_guard lock(mu_);
  auto it = ips_.find(key);
  if (it != ips_.end()) return podIp(options_.firstIndex + it->second.first, it->second.second);
  auto& used = usedOctets_[static_cast<size_t>(node)];
  int octet = 2;
  while (used.count(octet) != 0 && octet < 254) ++octet;
  used.insert(octet);
  ips_[key] = {node, octet};
  return podIp(options_.firstIndex + node, octet);
}

void HollowNodes::releaseIp(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = ips_.find(key);
  if (it == ips_.end()) return;
  usedOctets_[static_cast<size_t>(it->second.first)].erase(it->second.second);
  ips_.erase(it);
  firstSeen_.erase(key);
}

Result<void> HollowNodes::reconcile(const std::string& key) {
  client::ObjectPtr pod = pods_.get(key);
  if (pod == nullptr) {
    releaseIp(key);
    return okResult();
  }
  const Json& p = *pod;
  std::string nodeName = p.contains("spec") ? p["spec"].value("nodeName", "") : "";
  if (nodeName.empty()) {
    if (!options_.bindUnscheduled) return okResult();
    if (deleting(p)) {
      auto r = client_.remove(client::resources::kPods, client::namespaceOf(p), client::nameOf(p),
                              Json{{"gracePeriodSeconds", 0}, {"preconditions", {{"uid", client::uidOf(p)}}}});
      if (!r && r.error().code != ErrorCode::kNotFound && r.error().code != ErrorCode::kAborted) return r.error();
      return okResult();
    }
    return bind(p);
  }
  auto node = nodeIndex_.find(nodeName);
  if (node == nodeIndex_.end()) return okResult();
  if (deleting(p)) {
    auto r = client_.remove(client::resources::kPods, client::namespaceOf(p), client::nameOf(p),
                            Json{{"gracePeriodSeconds", 0}, {"preconditions", {{"uid", client::uidOf(p)}}}});
    releaseIp(key);
    // A uid precondition failure (409) means the pod was replaced: done.
    if (!r && r.error().code != ErrorCode::kNotFound && r.error().code != ErrorCode::kAborted) return r.error();
    return okResult();
  }
  return report(key, p, node->second);
}

Result<void> HollowNodes::bind(const Json& pod) {
  uint64_t n = nextBind_++ % options_.names.size();
  Json binding = {{"apiVersion", "v1"},
                  {"kind", "Binding"},
                  {"metadata", {{"name", client::nameOf(pod)}, {"namespace", client::namespaceOf(pod)}}},
                  {"target", {{"apiVersion", "v1"}, {"kind", "Node"}, {"name", options_.names[n]}}}};
  std::string target = client::resources::kPods.path(client::namespaceOf(pod), client::nameOf(pod), "binding");
  auto r = client_.call("POST", target, &binding);
  if (!r && r.error().code != ErrorCode::kNotFound && r.error().code != ErrorCode::kAborted &&
      r.error().code != ErrorCode::kAlreadyExists) {
    return r.error();
  }
  return okResult();
}

Result<void> HollowNodes::report(const std::string& key, const Json& pod, int node) {
  bool wantReady = true;
  {
    std::lock_guard lock(mu_);
    if (notReady_.count(key) != 0) wantReady = false;
    auto seen = firstSeen_.try_emplace(key, std::chrono::steady_clock::now()).first->second;
    auto delay = std::chrono::milliseconds(readyDelayMs_.load());
    auto at = seen + delay;
    auto nowSteady = std::chrono::steady_clock::now();
    if (wantReady && delay.count() > 0 && nowSteady < at) {
      wantReady = false;
      queue_.addAfter(key, std::chrono::duration_cast<std::chrono::milliseconds>(at - nowSteady) +
                               std::chrono::milliseconds(1));
    }
  }
  std::string ip = allocateIp(key, node);
  const Json& status = pod.contains("status") ? pod["status"] : Json::object();
  const Json* ready = condition(pod, "Ready");
  bool isReady = ready != nullptr && ready->value("status", "") == "True";
  if (status.value("phase", "") == "Running" && status.value("podIP", "") == ip && ready != nullptr &&
      isReady == wantReady) {
    return okResult();
  }
  std::string t = now();
  std::string started = status.value("startTime", t);
  std::string readySince = ready != nullptr && isReady == wantReady ? ready->value("lastTransitionTime", t) : t;
  std::string r = wantReady ? "True" : "False";
  Json containers = Json::array();
  if (pod.contains("spec") && pod["spec"].contains("containers")) {
    for (const auto& c : pod["spec"]["containers"]) {
      std::string name = c.value("name", "");
      containers.push_back({{"name", name},
                            {"state", {{"running", {{"startedAt", started}}}}},
                            {"ready", wantReady},
                            {"restartCount", 0},
                            {"image", c.value("image", "")},
                            {"imageID", "hollow://" + c.value("image", "")},
                            {"containerID", "hollow://" + client::uidOf(pod) + "/" + name},
                            {"started", true}});
    }
  }
  auto cond = [&](const char* type, const std::string& s, const std::string& since) {
    return Json{{"type", type}, {"status", s}, {"lastProbeTime", nullptr}, {"lastTransitionTime", since}};
  };
  Json conditions = Json::array({cond("Initialized", "True", started), cond("Ready", r, readySince),
                                 cond("ContainersReady", r, readySince), cond("PodScheduled", "True", started)});
  for (auto& c : conditions) c.erase("lastProbeTime");
  std::string hostIp = nodeIp(options_.firstIndex + node);
  Json patch = {{"status",
                 {{"phase", "Running"},
                  {"conditions", conditions},
                  {"hostIP", hostIp},
                  {"hostIPs", Json::array({{{"ip", hostIp}}})},
                  {"podIP", ip},
                  {"podIPs", Json::array({{{"ip", ip}}})},
                  {"startTime", started},
                  {"containerStatuses", containers}}}};
  auto res = client_.patch(client::resources::kPods, client::namespaceOf(pod), client::nameOf(pod), patch,
                           "application/merge-patch+json", "status");
  if (!res && res.error().code != ErrorCode::kNotFound) return res.error();
  return okResult();
}

}  // namespace sluice::testing
