#include "control/controllers/cluster/endpointslice_controller.h"

#include <algorithm>
#include <map>

namespace sluice::controllers {
namespace {

Json slicePort(const Json& svcPort, int port) {
  Json p = {{"name", svcPort.value("name", "")}, {"port", port}, {"protocol", svcPort.value("protocol", "TCP")}};
  if (svcPort.contains("appProtocol")) p["appProtocol"] = svcPort["appProtocol"];
  return p;
}

Json sliceEndpoint(const Json& pod, const std::string& ip, const Json& service) {
  bool serving = podReady(pod);
  bool terminating = podTerminating(pod);
  // Ready is never true for a terminating pod unless the Service publishes
  // not-ready addresses (podToEndpoint).
  bool ready = service.value("/spec/publishNotReadyAddresses"_json_pointer, false) || (serving && !terminating);
  Json e = {{"addresses", {ip}},
            {"conditions", {{"ready", ready}, {"serving", serving}, {"terminating", terminating}}},
            {"targetRef",
             {{"kind", "Pod"}, {"namespace", client::namespaceOf(pod)}, {"name", client::nameOf(pod)},
              {"uid", client::uidOf(pod)}}}};
  std::string node = pod.value("/spec/nodeName"_json_pointer, std::string());
  if (!node.empty()) e["nodeName"] = node;
  std::string host = pod.value("/spec/hostname"_json_pointer, std::string());
  if (!host.empty() && pod.value("/spec/subdomain"_json_pointer, std::string()) == client::nameOf(service)) {
    e["hostname"] = host;
  }
  return e;
}

// An endpoint's identity across syncs: its pod and address.
std::string endpointKey(const Json& e) {
  std::string addr;
  auto a = e.find("addresses");
  if (a != e.end() && a->is_array() && !a->empty() && (*a)[0].is_string()) addr = (*a)[0].get<std::string>();
  return e.value("/targetRef/name"_json_pointer, std::string()) + "|" + addr;
}

int64_t resourceVersionOf(const Json& obj) {
  return std::strtoll(obj.value("/metadata/resourceVersion"_json_pointer, std::string("0")).c_str(), nullptr, 10);
}

bool ownedBy(const Json& slice, const std::string& uid) {
  for (const auto& ref : slice.value("/metadata/ownerReferences"_json_pointer, Json::array())) {
    if (ref.value("uid", "") == uid && ref.value("kind", "") == "Service") return true;
  }
  return false;
}

}  // namespace

EndpointSliceController::EndpointSliceController(const ControllerContext& ctx)
    : ServiceEndpointsController(ctx, "endpointslice"),
      slices_(ctx.informers.get(client::resources::kEndpointSlices)) {
  slices_.addHandlers({
      [this](const client::ObjectPtr& s) { onSlice(s, false); },
      [this](const client::ObjectPtr&, const client::ObjectPtr& s) { onSlice(s, false); },
      [this](const client::ObjectPtr& s) { onSlice(s, true); },
  });
}

void EndpointSliceController::onSlice(const client::ObjectPtr& slice, bool deleted) {
  const Json& labels = labelsOf(*slice);
  if (labels.value(kManagedByLabel, "") != kSliceControllerName) return;
  std::string svc = labels.value(kServiceNameLabel, "");
  if (svc.empty()) return;
  std::string svcKey = client::namespaceOf(*slice) + "/" + svc;
  {
    std::lock_guard lock(mu_);
    auto& set = byService_[svcKey];
    if (deleted) {
      set.erase(client::keyOf(*slice));
      if (set.empty()) byService_.erase(svcKey);
    } else {
      set.insert(client::keyOf(*slice));
    }
  }
  // Our own writes come back here too; a sync that finds nothing to change
  // writes nothing, so this only repairs slices edited or deleted by others.
  if (deleted) enqueue(svcKey);
}

std::vector<client::ObjectPtr> EndpointSliceController::slicesOf(const std::string& serviceKey) {
  std::lock_guard lock(mu_);
  std::vector<client::ObjectPtr> out;
  auto it = byService_.find(serviceKey);
  if (it == byService_.end()) return out;
  for (const auto& k : it->second) {
    auto cached = slices_.get(k);
    auto w = written_.find(k);
    if (w != written_.end()) {
      if (w->second == nullptr) {  // deleted by us
        if (!cached) written_.erase(w);
        continue;
      }
      if (!cached || resourceVersionOf(*cached) < resourceVersionOf(*w->second)) {
        out.push_back(w->second);
        continue;
      }
      written_.erase(w);
    }
    if (cached) out.push_back(cached);
  }
  return out;
}

void EndpointSliceController::wrote(const std::string& serviceKey, const Json& slice, bool deleted) {
  std::lock_guard lock(mu_);
  std::string k = client::keyOf(slice);
  if (deleted) {
    written_[k] = nullptr;
    return;
  }
  byService_[serviceKey].insert(k);
  written_[k] = std::make_shared<const Json>(slice);
}

Result<void> EndpointSliceController::reconcile(const std::string& key) {
  const auto [nsKey, nameKey] = splitKey(key);
  const std::string ns = nsKey;
  const std::string name = nameKey;
  auto service = services_.get(key);
  auto existing = slicesOf(key);
  const auto& kSlices = client::resources::kEndpointSlices;
  auto removeSlice = [&](const Json& s) -> Result<void> {
    auto r = ctx_.client.remove(kSlices, ns, client::nameOf(s));
    if (!r && r.error().code != ErrorCode::kNotFound) return r.error();
    wrote(key, s, true);
    return okResult();
  };
  if (!service) {
    triggers_.forget(key);
    for (const auto& s : existing) {
      if (auto r = removeSlice(*s); !r) return r;
    }
    return okResult();
  }
  if (!managesEndpoints(*service)) return okResult();
  std::string uid = client::uidOf(*service);
  auto families = serviceFamilies(*service);
  auto pods = selectedPods(*service);
  // Published only once every slice write below succeeded (see
  // TriggerTimeTracker): a failed round is retried with the same trigger.
  auto change = triggers_.compute(key, *service, pods);
  const std::optional<TimePoint> trigger = change.trigger;
  const Json svcPorts = arrayOf((*service)["spec"], "ports");

  // Desired endpoints by (addressType, ports), each by its identity.
  struct Group {
    Json ports;
    std::map<std::string, Json> endpoints;
  };
  std::map<std::pair<std::string, std::string>, Group> desired;
  for (const auto& podPtr : pods) {
    const Json& pod = *podPtr;
    if (podTerminal(pod)) continue;
    Json ports = Json::array();
    for (const auto& sp : svcPorts) {
      if (auto port = resolveTargetPort(sp, pod)) ports.push_back(slicePort(sp, *port));
    }
    if (!svcPorts.empty() && ports.empty()) continue;
    for (const auto& family : families) {
      std::string ip = podIpOfFamily(pod, family);
      if (ip.empty()) continue;
      Group& g = desired[{family, ports.dump()}];
      g.ports = ports;
      Json e = sliceEndpoint(pod, ip, *service);
      g.endpoints.emplace(endpointKey(e), std::move(e));
    }
  }

  // Endpoints stay in the slice that holds them; the rest fill slices with
  // room, then new slices.
  struct Plan {
    client::ObjectPtr current;
    std::string addressType;
    Json ports;
    Json endpoints = Json::array();
  };
  std::vector<Plan> plans;
  std::vector<client::ObjectPtr> stale;
  std::sort(existing.begin(), existing.end(),
            [](const client::ObjectPtr& a, const client::ObjectPtr& b) { return client::nameOf(*a) < client::nameOf(*b); });
  std::set<std::pair<std::string, std::string>> placed;  // (group ports key, endpoint key)
  for (const auto& s : existing) {
    if (!ownedBy(*s, uid)) {
      stale.push_back(s);
      continue;
    }
    Plan p{s, s->value("addressType", ""), arrayOf(*s, "ports")};
    std::string portsKey = p.ports.dump();
    auto g = desired.find({p.addressType, portsKey});
    if (g != desired.end()) {
      for (const auto& e : arrayOf(*s, "endpoints")) {
        std::string k = endpointKey(e);
        auto d = g->second.endpoints.find(k);
        if (d == g->second.endpoints.end() || !placed.insert({p.addressType + portsKey, k}).second) continue;
        if (p.endpoints.size() < kMaxEndpointsPerSlice) p.endpoints.push_back(d->second);
        else placed.erase({p.addressType + portsKey, k});
      }
    }
    plans.push_back(std::move(p));
  }
  for (auto& [gk, g] : desired) {
    for (auto& [k, e] : g.endpoints) {
      if (placed.count({gk.first + gk.second, k})) continue;
      Plan* room = nullptr;
      for (auto& p : plans) {
        if (p.addressType == gk.first && p.ports == g.ports && p.endpoints.size() < kMaxEndpointsPerSlice &&
            (!p.endpoints.empty() || !p.current)) {
          room = &p;
          break;
        }
      }
      if (room == nullptr) {
        plans.push_back(Plan{nullptr, gk.first, g.ports});
        room = &plans.back();
      }
      room->endpoints.push_back(e);
    }
  }
  bool anyEndpoints = std::any_of(plans.begin(), plans.end(), [](const Plan& p) { return !p.endpoints.empty(); });
  if (!anyEndpoints) {
    // A Service that selects nothing keeps one empty placeholder slice.
    auto keep = std::find_if(plans.begin(), plans.end(), [&](const Plan& p) {
      return p.addressType == families.front() && p.ports.empty();
    });
    if (keep == plans.end()) {
      plans.push_back(Plan{nullptr, families.front(), Json::array()});
      keep = plans.end() - 1;
    }
    keep->endpoints = Json::array();
    keep->ports = Json::array();
    for (auto it = plans.begin(); it != plans.end(); ++it) {
      if (it != keep && it->current) stale.push_back(it->current);
    }
    Plan only = *keep;
    plans = {only};
  } else {
    // A slice left empty (the placeholder of a Service that selected
    // nothing, or one whose endpoints all left) is reused for a slice that
    // would be created, as Kubernetes' reconciler does: one update instead
    // of a create and a delete, so no client ever sees the empty slice next
    // to the new one. addressType is immutable: reuse within one type only.
    std::vector<client::ObjectPtr> emptied;
    for (auto& p : plans) {
      if (p.endpoints.empty() && p.current) emptied.push_back(p.current);
    }
    std::vector<Plan> kept;
    for (auto& p : plans) {
      if (p.endpoints.empty()) continue;
      if (!p.current) {
        auto reuse = std::find_if(emptied.begin(), emptied.end(), [&](const client::ObjectPtr& e) {
          return e->value("addressType", "") == p.addressType;
        });
        if (reuse != emptied.end()) {
          p.current = *reuse;
          emptied.erase(reuse);
        }
      }
      kept.push_back(std::move(p));
    }
    stale.insert(stale.end(), emptied.begin(), emptied.end());
    plans = std::move(kept);
  }

  Json labels = labelsOf(*service);
  labels[kServiceNameLabel] = name;
  labels[kManagedByLabel] = kSliceControllerName;
  if ((*service).value("/spec/clusterIP"_json_pointer, std::string()) == "None") {
    labels["service.kubernetes.io/headless"] = "";
  }
  Json owner = Json::array({{{"apiVersion", "v1"}, {"kind", "Service"}, {"name", name}, {"uid", uid},
                             {"controller", true}, {"blockOwnerDeletion", true}}});
  for (const auto& p : plans) {
    if (p.current && arrayOf(*p.current, "endpoints") == p.endpoints && arrayOf(*p.current, "ports") == p.ports &&
        labelsOf(*p.current) == labels) {
      continue;
    }
    Json slice = p.current ? *p.current
                           : Json{{"apiVersion", "discovery.k8s.io/v1"},
                                  {"kind", "EndpointSlice"},
                                  {"metadata", {{"generateName", name + "-"}, {"namespace", ns}}}};
    Json& md = slice["metadata"];
    md["labels"] = labels;
    md["ownerReferences"] = owner;
    if (!md.contains("annotations") || !md["annotations"].is_object()) md["annotations"] = Json::object();
    if (trigger) {
      md["annotations"][kTriggerTimeAnnotation] = formatRfc3339Nano(*trigger);
    } else {
      md["annotations"].erase(kTriggerTimeAnnotation);
    }
    slice["addressType"] = p.addressType;
    slice["endpoints"] = p.endpoints;
    slice["ports"] = p.ports;
    auto r = p.current ? ctx_.client.update(kSlices, ns, slice) : ctx_.client.create(kSlices, ns, slice);
    if (!r) return r.error();
    wrote(key, *r, false);
  }
  for (const auto& s : stale) {
    if (auto r = removeSlice(*s); !r) return r;
  }
  triggers_.publish(std::move(change));
  return okResult();
}

}  // namespace sluice::controllers
