#include "control/controllers/cluster/endpoints_controller.h"

#include <algorithm>
#include <map>

namespace sluice::controllers {
namespace {

constexpr const char* kOverCapacityAnnotation = "endpoints.kubernetes.io/over-capacity";

Json portJson(const Json& svcPort, int port) {
  Json p = {{"port", port}, {"protocol", svcPort.value("protocol", "TCP")}};
  if (!svcPort.value("name", "").empty()) p["name"] = svcPort["name"];
  if (svcPort.contains("appProtocol")) p["appProtocol"] = svcPort["appProtocol"];
  return p;
}

Json addressJson(const Json& pod, const std::string& ip, const Json& service) {
  Json a = {{"ip", ip},
            {"targetRef",
             {{"kind", "Pod"}, {"namespace", client::namespaceOf(pod)}, {"name", client::nameOf(pod)},
              {"uid", client::uidOf(pod)}}}};
  std::string node = pod.value("/spec/nodeName"_json_pointer, std::string());
  if (!node.empty()) a["nodeName"] = node;
  std::string host = pod.value("/spec/hostname"_json_pointer, std::string());
  if (!host.empty() && pod.value("/spec/subdomain"_json_pointer, std::string()) == client::nameOf(service)) {
    a["hostname"] = host;
  }
  return a;
}

Json desiredLabels(const Json& service) {
  Json labels = labelsOf(service);
  if (service.value("/spec/clusterIP"_json_pointer, std::string()) == "None") {
    labels["service.kubernetes.io/headless"] = "";
  }
  return labels;
}

}  // namespace

EndpointsController::EndpointsController(const ControllerContext& ctx)
    : ServiceEndpointsController(ctx, "endpoints"), endpoints_(ctx.informers.get(client::resources::kEndpoints)) {
  endpoints_.addHandlers({nullptr, nullptr, [this](const client::ObjectPtr& ep) { enqueue(client::keyOf(*ep)); }});
}

Result<void> EndpointsController::reconcile(const std::string& key) {
  const auto [nsKey, nameKey] = splitKey(key);
  const std::string ns = nsKey;
  const std::string name = nameKey;
  auto service = services_.get(key);
  auto current = endpoints_.get(key);
  if (!service) {
    triggers_.forget(key);
    if (!current) return okResult();
    auto r = ctx_.client.remove(client::resources::kEndpoints, ns, name);
    if (!r && r.error().code != ErrorCode::kNotFound) return r.error();
    return okResult();
  }
  if (!managesEndpoints(*service)) return okResult();

  const Json& spec = (*service)["spec"];
  bool tolerateUnready = spec.value("publishNotReadyAddresses", false);
  std::string family = serviceFamilies(*service).front();
  auto pods = selectedPods(*service);
  const Json svcPorts = arrayOf(spec, "ports");

  // Subsets keyed by their port list (RepackSubsets): addresses sharing
  // one port set form one subset.
  struct Subset {
    Json ports;
    std::vector<Json> ready;
    std::vector<Json> notReady;
  };
  std::map<std::string, Subset> subsets;
  size_t total = 0;
  for (const auto& podPtr : pods) {
    const Json& pod = *podPtr;
    if (podTerminal(pod)) continue;
    if (podTerminating(pod) && !tolerateUnready) continue;
    std::string ip = podIpOfFamily(pod, family);
    if (ip.empty()) continue;
    Json ports = Json::array();
    for (const auto& sp : svcPorts) {
      if (auto port = resolveTargetPort(sp, pod)) ports.push_back(portJson(sp, *port));
    }
    if (!svcPorts.empty() && ports.empty()) continue;
    Subset& s = subsets[ports.dump()];
    s.ports = ports;
    (tolerateUnready || podReady(pod) ? s.ready : s.notReady).push_back(addressJson(pod, ip, *service));
    ++total;
  }
  auto byIp = [](const Json& a, const Json& b) { return a.value("ip", "") < b.value("ip", ""); };
  Json desired = Json::array();
  size_t kept = 0;
  // Over capacity, ready addresses are kept first.
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& [k, s] : subsets) {
      auto& list = pass == 0 ? s.ready : s.notReady;
      std::sort(list.begin(), list.end(), byIp);
      if (kept + list.size() > kMaxAddresses) list.resize(kMaxAddresses - std::min(kept, kMaxAddresses));
      kept += list.size();
    }
  }
  for (auto& [k, s] : subsets) {
    if (s.ready.empty() && s.notReady.empty()) continue;
    Json subset = Json::object();
    if (!s.ready.empty()) subset["addresses"] = s.ready;
    if (!s.notReady.empty()) subset["notReadyAddresses"] = s.notReady;
    if (!s.ports.empty()) subset["ports"] = s.ports;
    desired.push_back(std::move(subset));
  }
  bool overCapacity = total > kMaxAddresses;
  Json labels = desiredLabels(*service);
  // Computed on every sync, as Kubernetes does, so a sync that writes
  // nothing still marks the changes it saw as published.
  auto change = triggers_.compute(key, *service, pods);
  const std::optional<TimePoint> trigger = change.trigger;

  if (current) {
    const Json& md = (*current)["metadata"];
    bool annotated = md.contains("annotations") && md["annotations"].contains(kOverCapacityAnnotation);
    if (arrayOf(*current, "subsets") == desired && labelsOf(*current) == labels &&
        annotated == overCapacity) {
      triggers_.publish(std::move(change));
      return okResult();
    }
  }
  Json ep = current ? *current : Json{{"apiVersion", "v1"}, {"kind", "Endpoints"},
                                      {"metadata", {{"name", name}, {"namespace", ns}}}};
  Json& md = ep["metadata"];
  md["labels"] = labels;
  if (!md.contains("annotations") || !md["annotations"].is_object()) md["annotations"] = Json::object();
  if (trigger) {
    md["annotations"][kTriggerTimeAnnotation] = formatRfc3339Nano(*trigger);
  } else {
    md["annotations"].erase(kTriggerTimeAnnotation);
  }
  if (overCapacity) {
    md["annotations"][kOverCapacityAnnotation] = "truncated";
  } else {
    md["annotations"].erase(kOverCapacityAnnotation);
  }
  ep["subsets"] = desired;
  auto r = current ? ctx_.client.update(client::resources::kEndpoints, ns, ep)
                   : ctx_.client.create(client::resources::kEndpoints, ns, ep);
  // Created or changed meanwhile and the informer has not caught up: retry
  // quietly from the newer state.
  // The trigger time stays unpublished until the write lands, so the retry
  // stamps it again.
  if (!r && r.error().code == ErrorCode::kAlreadyExists) return Error::aborted(r.error().message);
  if (!r) return r.error();
  triggers_.publish(std::move(change));
  return okResult();
}

}  // namespace sluice::controllers
