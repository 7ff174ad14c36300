#include "control/agent/runtime/metrics_reporter.h"
#include "control/util/rfc3339.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "control/api/time_util.h"
#include "dataplane/log.h"

namespace sluice::agent {

const client::Resource kPodMetricsResource{"metrics.k8s.io", "v1beta1", "pods", true};
const client::Resource kNodeMetricsResource{"metrics.k8s.io", "v1beta1", "nodes", false};

namespace {

using Clock = std::chrono::steady_clock;

void logLine(std::string_view what, const std::string& object, const std::string& err) {
  log::warning(log::Limit{"metrics/" + std::string(what) + "/" + object}, "metrics", what,
               {{"object", object}, {"err", err}});
}

// A Go duration string as metrics-server's `window` ("15s", "1.002s").
std::string windowText(std::chrono::nanoseconds d) {
  int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%lld.%03llds", static_cast<long long>(ms / 1000),
                static_cast<long long>(ms % 1000));
  std::string s = buf;
  // "1.500s" -> "1.5s"
  while (s.size() > 2 && s[s.size() - 2] == '0') s.erase(s.size() - 2, 1);
  return s;
}

// Usage over a window as a rate in nanocores (1e9 = one CPU busy).
uint64_t nanocores(uint64_t before, uint64_t after, std::chrono::nanoseconds window) {
  if (after <= before || window.count() <= 0) return 0;
  long double rate =
      static_cast<long double>(after - before) * 1e9L / static_cast<long double>(window.count());
  return static_cast<uint64_t>(rate);
}

Json usageJson(uint64_t cpuNanocores, uint64_t memoryBytes) {
  // The units metrics-server serves: cpu scaled 1e-9 ("n"), memory in Ki.
  return {{"cpu", std::to_string(cpuNanocores) + "n"},
          {"memory", std::to_string(memoryBytes / 1024) + "Ki"}};
}

// Non-idle CPU time of the whole machine, in ns (/proc/stat's first line:
// user nice system idle iowait irq softirq steal ..., in USER_HZ ticks;
// guest time is already inside user).
std::optional<uint64_t> nodeCpuNanos() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) ||
      cpu != "cpu") {
    return std::nullopt;
  }
  long hz = ::sysconf(_SC_CLK_TCK);
  if (hz <= 0) hz = 100;
  uint64_t ticks = user + nice + system + irq + softirq + steal;
  return ticks * (1000000000ULL / static_cast<uint64_t>(hz));
}

std::optional<uint64_t> nodeWorkingSetBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t value = 0;
  std::string unit;
  uint64_t total = 0, free = 0, inactiveFile = 0;
  bool haveTotal = false;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    if (!(ls >> key >> value)) continue;
    if (key == "MemTotal:") {
      total = value;
      haveTotal = true;
    } else if (key == "MemFree:") {
      free = value;
    } else if (key == "Inactive(file):") {
      inactiveFile = value;
    }
  }
  if (!haveTotal || total < free + inactiveFile) return std::nullopt;
  return (total - free - inactiveFile) * 1024;  // /proc/meminfo is in KiB
}

}  // namespace

MetricsReporter::MetricsReporter(client::ApiClient& client, const CgroupManager* cgroups,
                                 MetricsReporterOptions options, PodLister pods)
    : client_(client), cgroups_(cgroups), options_(std::move(options)), pods_(std::move(pods)) {
  thread_ = std::thread([this] { run(); });
}

MetricsReporter::~MetricsReporter() { stop(); }

void MetricsReporter::stop() {
  stop_.store(true);
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void MetricsReporter::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_.load()) {
    lock.unlock();
    tick();
    lock.lock();
    cv_.wait_for(lock, options_.resolution, [&] { return stop_.load(); });
  }
}

void MetricsReporter::tick() {
  reportNode();
  reportPods();
}

bool MetricsReporter::write(const client::Resource& r, const std::string& ns, const Json& obj) {
  const std::string name = obj["metadata"]["name"];
  auto cur = client_.get(r, ns, name);
  Result<Json> done = Error{ErrorCode::kInternal, ""};
  if (cur) {
    Json next = obj;
    next["metadata"]["resourceVersion"] = (*cur)["metadata"].value("resourceVersion", "");
    done = client_.update(r, ns, next);
  } else if (cur.error().code == ErrorCode::kNotFound) {
    done = client_.create(r, ns, obj);
  } else {
    done = cur.error();
  }
  if (!done) {
    // A conflict or a create race is retried at the next period.
    if (done.error().code != ErrorCode::kAborted && done.error().code != ErrorCode::kAlreadyExists)
      logLine("writing metrics failed", r.plural + " " + (ns.empty() ? "" : ns + "/") + name, done.error().message);
    return false;
  }
  return true;
}

