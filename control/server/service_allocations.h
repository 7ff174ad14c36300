// ServiceAllocations: the server-side allocation of Service addresses and
// ports, kept consistent with the stored Services.
//   - spec.clusterIP(s): from the service CIDR (explicit honoured, "None" =
//     headless, none for ExternalName);
//   - spec.ports[*].nodePort: from the node port range for NodePort and
//     LoadBalancer Services (explicit honoured, collisions rejected);
//   - status.loadBalancer.ingress: one address from the load balancer pool
//     for LoadBalancer Services (spec.loadBalancerIP honoured if in the pool;
//     an exhausted pool leaves the Service <pending>, as without a cloud).
// assign() works out a write's allocations and returns a Change; the caller
// commits it once the store write succeeded (freeing what the old object
// held and the new one does not) or rolls it back. State lives in memory and
// is rebuilt from the stored Services at start, so it always matches the
// store (a crash between assign and the write loses nothing durable).
// Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "control/api/field_errors.h"
#include "control/api/proto/core.pb.h"
#include "control/server/allocators.h"

namespace sluice::server {

struct ServiceNetworkOptions {
  std::string serviceCidr = "10.96.0.0/12";
  int nodePortFirst = 30000;
  int nodePortLast = 32767;
  // RFC 5737 TEST-NET-1: never routed, safe as a default that users replace.
  std::string loadBalancerPool = "192.0.2.0/24";
};

class ServiceAllocations {
 public:
  static Result<std::unique_ptr<ServiceAllocations>> create(const ServiceNetworkOptions& options);

  struct Change {
    std::vector<std::string> ipsTaken, ipsFreed, lbTaken, lbFreed;
    std::vector<int> portsTaken, portsFreed;
  };

  // Fills the Service's allocated fields for a create (old == nullptr) or an
  // update. Problems go to `errs` (field paths and messages as Kubernetes);
  // with errors the Change is already rolled back.
  Change assign(api::Service& svc, const api::Service* old, api::FieldErrors& errs);
  void commit(const Change& change);
  void rollback(const Change& change);
  // A deleted Service gives everything back.
  void release(const api::Service& svc);
  // Marks a stored Service's allocations at start; returns false if one was
  // already taken by another Service (reported, not fatal).
  bool restore(const api::Service& svc);

  // The first service address, for the `kubernetes` Service.
  std::string firstServiceIp() const;
  size_t freeServiceIps() const;
  size_t freeNodePorts() const;
  size_t freeLoadBalancerIps() const;

 private:
  ServiceAllocations(IpAllocator ips, PortAllocator ports, IpAllocator lb)
      : ips_(std::move(ips)), ports_(std::move(ports)), lb_(std::move(lb)) {}

  void releaseLocked(const Change& c, bool taken);

  mutable std::mutex mu_;
  IpAllocator ips_;
  PortAllocator ports_;
  IpAllocator lb_;
};

}  // namespace sluice::server
