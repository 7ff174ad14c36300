// The lab's network: one node namespace where the proxy mode under test runs,
// a client namespace and backend namespaces wired to it by veth pairs, and one
// echo server per backend namespace answering on every address it holds.
//
//   client netns: eth0 10.244.0.2/32 (inside the cluster CIDR, so no
//     masquerade), default via 169.254.1.1 (the node side, as Calico and
//     Cilium wire pods).
//   node netns: lo 192.168.77.1/32; per peer a veth with 169.254.1.1/32, a
//     route to the peer's addresses, forwarding on, rp_filter off.
//   backend netns b: eth0 with kIpsPerBackendNetns addresses 10.245.b.k/32.
//
// Service addresses (10.96.0.0/12) exist only in the mode's state, never on
// an interface. Every name carries the PID, every object is removed by the
// destructor (namespaces take their veths, routes, tc filters, rules and
// conntrack with them), and echo servers die with the lab process
// (PR_SET_PDEATHSIG) even if it is SIGKILLed.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

namespace sluice::lab {

// Runs `command` through /bin/sh; prints it with its status when it fails.
bool sh(const std::string& command);

// Moves the calling thread into a network namespace until destruction.
class ScopedSetns {
 public:
  explicit ScopedSetns(int netnsFd);
  ~ScopedSetns();
  ScopedSetns(const ScopedSetns&) = delete;
  ScopedSetns& operator=(const ScopedSetns&) = delete;
  bool ok() const { return ok_; }

 private:
  int original_ = -1;
  bool ok_ = false;
};

struct BackendNetns {
  std::string netnsName;
  int netnsFd = -1;
  std::string hostVeth;          // node side, in the node namespace
  std::vector<std::string> ips;  // 10.245.b.k
  pid_t echoPid = -1;
};

class LabTopology {
 public:
  static constexpr const char* kNodeIp = "192.168.77.1";
  static constexpr const char* kClientIp = "10.244.0.2";
  static constexpr const char* kClusterCidr = "10.244.0.0/16";
  static constexpr uint16_t kBackendPort = 8080;

  // backendNetns namespaces with ipsPerNetns addresses each.
  static std::unique_ptr<LabTopology> create(int backendNetns, int ipsPerNetns,
                                             std::string* error);
  ~LabTopology();
  LabTopology(const LabTopology&) = delete;
  LabTopology& operator=(const LabTopology&) = delete;

  const std::string& nodeNetns() const { return node_; }
  int nodeNetnsFd() const { return nodeFd_; }
  int clientNetnsFd() const { return clientFd_; }
  const std::string& clientNetns() const { return client_; }
  const std::string& clientHostVeth() const { return clientVeth_; }
  const std::vector<BackendNetns>& backends() const { return backends_; }
  // Every backend address, round-robin over the namespaces.
  std::vector<std::string> backendIps() const;

 private:
  LabTopology() = default;
  bool build(int backendNetns, int ipsPerNetns, std::string* error);
  bool addNetns(const std::string& name, int* fd);

  std::string prefix_;
  std::string node_;
  int nodeFd_ = -1;
  int clientFd_ = -1;
  std::string client_;
  std::string clientVeth_;
  std::vector<BackendNetns> backends_;
  std::vector<std::string> created_;  // netns names to delete, in creation order
  std::vector<int> fds_;
};

}  // namespace sluice::lab
