// The IPVS mode as the agent holds it (dataplane/datapath.h): IpvsMode for
// the virtual servers, plus what the mode does to its node, without
// iptables or ipset:
//  - service addresses (ClusterIP, LoadBalancer, externalIP) on the dummy
//    interface sluice-ipvs0, with strict ARP (arp_ignore=1,
//    arp_announce=2) so the node does not answer ARP for them on other
//    links: LoadBalancer IPs are announced by whoever owns them (a BGP
//    speaker, MetalLB), as with kube-proxy's --ipvs-strict-arp;
//  - one nftables table of its own (nft_table.h): masquerade, hairpin,
//    source ranges, refusals;
//  - sysctls set at create and restored by cleanup(): net.ipv4.vs.conntrack
//    = 1 (masquerade needs IPVS's conntrack entries), expire_nodest_conn = 1
//    (a removed destination's connections end on their next packet instead
//    of hanging), expire_quiescent_template = 1 (affinity templates to a
//    weight-0 destination expire, so drained backends get no new clients).
//    net.ipv4.vs.conn_reuse_mode stays at the kernel's default (1): setting
//    it to 0, as kube-proxy once advised, reuses stale connections to
//    removed backends (#81775); the kernels here (>= 5.9) no longer stall a
//    reused port for a second (#70747), which the vm suite measures.
//
// The originals of the sysctls are kept in /run/sluice/ipvs-<instance>.sysctl
// (written once, so a restarted agent does not record its own values).
//
// Flags (`--ipvs-<name>`): ipvsFlags() in the .cc lists them with their help.
//
// Threading: claimServiceAddresses() runs on the agent's sync thread; the
// rest as IpvsMode.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "dataplane/datapath.h"
#include "ipvs/ipvs_mode.h"
#include "ipvs/nft_table.h"
#include "ipvs/service_addresses.h"

namespace sluice::ipvs {

struct IpvsDatapathOptions {
  IpvsModeOptions mode;
  bool strictArp = true;
  // "" = sluice-ipvs0 for the default instance, sluice-ipvs-<instance>
  // (cut to 15 characters) otherwise.
  std::string interface;

  static Result<IpvsDatapathOptions> fromFlags(const ModeFlagValues& values);
};

class IpvsDatapath final : public Datapath {
 public:
  static Result<std::unique_ptr<IpvsDatapath>> create(const NodeConfig& node,
                                                      IpvsDatapathOptions options);
  // Removes what an instance with this config left: every virtual server,
  // the nftables table, the dummy interface; restores the sysctls.
  static Result<void> cleanupLeftovers(const NodeConfig& node, const IpvsDatapathOptions& options);

  ProxyMode& mode() override { return *mode_; }
  IpvsMode& ipvs() { return *mode_; }
  // IPVS sees every packet the node accepts: nothing per pod interface.
  Result<void> attachPodInterface(const std::string&) override { return okResult(); }
  Result<void> detachPodInterface(const std::string&) override { return okResult(); }
  Result<void> claimServiceAddresses(const ServiceDiff& diff, bool full) override;
  std::set<IpAddress> claimedAddresses() const override;
  void stop() override;
  Result<void> cleanup() override;

  const NftTable& nft() const { return *nft_; }
  static std::string interfaceName(const NodeConfig& node, const IpvsDatapathOptions& options);
  static std::string tableName(const NodeConfig& node);

 private:
  IpvsDatapath(const NodeConfig& node, IpvsDatapathOptions options)
      : node_(node), options_(std::move(options)) {}

  const NodeConfig node_;
  const IpvsDatapathOptions options_;
  std::unique_ptr<IpvsMode> mode_;
  mutable std::mutex mu_;  // the members below
  std::unique_ptr<NftTable> nft_;
  std::unique_ptr<ServiceAddresses> addresses_;
  // The addresses each service puts on the dummy interface.
  std::map<sluice::ServiceKey, std::set<IpAddress>> addressesOf_;
  std::map<IpAddress, int> addressRefs_;  // services holding each address
};

// The `ipvs` entry of the agent's mode factory.
ModeDriver ipvsModeDriver();

}  // namespace sluice::ipvs
