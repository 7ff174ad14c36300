#include "control/controllers/cluster/hpa_controller.h"

#include <algorithm>
#include <cmath>

namespace sluice::controllers {
namespace {

// Scale-up limit without behavior policies (calculateScaleUpLimit).
int32_t scaleUpLimit(int32_t current) { return std::max(2 * current, 4); }

// The REST resource of a scale target from its kind and apiVersion.
std::optional<client::Resource> targetResource(const Json& ref) {
  std::string kind = ref.value("kind", "");
  std::string apiVersion = ref.value("apiVersion", "apps/v1");
  std::string group;
  std::string version = apiVersion;
  if (auto slash = apiVersion.find('/'); slash != std::string::npos) {
    group = apiVersion.substr(0, slash);
    version = apiVersion.substr(slash + 1);
  }
  if (kind == "Deployment") return client::Resource{group, version, "deployments", true};
  if (kind == "ReplicaSet") return client::Resource{group, version, "replicasets", true};
  if (kind == "StatefulSet") return client::Resource{group, version, "statefulsets", true};
  return std::nullopt;
}

int64_t cpuMilli(const Json& list) {
  if (!list.is_object() || !list.contains("cpu") || !list["cpu"].is_string()) return -1;
  return parseMilli(list["cpu"].get<std::string>()).value_or(-1);
}

std::string milliString(int64_t m) { return m % 1000 == 0 ? std::to_string(m / 1000) : std::to_string(m) + "m"; }

}  // namespace

const client::Resource HpaController::kPodMetrics{"metrics.k8s.io", "v1beta1", "pods", true};

HpaController::HpaController(const ControllerContext& ctx, HpaOptions options)
    : QueueController(ctx, "horizontalpodautoscaling"),
      options_(options),
      hpas_(ctx.informers.get(client::resources::kHorizontalPodAutoscalers)),
      metrics_(ctx.informers.get(kPodMetrics)) {
  hpas_.addHandlers({
      [this](const client::ObjectPtr& h) { enqueue(client::keyOf(*h)); },
      [this](const client::ObjectPtr& o, const client::ObjectPtr& h) {
        // Spec changes sync at once; our own status writes do not.
        if ((*o)["spec"] != (*h)["spec"]) enqueue(client::keyOf(*h));
      },
      [this](const client::ObjectPtr& h) {
        std::lock_guard lock(mu_);
        lastSync_.erase(client::keyOf(*h));
        recommendations_.erase(client::keyOf(*h));
      },
  });
}

HpaController::~HpaController() { stop(); }

void HpaController::start() {
  QueueController::start();
  std::lock_guard lock(mu_);
  if (ticker_.joinable()) return;
  stopping_ = false;
  ticker_ = std::thread([this] { syncLoop(); });
}

void HpaController::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  QueueController::stop();
}

void HpaController::syncLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, options_.tick, [this] { return stopping_; });
    if (stopping_) break;
    TimePoint now = ctx_.clock.now();
    std::vector<std::string> due;
    lock.unlock();
    auto all = hpas_.list();
    lock.lock();
    for (const auto& h : all) {
      std::string key = client::keyOf(*h);
      auto it = lastSync_.find(key);
      if (it == lastSync_.end() || now - it->second >= options_.syncPeriod) due.push_back(key);
    }
    lock.unlock();
    for (const auto& k : due) enqueue(k);
    lock.lock();
  }
}

