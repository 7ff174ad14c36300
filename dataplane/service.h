// The mode-independent service model (DESIGN.md "The service model").
//
// One Service here is one *service port* of a Kubernetes Service, as in
// kube-proxy's ServicePortName: "default/web:http". A Kubernetes Service with
// two ports is two Services here, because each port has its own target port
// and so its own backend set. All frontends of a Service share its protocol.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/ip_address.h"
#include "dataplane/result.h"

namespace sluice {

enum class FrontendScope : uint8_t {
  kClusterIp,     // spec.clusterIP(s)
  kNodePort,      // every node address, port in the NodePort range
  kLoadBalancer,  // status.loadBalancer.ingress[].ip
  kExternalIp,    // spec.externalIPs
};

struct Frontend {
  IpAddress address;
  uint16_t port = 0;  // host order, 1-65535
  Protocol protocol = Protocol::kTcp;
  FrontendScope scope = FrontendScope::kClusterIp;

  friend auto operator<=>(const Frontend&, const Frontend&) = default;
};

enum class BackendState : uint8_t {
  kActive,       // ready: takes new connections
  kTerminating,  // keeps existing flows; new ones only if nothing is active
  kQuarantined,  // failing health checks: keeps nothing new, existing flows drain
};

struct Backend {
  IpAddress address;
  uint16_t port = 0;    // host order, 1-65535
  uint16_t weight = 1;  // relative share for Maglev; 0 is invalid
  BackendState state = BackendState::kActive;
  bool nodeLocal = false;  // runs on this node (for Local traffic policies)

  friend auto operator<=>(const Backend&, const Backend&) = default;
};

enum class TrafficPolicy : uint8_t { kCluster, kLocal };
enum class LbAlgorithm : uint8_t { kRandom, kMaglev };

struct SessionAffinity {
  bool clientIp = false;
  // Kubernetes' default for sessionAffinityConfig.clientIP.timeoutSeconds
  // (3 hours); the API allows 1..86400.
  uint32_t timeoutSeconds = 10800;

  friend auto operator<=>(const SessionAffinity&, const SessionAffinity&) = default;
};

struct ServiceKey {
  std::string ns;
  std::string name;
  std::string port;  // the service port's name; may be empty for single-port services

  std::string toString() const;  // "ns/name:port", or "ns/name" when port is empty
  friend auto operator<=>(const ServiceKey&, const ServiceKey&) = default;
};

// Maglev table size used when a Service does not set one: prime, >= 100x the
// backends of large services so one backend change moves ~1% of other slots.
inline constexpr uint32_t kDefaultMaglevTableSize = 65537;

struct Service {
  ServiceKey key;
  Protocol protocol = Protocol::kTcp;  // TCP, UDP or SCTP
  std::vector<Frontend> frontends;
  std::vector<Backend> backends;
  SessionAffinity affinity;
  TrafficPolicy externalPolicy = TrafficPolicy::kCluster;  // NodePort/LB/externalIP
  TrafficPolicy internalPolicy = TrafficPolicy::kCluster;  // ClusterIP
  LbAlgorithm algorithm = LbAlgorithm::kRandom;
  uint32_t maglevTableSize = kDefaultMaglevTableSize;
  // spec.loadBalancerSourceRanges: clients allowed to reach the LoadBalancer
  // frontends (empty: everyone). Other scopes are not restricted, as in
  // kube-proxy.
  std::vector<IpPrefix> sourceRanges;
  // spec.healthCheckNodePort (eTP=Local LoadBalancers; 0: none): where the
  // agent answers whether this node has local endpoints.
  uint16_t healthCheckNodePort = 0;
  // Per-Service settings for one mode, from the Service's annotations
  // sluice.io/<mode>-<name> and sluice.dev/<mode>-<name>, keyed
  // "<mode>-<name>" ("ipvs-scheduler" -> "wlc"). The translator copies them
  // without knowing any mode; each mode reads its own keys and says what it
  // cannot use. Annotations the translator itself interprets are not here.
  std::map<std::string, std::string> modeOptions;

  // The one home of the rules for which backends take new flows, used by
  // every mode. A backend set is the backends of one address family (all
  // families when unset), node-local ones only under a Local policy, split
  // into active and terminating (as indices into `backends`, in order);
  // quarantined backends are in neither. New flows go to the active ones,
  // or to the terminating ones when none is active (Kubernetes' terminating
  // fallback); existing flows to a terminating backend keep it.
  struct BackendSet {
    std::vector<size_t> active;
    std::vector<size_t> terminating;
    const std::vector<size_t>& forNewFlows() const { return active.empty() ? terminating : active; }
  };
  BackendSet backendSet(bool local, std::optional<IpFamily> family = std::nullopt) const;
  // Whether the Local traffic policy applies to frontends of `scope`: the
  // internal policy for ClusterIPs, the external one for every other scope.
  bool isLocal(FrontendScope scope) const;

  // Backends a *new* flow from `scope` may go to (backendSet().forNewFlows()).
  std::vector<Backend> eligibleBackends(FrontendScope scope) const;

  friend bool operator==(const Service&, const Service&) = default;
};

// Checks one Service on its own: names, ports, protocols, weights, sizes.
// The message names the field, e.g. "service default/web:http: backends[2].port: must be 1-65535".
Result<void> validate(const Service& service);

// All services a node must program, keyed by ServiceKey. A frontend
// (address, port, protocol) belongs to at most one Service.
class ServiceTable {
 public:
  using Map = std::map<ServiceKey, Service>;

  // Inserts or replaces. Fails (and changes nothing) if the service is invalid
  // or one of its frontends is owned by another service.
  Result<void> upsert(Service service);
  // Returns false if no such service.
  bool erase(const ServiceKey& key);

  const Service* find(const ServiceKey& key) const;
  // The service owning this frontend, or nullptr.
  const Service* findByFrontend(const IpAddress& addr, uint16_t port, Protocol proto) const;

  size_t size() const { return services_.size(); }
  bool empty() const { return services_.empty(); }
  Map::const_iterator begin() const { return services_.begin(); }
  Map::const_iterator end() const { return services_.end(); }

  friend bool operator==(const ServiceTable& a, const ServiceTable& b) {
    return a.services_ == b.services_;
  }

 private:
  struct FrontendKey {
    IpAddress address;
    uint16_t port;
    Protocol protocol;
    friend auto operator<=>(const FrontendKey&, const FrontendKey&) = default;
  };

  Map services_;
  std::map<FrontendKey, ServiceKey> frontendOwner_;
};

}  // namespace sluice
