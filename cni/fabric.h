// The node fabric: how a pod on one node reaches a pod on another by IP.
// Each node owns a pod CIDR (the `ipam.subnet` its sluice-cni config hands
// out); the fabric gives every node a route to every other node's CIDR.
//
// Two modes, both IPv4:
//   kRoutes  plain routes: "<peer pod CIDR> via <peer underlay address>".
//            Needs L2 adjacency (or a router that knows the CIDRs).
//   kVxlan   flannel-style overlay: a VXLAN device per node, statically
//            programmed (FDB + neighbour entries, no learning, no multicast):
//            "<peer CIDR> via <peer CIDR network address> dev slvx0 onlink".
//            Works over any underlay that routes node addresses; pods need
//            an MTU 50 bytes smaller than the underlay's.
//
// addPeerRoutes() is the per-node primitive (what the agent runs on a real
// node for each peer Node object). Fabric::create() builds a whole simulated
// cluster on one machine for tests and the lab: a hub namespace with a bridge,
// and an "uplink0" veth from each node namespace into it.
#pragma once

#include <string>
#include <vector>

#include "cni/ip_prefix.h"
#include "dataplane/ip_address.h"
#include "dataplane/result.h"

namespace sluice::cni {

enum class FabricMode { kRoutes, kVxlan };

// The VXLAN device each node gets in kVxlan mode, and its VNI. The UDP port
// is IANA's 4789.
inline constexpr std::string_view kVxlanDevice = "slvx0";
inline constexpr uint32_t kVxlanVni = 4242;
// VXLAN over IPv4 adds 50 bytes (outer Ethernet 14 + IP 20 + UDP 8 + VXLAN 8).
inline constexpr int kVxlanOverhead = 50;

struct FabricPeer {
  IpPrefix podCidr;
  IpAddress underlay;  // the peer node's address on the underlay
  uint32_t index = 0;  // the peer's node index: derives its VXLAN MAC
};

// The VXLAN MAC of node `index` (locally administered, 02:53:4c:..: "SL").
std::string vxlanMac(uint32_t index);

// In the calling thread's namespace (the node): enables forwarding and, for
// kVxlan, creates slvx0 over `underlayDevice` with `self`'s address and MAC.
Result<void> setUpNode(FabricMode mode, const FabricPeer& self, const std::string& underlayDevice);
// In the node's namespace: routes (and VXLAN entries) for each peer's CIDR.
Result<void> addPeerRoutes(FabricMode mode, const std::vector<FabricPeer>& peers,
                           const std::string& underlayDevice);

struct SimNode {
  std::string netnsPath;  // the node's namespace, created by the caller
  IpPrefix podCidr;
};

struct FabricOptions {
  FabricMode mode = FabricMode::kRoutes;
  // A namespace the fabric creates for its bridge (removed with the Fabric).
  std::string hubNetnsName;
  // Node i gets host address i+1 of this prefix on its uplink0.
  IpPrefix underlay = *IpPrefix::parse("172.31.0.0/24");
};

// A simulated multi-node fabric. Destroying it removes the hub namespace,
// which takes every uplink (and so every route through it) with it.
class Fabric {
 public:
  static Result<Fabric> create(const FabricOptions& options, const std::vector<SimNode>& nodes);
  Fabric(Fabric&& other) noexcept;
  Fabric& operator=(Fabric&&) = delete;
  Fabric(const Fabric&) = delete;
  Fabric& operator=(const Fabric&) = delete;
  ~Fabric();

  IpAddress nodeAddress(size_t index) const { return addresses_.at(index); }

 private:
  Fabric(std::string hub, std::vector<IpAddress> addresses)
      : hub_(std::move(hub)), addresses_(std::move(addresses)) {}
  std::string hub_;  // empty once moved from
  std::vector<IpAddress> addresses_;
};

}  // namespace sluice::cni
