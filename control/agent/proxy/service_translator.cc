#include "control/agent/proxy/service_translator.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string_view>

namespace sluice::agent {

namespace {

const Json& field(const Json& obj, const char* name) {
  static const Json kNull;
  if (!obj.is_object()) return kNull;
  auto it = obj.find(name);
  return it == obj.end() ? kNull : *it;
}

std::string str(const Json& obj, const char* name) {
  const Json& v = field(obj, name);
  return v.is_string() ? v.get<std::string>() : std::string();
}

// A JSON boolean, or nullopt when absent or null (EndpointConditions' nil).
std::optional<bool> optBool(const Json& obj, const char* name) {
  const Json& v = field(obj, name);
  if (v.is_boolean()) return v.get<bool>();
  return std::nullopt;
}

std::optional<int64_t> optInt(const Json& obj, const char* name) {
  const Json& v = field(obj, name);
  if (v.is_number_integer()) return v.get<int64_t>();
  return std::nullopt;
}

// "TCP" when empty, as the API server defaults it.
std::optional<Protocol> parseProtocol(const std::string& p) {
  if (p.empty() || p == "TCP") return Protocol::kTcp;
  if (p == "UDP") return Protocol::kUdp;
  if (p == "SCTP") return Protocol::kSctp;
  return std::nullopt;
}

std::vector<std::string> strings(const Json& v) {
  std::vector<std::string> out;
  if (!v.is_array()) return out;
  for (const Json& e : v) {
    if (e.is_string()) out.push_back(e.get<std::string>());
  }
  return out;
}

int stateRank(BackendState s) {
  switch (s) {
    case BackendState::kActive: return 0;
    case BackendState::kTerminating: return 1;
    case BackendState::kQuarantined: return 2;
  }
  return 3;
}

}  // namespace

std::string sliceServiceName(const Json& slice) {
  return str(field(field(slice, "metadata"), "labels"), kServiceNameLabel);
}

Translation ServiceTranslator::translate(const Json& service,
                                         const std::vector<const Json*>& slices) const {
  Translation out;
  const Json& meta = field(service, "metadata");
  const Json& spec = field(service, "spec");
  const std::string ns = str(meta, "namespace");
  const std::string name = str(meta, "name");
  const std::string where = ns + "/" + name;
  auto warn = [&](const std::string& what) { out.warnings.push_back(where + ": " + what); };

  const std::string type = str(spec, "type");
  if (type == "ExternalName") return out;

  // ClusterIPs: the families the service has; kube-proxy programs nothing
  // of a family the service has no ClusterIP of.
  std::vector<std::string> clusterIps = strings(field(spec, "clusterIPs"));
  if (clusterIps.empty() && !str(spec, "clusterIP").empty()) {
    clusterIps.push_back(str(spec, "clusterIP"));
  }
  if (clusterIps.empty() || clusterIps.front() == "None") return out;  // headless or unallocated
  std::vector<IpAddress> vips;
  std::set<IpFamily> families;
  for (size_t i = 0; i < clusterIps.size(); ++i) {
    auto a = IpAddress::parse(clusterIps[i]);
    if (!a) {
      warn("spec.clusterIPs[" + std::to_string(i) + "] \"" + clusterIps[i] + "\": not an IP");
      continue;
    }
    vips.push_back(*a);
    families.insert(a->family());
  }
  if (vips.empty()) return out;

  auto collect = [&](const std::vector<std::string>& texts, const std::string& fieldName) {
    std::vector<IpAddress> addrs;
    for (size_t i = 0; i < texts.size(); ++i) {
      auto a = IpAddress::parse(texts[i]);
      const std::string f = fieldName + "[" + std::to_string(i) + "] \"" + texts[i] + "\"";
      if (!a) {
        warn(f + ": not an IP");
      } else if (!families.count(a->family())) {
        warn(f + ": no ClusterIP of its family");
      } else {
        addrs.push_back(*a);
      }
    }
    return addrs;
  };
  const std::vector<IpAddress> externalIps =
      collect(strings(field(spec, "externalIPs")), "spec.externalIPs");
  std::vector<IpAddress> lbIps;
  if (type == "LoadBalancer") {
    std::vector<std::string> texts;
    const Json& ingress = field(field(field(service, "status"), "loadBalancer"), "ingress");
    if (ingress.is_array()) {
      for (const Json& ing : ingress) {
        // ipMode Proxy: the load balancer proxies to NodePorts itself, so
        // its IP must not be captured on the node (KEP-1860).
        if (str(ing, "ip").empty() || str(ing, "ipMode") == "Proxy") continue;
        texts.push_back(str(ing, "ip"));
      }
    }
    lbIps = collect(texts, "status.loadBalancer.ingress");
  }
  const bool nodePorts = type == "NodePort" || type == "LoadBalancer";

  SessionAffinity affinity;
  if (str(spec, "sessionAffinity") == "ClientIP") {
    affinity.clientIp = true;
    auto t = optInt(field(field(spec, "sessionAffinityConfig"), "clientIP"), "timeoutSeconds");
    if (t && *t >= 1 && *t <= 86400) affinity.timeoutSeconds = static_cast<uint32_t>(*t);
  }
  const TrafficPolicy externalPolicy =
      str(spec, "externalTrafficPolicy") == "Local" ? TrafficPolicy::kLocal : TrafficPolicy::kCluster;
  const TrafficPolicy internalPolicy =
      str(spec, "internalTrafficPolicy") == "Local" ? TrafficPolicy::kLocal : TrafficPolicy::kCluster;
  const Json& annotations = field(meta, "annotations");
  LbAlgorithm algorithm = LbAlgorithm::kRandom;
  uint32_t maglevSize = kDefaultMaglevTableSize;
  if (str(annotations, kLbAlgorithmAnnotation) == "maglev") {
    algorithm = LbAlgorithm::kMaglev;
    const std::string size = str(annotations, kMaglevTableSizeAnnotation);
    if (!size.empty()) {
      if (size.size() <= 9 && size.find_first_not_of("0123456789") == std::string::npos) {
        maglevSize = static_cast<uint32_t>(std::stoul(size));
      } else {
        warn(std::string(kMaglevTableSizeAnnotation) + " \"" + size + "\": not a number");
      }
    }
  }

  // loadBalancerSourceRanges: only on LoadBalancer frontends (kube-proxy);
  // a bad entry is left out with a warning, never widened to "everyone".
  std::vector<IpPrefix> sourceRanges;
  {
    const std::vector<std::string> texts = strings(field(spec, "loadBalancerSourceRanges"));
    for (size_t i = 0; i < texts.size(); ++i) {
      auto p = IpPrefix::parse(texts[i]);
      if (!p) {
        warn("spec.loadBalancerSourceRanges[" + std::to_string(i) + "]: " + p.error().message);
      } else {
        sourceRanges.push_back(*p);
      }
    }
  }
  uint16_t healthCheckNodePort = 0;
  if (auto h = optInt(spec, "healthCheckNodePort"); h && *h >= 1 && *h <= 65535 &&
                                                    externalPolicy == TrafficPolicy::kLocal) {
    healthCheckNodePort = static_cast<uint16_t>(*h);
  }
  // Mode options: sluice.io/<mode>-<name> and sluice.dev/<mode>-<name>
  // annotations other than the ones read above, keyed without the prefix.
  std::map<std::string, std::string> modeOptions;
  if (annotations.is_object()) {
    for (const auto& [k, v] : annotations.items()) {
      if (!v.is_string() || k == kLbAlgorithmAnnotation || k == kMaglevTableSizeAnnotation) continue;
      for (const char* prefix : {"sluice.io/", "sluice.dev/"}) {
        const std::string_view pre(prefix);
        if (k.size() > pre.size() && k.compare(0, pre.size(), pre) == 0 &&
            k.find('-', pre.size()) != std::string::npos) {
          modeOptions[k.substr(pre.size())] = v.get<std::string>();
        }
      }
    }
  }

  // The service's slices, by name.
  std::vector<const Json*> own;
  for (const Json* s : slices) {
    if (s != nullptr && sliceServiceName(*s) == name && str(field(*s, "metadata"), "namespace") == ns) {
      own.push_back(s);
    }
  }

  const Json& ports = field(spec, "ports");
  if (!ports.is_array()) return out;
  for (size_t pi = 0; pi < ports.size(); ++pi) {
    const Json& port = ports[pi];
    const std::string portName = str(port, "name");
    const std::string portWhere = "spec.ports[" + std::to_string(pi) + "]";
    auto proto = parseProtocol(str(port, "protocol"));
    if (!proto) {
      warn(portWhere + ": protocol \"" + str(port, "protocol") + "\" not supported");
      continue;
    }
    auto number = optInt(port, "port");
    if (!number || *number < 1 || *number > 65535) {
      warn(portWhere + ".port: must be 1-65535");
      continue;
    }
    Service svc;
    svc.key = ServiceKey{ns, name, portName};
    svc.protocol = *proto;
    svc.affinity = affinity;
    svc.externalPolicy = externalPolicy;
    svc.internalPolicy = internalPolicy;
    svc.algorithm = algorithm;
    svc.maglevTableSize = maglevSize;
    svc.sourceRanges = sourceRanges;
    svc.healthCheckNodePort = healthCheckNodePort;
    svc.modeOptions = modeOptions;

    const auto svcPort = static_cast<uint16_t>(*number);
    std::set<std::pair<IpAddress, uint16_t>> seen;
    auto addFrontend = [&](const IpAddress& a, uint16_t p, FrontendScope scope) {
      if (!seen.emplace(a, p).second) return;  // e.g. an externalIP equal to the LB IP
      svc.frontends.push_back(Frontend{a, p, *proto, scope});
    };
    for (const IpAddress& a : vips) addFrontend(a, svcPort, FrontendScope::kClusterIp);
    auto nodePort = optInt(port, "nodePort");
    if (nodePorts && nodePort && *nodePort >= 1 && *nodePort <= 65535) {
      for (const IpAddress& a : options_.nodeAddresses) {
        if (families.count(a.family())) {
          addFrontend(a, static_cast<uint16_t>(*nodePort), FrontendScope::kNodePort);
        }
      }
    }
    for (const IpAddress& a : lbIps) addFrontend(a, svcPort, FrontendScope::kLoadBalancer);
    for (const IpAddress& a : externalIps) addFrontend(a, svcPort, FrontendScope::kExternalIp);

    // Backends: address:port -> best state seen across slices.
    std::map<std::pair<IpAddress, uint16_t>, Backend> backends;
    for (const Json* slice : own) {
      const std::string addressType = str(*slice, "addressType");
      if (addressType != "IPv4" && addressType != "IPv6") continue;  // FQDN: not proxied
      // The slice port serving this service port: same name, same protocol.
      std::optional<uint16_t> target;
      const Json& slicePorts = field(*slice, "ports");
      if (slicePorts.is_array()) {
        for (const Json& sp : slicePorts) {
          if (str(sp, "name") != portName) continue;
          auto spProto = parseProtocol(str(sp, "protocol"));
          if (!spProto || *spProto != *proto) continue;
          auto n = optInt(sp, "port");
          if (n && *n >= 1 && *n <= 65535) target = static_cast<uint16_t>(*n);
          break;
        }
      }
      if (!target) continue;
      const Json& endpoints = field(*slice, "endpoints");
      if (!endpoints.is_array()) continue;
      for (const Json& ep : endpoints) {
        const std::vector<std::string> addrs = strings(field(ep, "addresses"));
        if (addrs.empty()) continue;
        // kube-proxy uses the first address only (the others are reserved
        // for future use by the API).
        auto a = IpAddress::parse(addrs.front());
        if (!a) {
          warn("EndpointSlice " + str(field(*slice, "metadata"), "name") + ": endpoint \"" +
               addrs.front() + "\": not an IP");
          continue;
        }
        if (!families.count(a->family())) continue;
        const Json& cond = field(ep, "conditions");
        // Nil conditions: ready unknown means ready; serving defaults to
        // ready; terminating defaults to false (discovery/v1 API docs).
        const bool ready = optBool(cond, "ready").value_or(true);
        const bool serving = optBool(cond, "serving").value_or(ready);
        const bool terminating = optBool(cond, "terminating").value_or(false);
        BackendState state;
        if (ready) {
          state = BackendState::kActive;
        } else if (serving && terminating) {
          state = BackendState::kTerminating;
        } else {
          continue;
        }
        Backend b;
        b.address = *a;
        b.port = *target;
        b.state = state;
        b.nodeLocal = !options_.nodeName.empty() && str(ep, "nodeName") == options_.nodeName;
        auto [it, inserted] = backends.emplace(std::make_pair(b.address, b.port), b);
        if (!inserted && stateRank(b.state) < stateRank(it->second.state)) it->second = b;
      }
    }
    for (auto& [k, b] : backends) svc.backends.push_back(b);
    if (algorithm == LbAlgorithm::kMaglev && svc.backends.size() > svc.maglevTableSize) {
      warn(portWhere + ": more backends than Maglev slots; using random selection");
      svc.algorithm = LbAlgorithm::kRandom;
    }
    out.services.push_back(std::move(svc));
  }
  return out;
}

}  // namespace sluice::agent