Result<HpaController::MetricResult> HpaController::cpuReplicas(const Json& hpa,
                                                              const std::vector<client::ObjectPtr>& pods,
                                                              int32_t current, int32_t target) {
  std::string ns = client::namespaceOf(hpa);
  std::map<std::string, int64_t> usage;     // pods with metrics, ready
  std::map<std::string, int64_t> requests;  // every counted pod
  std::vector<std::string> missing, unready;
  for (const auto& p : pods) {
    const Json& pod = *p;
    if (podTerminating(pod) || pod.value("/status/phase"_json_pointer, std::string()) == "Failed") continue;
    std::string name = client::nameOf(pod);
    int64_t req = 0;
    for (const auto& c : pod.value("/spec/containers"_json_pointer, Json::array())) {
      int64_t r = cpuMilli(c.value("/resources/requests"_json_pointer, Json()));
      if (r < 0) return Error::invalid("missing request for cpu in container " + c.value("name", "") + " of Pod " + name);
      req += r;
    }
    requests[name] = req;
    auto m = metrics_.get(ns, name);
    if (!m) {
      missing.push_back(name);
      continue;
    }
    if (!podReady(pod)) {
      unready.push_back(name);
      continue;
    }
    int64_t used = 0;
    for (const auto& c : m->value("containers", Json::array())) used += std::max<int64_t>(0, cpuMilli(c.value("usage", Json())));
    usage[name] = used;
  }
  if (usage.empty()) return Error::unavailable("did not receive metrics for targeted pods (pods might be unready)");
  auto ratio = [&](const std::map<std::string, int64_t>& u, int64_t& avg) {
    int64_t sumUsed = 0, sumReq = 0;
    for (const auto& [n, v] : u) {
      sumUsed += v;
      sumReq += requests[n];
    }
    avg = sumUsed / static_cast<int64_t>(u.size());
    double util = sumReq > 0 ? static_cast<double>(sumUsed) * 100.0 / static_cast<double>(sumReq) : 0;
    return util;
  };
  MetricResult out;
  double util = ratio(usage, out.averageMilli);
  out.utilization = static_cast<int32_t>(util);
  double usageRatio = util / target;
  int32_t readyCount = static_cast<int32_t>(usage.size());
  bool scaleUpWithUnready = !unready.empty() && usageRatio > 1.0;
  if (!scaleUpWithUnready && missing.empty()) {
    out.replicas = std::fabs(1.0 - usageRatio) <= options_.tolerance
                       ? current
                       : static_cast<int32_t>(std::ceil(usageRatio * readyCount));
    return out;
  }
  // Pods without metrics count as using their full request when scaling
  // down and nothing when scaling up; not-ready pods as nothing when
  // scaling up — the conservative reading either way.
  std::map<std::string, int64_t> adjusted = usage;
  for (const auto& n : missing) adjusted[n] = usageRatio < 1.0 ? requests[n] * target / 100 : 0;
  if (scaleUpWithUnready) {
    for (const auto& n : unready) adjusted[n] = 0;
  }
  int64_t ignoredAvg = 0;
  double newRatio = ratio(adjusted, ignoredAvg) / target;
  if (std::fabs(1.0 - newRatio) <= options_.tolerance || (usageRatio < 1.0 && newRatio > 1.0) ||
      (usageRatio > 1.0 && newRatio < 1.0)) {
    out.replicas = current;
    return out;
  }
  int32_t next = static_cast<int32_t>(std::ceil(newRatio * static_cast<double>(adjusted.size())));
  if ((newRatio < 1.0 && next > current) || (newRatio > 1.0 && next < current)) next = current;
  out.replicas = next;
  return out;
}

int32_t HpaController::stabilize(const std::string& key, const Json& hpa, int32_t current, int32_t desired,
                                 TimePoint now, std::string& reason) {
  auto window = [&](const char* dir, std::chrono::seconds dflt) {
    Json rules = hpa.value("/spec/behavior"_json_pointer, Json::object());
    Json w = rules.is_object() && rules.contains(dir) ? rules[dir].value("stabilizationWindowSeconds", Json()) : Json();
    return w.is_number_integer() ? std::chrono::seconds(w.get<int>()) : dflt;
  };
  auto upCutoff = now - window("scaleUp", std::chrono::seconds(0));
  auto downCutoff = now - window("scaleDown", options_.downscaleStabilization);
  std::lock_guard lock(mu_);
  auto& recs = recommendations_[key];
  int32_t up = desired;
  int32_t down = desired;
  for (const auto& r : recs) {
    if (r.at > upCutoff) up = std::min(up, r.replicas);
    if (r.at > downCutoff) down = std::max(down, r.replicas);
  }
  recs.erase(std::remove_if(recs.begin(), recs.end(),
                            [&](const Recommendation& r) { return r.at <= upCutoff && r.at <= downCutoff; }),
             recs.end());
  recs.push_back({now, desired});
  int32_t rec = std::max(current, up);
  rec = std::min(rec, down);
  if (rec != desired) reason = rec > desired ? "ScaleDownStabilized" : "ScaleUpStabilized";
  return rec;
}

