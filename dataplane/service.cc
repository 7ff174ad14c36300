#include "dataplane/service.h"

#include "dataplane/maglev.h"

#include <algorithm>
#include <set>
#include <tuple>

namespace sluice {

std::string ServiceKey::toString() const {
  std::string s = ns + "/" + name;
  if (!port.empty()) s += ":" + port;
  return s;
}

Service::BackendSet Service::backendSet(bool local, std::optional<IpFamily> family) const {
  BackendSet set;
  for (size_t i = 0; i < backends.size(); ++i) {
    const Backend& b = backends[i];
    if ((family && b.address.family() != *family) || (local && !b.nodeLocal)) continue;
    if (b.state == BackendState::kActive) set.active.push_back(i);
    if (b.state == BackendState::kTerminating) set.terminating.push_back(i);
  }
  return set;
}

bool Service::isLocal(FrontendScope scope) const {
  return (scope == FrontendScope::kClusterIp ? internalPolicy : externalPolicy) == TrafficPolicy::kLocal;
}

std::vector<Backend> Service::eligibleBackends(FrontendScope scope) const {
  const BackendSet set = backendSet(isLocal(scope));
  std::vector<Backend> out;
  for (size_t i : set.forNewFlows()) out.push_back(backends[i]);
  return out;
}

namespace {

// DNS-1123 label as Kubernetes uses for namespaces and service names; port
// names are IANA_SVC_NAME-like but we only need them non-weird here.
bool isDnsLabel(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return s.front() != '-' && s.back() != '-';
}

}  // namespace

Result<void> validate(const Service& s) {
  const std::string where = "service " + s.key.toString();
  auto fail = [&](const std::string& field, const std::string& why) -> Result<void> {
    return Error::invalid(where + ": " + field + ": " + why);
  };
  if (!isDnsLabel(s.key.ns)) return fail("namespace", "must be a DNS-1123 label");
  if (!isDnsLabel(s.key.name)) return fail("name", "must be a DNS-1123 label");
  if (s.protocol != Protocol::kTcp && s.protocol != Protocol::kUdp &&
      s.protocol != Protocol::kSctp) {
    return fail("protocol", "must be TCP, UDP or SCTP");
  }
  std::set<std::tuple<IpAddress, uint16_t>> seenFrontends;
  for (size_t i = 0; i < s.frontends.size(); ++i) {
    const Frontend& f = s.frontends[i];
    const std::string field = "frontends[" + std::to_string(i) + "]";
    if (f.port == 0) return fail(field + ".port", "must be 1-65535");
    if (f.protocol != s.protocol) {
      return fail(field + ".protocol", std::string(toString(f.protocol)) +
                                           " differs from the service's " +
                                           std::string(toString(s.protocol)));
    }
    if (!seenFrontends.emplace(f.address, f.port).second) {
      return fail(field, f.address.toString() + ":" + std::to_string(f.port) + " listed twice");
    }
  }
  std::set<std::tuple<IpAddress, uint16_t>> seenBackends;
  for (size_t i = 0; i < s.backends.size(); ++i) {
    const Backend& b = s.backends[i];
    const std::string field = "backends[" + std::to_string(i) + "]";
    if (b.port == 0) return fail(field + ".port", "must be 1-65535");
    if (b.weight == 0) return fail(field + ".weight", "must be at least 1");
    if (!seenBackends.emplace(b.address, b.port).second) {
      return fail(field, b.address.toString() + ":" + std::to_string(b.port) + " listed twice");
    }
  }
  if (s.affinity.clientIp && (s.affinity.timeoutSeconds == 0 || s.affinity.timeoutSeconds > 86400)) {
    return fail("affinity.timeoutSeconds", "must be 1-86400 (Kubernetes' limit)");
  }
  if (s.algorithm == LbAlgorithm::kMaglev) {
    // The builder owns the size rules (prime, bounded); reuse its check.
    if (auto b = MaglevBuilder::create(s.maglevTableSize); !b) {
      return fail("maglevTableSize", b.error().message);
    }
    if (s.backends.size() > s.maglevTableSize) {
      return fail("maglevTableSize", "smaller than the number of backends (" +
                                         std::to_string(s.backends.size()) + ")");
    }
  }
  return okResult();
}

Result<void> ServiceTable::upsert(Service service) {
  if (auto r = validate(service); !r) return r;
  for (const Frontend& f : service.frontends) {
    auto it = frontendOwner_.find({f.address, f.port, f.protocol});
    if (it != frontendOwner_.end() && it->second != service.key) {
      return Error::exists("service " + service.key.toString() + ": frontend " +
                           f.address.toString() + ":" + std::to_string(f.port) + "/" +
                           std::string(toString(f.protocol)) + " already belongs to service " +
                           it->second.toString());
    }
  }
  // Validated: now change state, old frontends first.
  if (auto old = services_.find(service.key); old != services_.end()) {
    for (const Frontend& f : old->second.frontends) {
      frontendOwner_.erase({f.address, f.port, f.protocol});
    }
  }
  for (const Frontend& f : service.frontends) {
    frontendOwner_[{f.address, f.port, f.protocol}] = service.key;
  }
  ServiceKey key = service.key;
  services_.insert_or_assign(std::move(key), std::move(service));
  return okResult();
}

bool ServiceTable::erase(const ServiceKey& key) {
  auto it = services_.find(key);
  if (it == services_.end()) return false;
  for (const Frontend& f : it->second.frontends) frontendOwner_.erase({f.address, f.port, f.protocol});
  services_.erase(it);
  return true;
}

const Service* ServiceTable::find(const ServiceKey& key) const {
  auto it = services_.find(key);
  return it == services_.end() ? nullptr : &it->second;
}

const Service* ServiceTable::findByFrontend(const IpAddress& addr, uint16_t port,
                                            Protocol proto) const {
  auto it = frontendOwner_.find({addr, port, proto});
  return it == frontendOwner_.end() ? nullptr : find(it->second);
}

}  // namespace sluice
