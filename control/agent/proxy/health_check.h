// HealthCheckServer: the healthCheckNodePort of externalTrafficPolicy=Local
// Services (kube-proxy's pkg/proxy/healthcheck). A cloud load balancer
// probes GET / on that port of every node and sends traffic only to nodes
// answering 200, i.e. nodes with a local endpoint: without it, an eTP=Local
// LoadBalancer blackholes the share of clients it sends to nodes without
// one. Mode-neutral: fed from the ServiceDiffs the agent applies.
//
// Answer (kube-proxy's shape): 200 with
//   {"service":{"namespace":"default","name":"web"},"localEndpoints":2,
//    "serviceProxyHealthy":true}
// when the service has a ready (or, with none ready, terminating) local
// endpoint; 503 with localEndpoints 0 otherwise. One listening socket per
// port on every address (0.0.0.0 and [::]); several service ports sharing a
// healthCheckNodePort (one Kubernetes Service) are summed.
//
// Threading: update() from the agent's sync thread; one server thread
// answers (poll over the listeners, one short request per connection).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "dataplane/result.h"
#include "dataplane/service_diff.h"

namespace sluice::agent {

class HealthCheckServer {
 public:
  // `bindAddress`: "" for every address (a node's real server), or one
  // address (tests on loopback).
  explicit HealthCheckServer(std::string bindAddress = "");
  ~HealthCheckServer();
  HealthCheckServer(const HealthCheckServer&) = delete;
  HealthCheckServer& operator=(const HealthCheckServer&) = delete;

  // full: `diff` is every service (start, resync). Opens and closes ports
  // as services come and go; a port that cannot be bound is reported and
  // retried on the next update.
  Result<void> update(const ServiceDiff& diff, bool full);
  std::set<uint16_t> ports() const;
  // Local endpoints counted for a port now (-1: no such port).
  int localEndpoints(uint16_t port) const;

 private:
  struct Port {
    int fd = -1;
    std::string ns, name;
    std::map<ServiceKey, int> local;  // per service port
  };
  void serve();
  void answer(int client);
  Result<void> reconcile();

  const std::string bindAddress_;
  mutable std::mutex mu_;
  std::map<ServiceKey, std::pair<uint16_t, int>> services_;  // key -> (port, local endpoints)
  std::map<uint16_t, Port> ports_;
  int wake_[2] = {-1, -1};  // self-pipe: the thread re-reads ports_ / stops
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace sluice::agent