Result<void> HpaController::reconcile(const std::string& key) {
  auto hpaPtr = hpas_.get(key);
  TimePoint now = ctx_.clock.now();
  {
    std::lock_guard lock(mu_);
    if (!hpaPtr) {
      lastSync_.erase(key);
      recommendations_.erase(key);
      return okResult();
    }
    lastSync_[key] = now;
  }
  const Json& hpa = *hpaPtr;
  const auto [nsKey, nameKey] = splitKey(key);
  const std::string ns = nsKey;
  const std::string name = nameKey;
  std::string ts = formatRfc3339(now);
  Json status = hpa.value("status", Json::object());
  if (!status.is_object()) status = Json::object();
  Json conditions = arrayOf(status, "conditions");
  auto writeStatus = [&]() -> Result<void> {
    status["conditions"] = conditions;
    status["observedGeneration"] = hpa.value("/metadata/generation"_json_pointer, 0);
    if (hpa.value("status", Json::object()) == status) return okResult();
    Json next = hpa;
    next["status"] = status;
    auto r = ctx_.client.updateStatus(client::resources::kHorizontalPodAutoscalers, ns, next);
    if (!r && r.error().code != ErrorCode::kNotFound) return r.error();
    return okResult();
  };
  auto condition = [&](const char* type, bool ok, const std::string& reason, const std::string& message) {
    setCondition(conditions, {{"type", type}, {"status", ok ? "True" : "False"}, {"reason", reason}, {"message", message}},
                 ts);
  };

  const Json ref = hpa.value("/spec/scaleTargetRef"_json_pointer, Json::object());
  auto target = targetResource(ref);
  if (!target) {
    condition("AbleToScale", false, "FailedGetScale",
              "the HPA controller was unable to get the target's current scale: no scale subresource for kind " +
                  ref.value("kind", ""));
    return writeStatus();
  }
  std::string scalePath = target->path(ns, ref.value("name", ""), "scale");
  auto scale = ctx_.client.call("GET", scalePath);
  if (!scale) {
    condition("AbleToScale", false, "FailedGetScale",
              "the HPA controller was unable to get the target's current scale: " + scale.error().message);
    return writeStatus();
  }
  int32_t current = scale->value("/spec/replicas"_json_pointer, 0);
  int32_t minReplicas = hpa.value("/spec/minReplicas"_json_pointer, 1);
  int32_t maxReplicas = hpa.value("/spec/maxReplicas"_json_pointer, 1);
  status["currentReplicas"] = scale->value("/status/replicas"_json_pointer, 0);
  condition("AbleToScale", true, "SucceededGetScale", "the HPA controller was able to get the target's current scale");

  int32_t desired = current;
  std::string limitReason;
  if (current == 0 && minReplicas != 0) {
    condition("ScalingActive", false, "ScalingDisabled", "scaling is disabled since the replica count of the target is zero");
    status["desiredReplicas"] = 0;
    status.erase("currentMetrics");
    return writeStatus();
  }
  client::ListOptions sel;
  sel.labelSelector = scale->value("/status/selector"_json_pointer, std::string());
  auto podList = ctx_.client.list(client::resources::kPods, ns, sel);
  if (!podList) return podList.error();
  std::vector<client::ObjectPtr> pods;
  for (const auto& p : (*podList)["items"]) pods.push_back(std::make_shared<const Json>(p));

  Json currentMetrics = Json::array();
  std::optional<int32_t> proposal;
  std::string metricError;
  for (const auto& m : hpa.value("/spec/metrics"_json_pointer, Json::array())) {
    bool cpuUtil = m.value("type", "") == "Resource" && m.value("/resource/name"_json_pointer, std::string()) == "cpu" &&
                   m.value("/resource/target/type"_json_pointer, std::string()) == "Utilization";
    if (!cpuUtil) {
      metricError = "unsupported metric (only Resource cpu with a Utilization target is computed)";
      currentMetrics.push_back({{"type", m.value("type", "")}});
      continue;
    }
    int32_t targetUtil = m.value("/resource/target/averageUtilization"_json_pointer, 80);
    auto r = cpuReplicas(hpa, pods, current, targetUtil);
    if (!r) {
      metricError = "failed to get cpu utilization: " + r.error().message;
      currentMetrics.push_back({{"type", "Resource"}, {"resource", {{"name", "cpu"}, {"current", Json::object()}}}});
      continue;
    }
    currentMetrics.push_back(
        {{"type", "Resource"},
         {"resource",
          {{"name", "cpu"},
           {"current", {{"averageUtilization", r->utilization}, {"averageValue", milliString(r->averageMilli)}}}}}});
    if (!proposal || r->replicas > *proposal) proposal = r->replicas;
  }
  status["currentMetrics"] = currentMetrics;
  if (!proposal) {
    condition("ScalingActive", false, "FailedGetResourceMetric",
              "the HPA was unable to compute the replica count: " + metricError);
    status["desiredReplicas"] = current;
    return writeStatus();
  }
  condition("ScalingActive", true, "ValidMetricFound",
            "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of "
            "request)");
  std::string stabilized;
  desired = stabilize(key, hpa, current, *proposal, now, stabilized);
  if (desired > scaleUpLimit(current)) {
    desired = scaleUpLimit(current);
    limitReason = "ScaleUpLimit";
  }
  if (desired > maxReplicas) {
    desired = maxReplicas;
    condition("ScalingLimited", true, "TooManyReplicas", "the desired replica count is more than the maximum replica count");
  } else if (desired < minReplicas) {
    desired = minReplicas;
    condition("ScalingLimited", true, "TooFewReplicas", "the desired replica count is less than the minimum replica count");
  } else if (!limitReason.empty()) {
    condition("ScalingLimited", true, limitReason,
              "the desired replica count is increasing faster than the maximum scale rate");
  } else {
    condition("ScalingLimited", false, "DesiredWithinRange", "the desired count is within the acceptable range");
  }
  status["desiredReplicas"] = desired;
  if (desired != current) {
    Json body = {{"spec", {{"replicas", desired}}}};
    auto r = ctx_.client.call("PATCH", scalePath, &body, "application/merge-patch+json");
    if (!r) {
      condition("AbleToScale", false, "FailedUpdateScale",
                "the HPA controller was unable to update the target scale: " + r.error().message);
      return writeStatus();
    }
    status["lastScaleTime"] = ts;
    condition("AbleToScale", true, "SucceededRescale",
              "the HPA controller was able to update the target scale to " + std::to_string(desired));
  } else if (!stabilized.empty()) {
    condition("AbleToScale", true, stabilized,
              "recent recommendations were higher than current one, applying the highest recent recommendation");
  } else {
    condition("AbleToScale", true, "ReadyForNewScale", "recommended size matches current size");
  }
  return writeStatus();
}

}  // namespace sluice::controllers
