#include "control/agent/runtime/node_agent.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <thread>

#include "dataplane/log.h"

namespace sluice::agent {
namespace {

using Json = nlohmann::json;

std::string nowText() {
  time_t t = std::time(nullptr);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string nowMicroText() {
  auto now = std::chrono::system_clock::now();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
            1000000;
  std::string s = nowText();
  char frac[16];
  std::snprintf(frac, sizeof(frac), ".%06lld", static_cast<long long>(us));
  return s.substr(0, s.size() - 1) + frac + "Z";
}

std::string readFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

Json capacity() {
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long pageSize = ::sysconf(_SC_PAGE_SIZE);
  long long kib = static_cast<long long>(pages) * pageSize / 1024;
  return {{"cpu", std::to_string(cpus > 0 ? cpus : 1)},
          {"memory", std::to_string(kib) + "Ki"},
          {"pods", "110"},
          {"ephemeral-storage", "10Gi"}};
}

Json nodeInfo() {
  struct utsname u {};
  ::uname(&u);
  return {{"machineID", readFirstLine("/etc/machine-id")},
          {"systemUUID", ""},
          {"bootID", readFirstLine("/proc/sys/kernel/random/boot_id")},
          {"kernelVersion", u.release},
          {"osImage", "Linux"},
          {"containerRuntimeVersion", "sluice://0.1"},
          {"kubeletVersion", "v1.33.0-sluice"},
          {"kubeProxyVersion", "v1.33.0-sluice"},
          {"operatingSystem", "linux"},
          {"architecture", std::string(u.machine) == "x86_64" ? "amd64" : u.machine}};
}

Json newNode(const std::string& name, const std::string& podCidr) {
  Json node = {{"apiVersion", "v1"},
               {"kind", "Node"},
               {"metadata",
                {{"name", name},
                 {"labels",
                  {{"kubernetes.io/hostname", name}, {"kubernetes.io/os", "linux"}, {"kubernetes.io/arch", "amd64"}}}}},
               {"spec", Json::object()}};
  if (!podCidr.empty()) {
    node["spec"]["podCIDR"] = podCidr;
    node["spec"]["podCIDRs"] = Json::array({podCidr});
  }
  return node;
}

}  // namespace

Result<std::string> NodeAgent::awaitPodCidr(client::ApiClient& client, const std::string& nodeName,
                                            std::chrono::milliseconds timeout) {
  // The IPAM controller reacts to the Node's creation within milliseconds;
  // polling at this period costs the server nothing noticeable.
  constexpr auto kPoll = std::chrono::milliseconds(200);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool announced = false;
  while (true) {
    auto node = client.get(client::resources::kNodes, "", nodeName);
    if (!node && node.error().code == ErrorCode::kNotFound) {
      auto created = client.create(client::resources::kNodes, "", newNode(nodeName, ""));
      if (!created && created.error().code != ErrorCode::kAlreadyExists) {
        return Error{created.error().code, "register node " + nodeName + ": " + created.error().message};
      }
      if (created) node = *created;
    }
    if (node) {
      std::string cidr = node->value("/spec/podCIDR"_json_pointer, std::string());
      if (!cidr.empty()) return cidr;
    } else if (node.error().code != ErrorCode::kNotFound) {
      return Error{node.error().code, "get node " + nodeName + ": " + node.error().message};
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    if (!announced) {
      log::info(0, "agent", "waiting for the server to assign the Node a pod CIDR", {{"node", nodeName}});
      announced = true;
    }
    std::this_thread::sleep_for(kPoll);
  }
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout).count();
  return Error::unavailable("node " + nodeName + ": no spec.podCIDR after " + std::to_string(secs) +
                            " s; the server assigns one when its node IPAM is on (`sluice server --cluster-cidr`, "
                            "on by default) and the cluster CIDR is not exhausted (see the server's log); "
                            "otherwise pass --pod-cidr");
}

Result<std::unique_ptr<NodeAgent>> NodeAgent::start(client::ApiClient& client,
                                                    NodeAgentOptions options) {
  std::unique_ptr<NodeAgent> a(new NodeAgent(client, std::move(options)));
  if (auto r = a->registerNode(); !r) return r.error();
  a->renewLease();
  NodeAgent* self = a.get();
  a->thread_ = std::thread([self] { self->run(); });
  return a;
}

NodeAgent::~NodeAgent() { stop(); }

void NodeAgent::stop() {
  stop_.store(true);
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<void> NodeAgent::registerNode() {
  const std::string& name = options_.nodeName;
  readySince_ = nowText();
  Json addresses = Json::array();
  if (!options_.internalIp.empty())
    addresses.push_back({{"type", "InternalIP"}, {"address", options_.internalIp}});
  addresses.push_back({{"type", "Hostname"}, {"address", name}});
  Json status = {
      {"capacity", capacity()},
      {"allocatable", capacity()},
      {"addresses", addresses},
      {"nodeInfo", nodeInfo()},
      {"daemonEndpoints", {{"kubeletEndpoint", {{"Port", options_.streamingPort}}}}},
      {"conditions", Json::array({{{"type", "Ready"},
                                   {"status", "True"},
                                   {"lastHeartbeatTime", readySince_},
                                   {"lastTransitionTime", readySince_},
                                   {"reason", "KubeletReady"},
                                   {"message", "sluice agent is posting ready status"}}})}};
  auto existing = client_.get(client::resources::kNodes, "", name);
  Json node;
  if (existing) {
    node = *existing;
  } else if (existing.error().code == ErrorCode::kNotFound) {
    node = newNode(name, options_.podCidr);
    auto created = client_.create(client::resources::kNodes, "", node);
    if (!created && created.error().code != ErrorCode::kAlreadyExists) {
      return Error{created.error().code, "register node " + name + ": " + created.error().message};
    }
    if (created) node = *created;
  } else {
    return Error{existing.error().code, "get node " + name + ": " + existing.error().message};
  }
  podCidr_ = node["spec"].value("podCIDR", options_.podCidr);
  if (node["spec"].value("podCIDR", "").empty() && !options_.podCidr.empty()) {
    (void)client_.patch(
        client::resources::kNodes, "", name,
        Json{{"spec", {{"podCIDR", options_.podCidr}, {"podCIDRs", {options_.podCidr}}}}});
    podCidr_ = options_.podCidr;
  }
  auto r = client_.patch(client::resources::kNodes, "", name, Json{{"status", status}},
                         "application/merge-patch+json", "status");
  if (!r) return Error{r.error().code, "node " + name + " status: " + r.error().message};
  return okResult();
}

Result<void> NodeAgent::heartbeat() {
  const std::string now = nowText();
  Json conditions = Json::array({{{"type", "Ready"},
                                  {"status", "True"},
                                  {"lastHeartbeatTime", now},
                                  {"lastTransitionTime", readySince_},
                                  {"reason", "KubeletReady"},
                                  {"message", "sluice agent is posting ready status"}}});
  auto r = client_.patch(client::resources::kNodes, "", options_.nodeName,
                         Json{{"status", {{"conditions", conditions}}}},
                         "application/merge-patch+json", "status");
  if (!r && r.error().code == ErrorCode::kNotFound) return registerNode();  // deleted under us
  if (!r) return r.error();
  return okResult();
}

void NodeAgent::renewLease() {
  if (!leasesServed_) return;
  const client::Resource& leases = client::resources::kLeases;
  const std::string& name = options_.nodeName;
  auto lease = client_.get(leases, "kube-node-lease", name);
  if (!lease && lease.error().code == ErrorCode::kNotFound) {
    Json obj = {{"apiVersion", leases.apiVersion()},
                {"kind", "Lease"},
                {"metadata", {{"name", name}, {"namespace", "kube-node-lease"}}},
                {"spec",
                 {{"holderIdentity", name},
                  {"leaseDurationSeconds", options_.leaseDurationSeconds},
                  {"renewTime", nowMicroText()}}}};
    auto created = client_.create(leases, "kube-node-lease", obj);
    // No such resource (404 on the collection): the server serves no Leases.
    if (!created && created.error().code == ErrorCode::kNotFound) leasesServed_ = false;
    return;
  }
  if (!lease) return;
  (void)client_.patch(leases, "kube-node-lease", name,
                      Json{{"spec", {{"holderIdentity", name}, {"renewTime", nowMicroText()}}}});
}

void NodeAgent::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_.load()) {
    cv_.wait_for(lock, options_.heartbeat, [&] { return stop_.load(); });
    if (stop_.load()) break;
    lock.unlock();
    if (auto r = heartbeat(); !r) {
      log::warning(log::Limit{"agent/heartbeat"}, "agent", "node heartbeat failed", {{"err", r.error().message}});
    }
    renewLease();
    lock.lock();
  }
}

}  // namespace sluice::agent
