// The node the IPVS mode's vm tests run against: the netns suite's
// topology (a node namespace, pods on veths with echo servers; see
// tests/netns/topology.h) plus an uplink to an "outside" client namespace,
// and the real IpvsDatapath (virtual servers, dummy interface, nftables
// table, sysctls) in the node namespace, driven the way the agent drives
// it: sync() + claimServiceAddresses(full) at start, apply() +
// claimServiceAddresses() per change.
//
//   outside netns: eth0 192.168.88.2/24; 198.51.100.0/24 routed via the
//     node (a LoadBalancer IP is announced by a router, not ARP: the mode's
//     strict ARP keeps the node from answering for it)
//        | veth slipvN
//   node netns: 192.168.88.1/24 on the uplink, 192.168.77.1 on lo (the
//     netns topology's node address), sluice-ipvs test interface, IPVS
//   pods: client, web-a, web-b, web-c (echo servers on 8080)
//
// One node per test program (building it costs seconds under TCG); tests
// use distinct service addresses. Everything is named after the PID and
// removed at exit, pass or fail (the VM's root is a throwaway overlay too).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dataplane/service_diff.h"
#include "ipvs/ipvs_datapath.h"
#include "tests/netns/client.h"
#include "tests/netns/topology.h"

namespace sluice::ipvs::testing {

inline constexpr uint16_t kBackendPort = 8080;
inline constexpr const char* kUplinkIp = "192.168.88.1";
inline constexpr const char* kOutsideIp = "192.168.88.2";
inline const std::vector<std::string> kWebPods = {"web-a", "web-b", "web-c"};

struct IpvsNode {
  std::string error;  // why the node could not be built
  std::unique_ptr<netns::Topology> topo;
  std::string outsideNetns;
  int outsideFd = -1;
  std::string uplink;
  std::unique_ptr<netns::ScopedSetns> inNode;
  std::vector<netns::ChildProcess> servers;
  NodeConfig config;
  IpvsDatapathOptions options;
  std::unique_ptr<IpvsDatapath> dp;
  ServiceTable table;

  bool start();
  // The agent starting: create the datapath (adopting the kernel's
  // tables), full sync, claim the addresses.
  Result<void> startAgent();
  // The agent exiting: everything stays programmed.
  void stopAgent();
  // Programs (or reprograms) one service as the agent does.
  Result<void> put(const sluice::Service& svc);
  Result<void> remove(const sluice::ServiceKey& key);
  uint64_t counter(const std::string& name) const;
  ~IpvsNode();
};

// The node of this test program; built by an Environment before the tests.
IpvsNode& node();

IpAddress ip(const std::string& text);
Frontend frontend(const std::string& addr, uint16_t port, Protocol proto = Protocol::kTcp,
                  FrontendScope scope = FrontendScope::kClusterIp);
// Backends on kBackendPort of these pods (IPv4 unless v6), node-local.
std::vector<Backend> podBackends(const std::vector<std::string>& pods, bool v6 = false,
                                 BackendState state = BackendState::kActive);
sluice::Service service(const std::string& name, Protocol proto, std::vector<Frontend> frontends,
                        std::vector<Backend> backends);

netns::Placement pod(const std::string& name = "client");
netns::Placement host();
netns::Placement outside();

// Every answer succeeded; the distinct backends that gave them.
std::set<std::string> answeredBy(const std::vector<netns::Answer>& answers);
std::string join(const std::vector<netns::Answer>& answers);
std::string hostPort(const std::string& addr, uint16_t port);

}  // namespace sluice::ipvs::testing
