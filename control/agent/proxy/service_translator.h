// ServiceTranslator: a Kubernetes Service and its EndpointSlices (as JSON,
// the way the informers deliver them) to the dataplane Services a node
// programs, by kube-proxy's rules (pkg/proxy/service.go, endpoints.go,
// topology.go):
//   - one dataplane Service per service port ("ns/name:port"), protocol
//     TCP/UDP/SCTP from the port;
//   - frontends: spec.clusterIPs (or spec.clusterIP), the NodePort on every
//     configured node address (kube-proxy's --nodeport-addresses), each
//     status.loadBalancer.ingress[].ip (not those with ipMode Proxy), each
//     spec.externalIPs entry — only addresses of a family the service has a
//     ClusterIP of, as kube-proxy's per-family proxiers do;
//   - backends: endpoints of the slices labelled kubernetes.io/service-name,
//     port taken from the slice port of the same name and protocol; ready ->
//     active, serving && terminating && !ready -> terminating, otherwise left
//     out; nodeLocal when endpoint.nodeName is this node; duplicates across
//     slices collapse to the best state (active over terminating);
//   - sessionAffinity ClientIP with its timeout, externalTrafficPolicy and
//     internalTrafficPolicy;
//   - ExternalName and headless (clusterIP None) services program nothing.
// The load-balancing algorithm is random unless the Service carries the
// annotation sluice.io/lb-algorithm: maglev (sluice.io/maglev-table-size
// picks a prime table size), Cilium's per-service switch. Other
// sluice.io/<mode>-<name> (or sluice.dev/...) annotations are copied into
// Service::modeOptions for the mode to read ("ipvs-scheduler"); this file
// knows no mode. spec.loadBalancerSourceRanges and, under eTP=Local,
// spec.healthCheckNodePort are carried as they are.
//
// Pure: no I/O, no clock. Thread-compatible (const methods only).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dataplane/ip_address.h"
#include "dataplane/service.h"

namespace sluice::agent {

using Json = nlohmann::json;

inline constexpr const char* kServiceNameLabel = "kubernetes.io/service-name";
inline constexpr const char* kLbAlgorithmAnnotation = "sluice.io/lb-algorithm";
inline constexpr const char* kMaglevTableSizeAnnotation = "sluice.io/maglev-table-size";

struct TranslatorOptions {
  // This node's name, as pods' spec.nodeName and endpoints' nodeName.
  std::string nodeName;
  // Addresses NodePorts are served on (kube-proxy --nodeport-addresses).
  std::vector<IpAddress> nodeAddresses;
};

struct Translation {
  std::vector<Service> services;  // one per service port, in spec.ports order
  // What was left out and why ("default/web: externalIPs[1] "x": not an IP").
  std::vector<std::string> warnings;
};

class ServiceTranslator {
 public:
  explicit ServiceTranslator(TranslatorOptions options) : options_(std::move(options)) {}

  // `slices` are the EndpointSlices labelled with this service's name (other
  // slices are ignored, so the caller may pass a superset of the namespace's).
  Translation translate(const Json& service, const std::vector<const Json*>& slices) const;

  const TranslatorOptions& options() const { return options_; }

 private:
  TranslatorOptions options_;
};

// The service name an EndpointSlice belongs to (its kubernetes.io/service-name
// label), or "" if it has none.
std::string sliceServiceName(const Json& slice);

}  // namespace sluice::agent
