// The uplink `sluice up --mode=dpdk` makes for itself on a machine with no
// NIC to give DPDK (a laptop, a VM, CI): a veth pair whose node end
// sluice-dpdk takes (net_af_packet) and whose other end lives in a network
// namespace that stands for the network outside the node.
//
//   this namespace (the node)                 netns `outsideNetns`
//   link `link` (sluice-dpdk's, no address)   eth0 SUBNET.2/24, up,
//   TAP with the node address SUBNET.1        routes: `outsideRoutes` on-link
//
// The outside end computes its checksums in software: a veth hands frames
// on half-checksummed (CHECKSUM_PARTIAL), which a NIC's wire never does and
// net_af_packet's packet socket passes on as they are. Users reach the node
// as they would from another machine:
//   ip netns exec sluice-outside curl http://192.168.250.1:30000/
//
// create() is idempotent (what exists with the right names is kept) and
// leaves nothing behind when it fails; remove() deletes the pair and the
// namespace, and is a no-op when they are gone.
#pragma once

#include <string>
#include <vector>

#include "cni/ip_prefix.h"
#include "dataplane/result.h"

namespace sluice::cmd {

struct DpdkLab {
  std::string link = "sluice-up0";             // the node end (IFNAMSIZ: <= 15 characters)
  std::string outsideNetns = "sluice-outside";  // holds the other end, named eth0
  cni::IpPrefix subnet;                         // node .1 (on the TAP), outside .2
  std::vector<cni::IpPrefix> outsideRoutes;     // on-link from outside (the LoadBalancer pool)

  // Defaults above with the subnet 192.168.250.0/24.
  static Result<DpdkLab> make(std::string link, std::string outsideNetns, const std::string& subnet);
  IpAddress nodeAddress() const;     // SUBNET.1
  IpAddress outsideAddress() const;  // SUBNET.2
};

Result<void> createDpdkLab(const DpdkLab& lab);
Result<void> removeDpdkLab(const DpdkLab& lab);

}  // namespace sluice::cmd