void MetricsReporter::reportNode() {
  auto cpu = nodeCpuNanos();
  auto mem = nodeWorkingSetBytes();
  if (!cpu || !mem) return;
  CpuSample now{*cpu, Clock::now()};
  auto wall = api::Clock::now();
  if (lastNode_) {
    auto window = now.at - lastNode_->at;
    Json obj = {{"apiVersion", kNodeMetricsResource.apiVersion()},
                {"kind", "NodeMetrics"},
                {"metadata", {{"name", options_.nodeName}}},
                {"timestamp", util::formatRfc3339(wall)},
                {"window", windowText(window)},
                {"usage", usageJson(nanocores(lastNode_->nanos, now.nanos, window), *mem)}};
    write(kNodeMetricsResource, "", obj);
  }
  lastNode_ = now;
}

void MetricsReporter::reportPods() {
  std::vector<PodWorker::Snapshot> pods = pods_();
  std::set<std::pair<std::string, std::string>> live;
  std::map<std::string, CpuSample> samples;
  auto wall = api::Clock::now();
  for (const PodWorker::Snapshot& pod : pods) {
    if (pod.containers.empty() || cgroups_ == nullptr) continue;
    live.insert({pod.ns, pod.name});
    Json containers = Json::array();
    std::chrono::nanoseconds window{0};
    bool complete = true;
    for (const auto& [name, dirs] : pod.containers) {
      auto u = cgroups_->usage(dirs);
      if (!u) {
        complete = false;
        continue;
      }
      const std::string key = pod.uid + "/" + name;
      CpuSample now{u->cpuNanos, Clock::now()};
      samples[key] = now;
      auto prev = last_.find(key);
      // A restarted container's cgroup keeps counting, so the counter only
      // goes down if the cgroup was made anew: start a new series then.
      if (prev == last_.end() || prev->second.nanos > now.nanos) {
        complete = false;
        continue;
      }
      auto w = now.at - prev->second.at;
      window = std::max(window, std::chrono::duration_cast<std::chrono::nanoseconds>(w));
      containers.push_back({{"name", name},
                            {"usage", usageJson(nanocores(prev->second.nanos, now.nanos, w),
                                                u->memoryWorkingSetBytes)}});
    }
    if (!complete || containers.empty()) continue;
    Json labels = pod.labels.is_object() ? pod.labels : Json::object();
    labels[kMetricsNodeLabel] = options_.nodeName;
    Json obj = {{"apiVersion", kPodMetricsResource.apiVersion()},
                {"kind", "PodMetrics"},
                {"metadata", {{"name", pod.name}, {"namespace", pod.ns}, {"labels", labels}}},
                {"timestamp", util::formatRfc3339(wall)},
                {"window", windowText(window)},
                {"containers", containers}};
    if (write(kPodMetricsResource, pod.ns, obj)) written_.insert({pod.ns, pod.name});
  }
  last_ = std::move(samples);  // containers that stopped drop out

  // PodMetrics of ours whose pod is gone (or no longer running): those this
  // agent wrote, and once after a start those a previous agent left.
  if (!listedStale_) {
    client::ListOptions lo;
    lo.labelSelector = std::string(kMetricsNodeLabel) + "=" + options_.nodeName;
    auto list = client_.list(kPodMetricsResource, "", lo);
    if (list) {
      for (const Json& item : list->value("items", Json::array())) {
        written_.insert({client::namespaceOf(item), client::nameOf(item)});
      }
      listedStale_ = true;
    }
  }
  for (auto it = written_.begin(); it != written_.end();) {
    if (live.count(*it) != 0) {
      ++it;
      continue;
    }
    auto r = client_.remove(kPodMetricsResource, it->first, it->second);
    if (r || r.error().code == ErrorCode::kNotFound) {
      it = written_.erase(it);
    } else {
      logLine("removing PodMetrics failed", it->first + "/" + it->second, r.error().message);
      ++it;
    }
  }
}

}  // namespace sluice::agent
