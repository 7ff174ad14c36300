// sluice-cni: the pod network plugin. Configuration (plus the common name,
// type, cniVersion):
//
//   {
//     "type": "sluice-cni",
//     "mtu": 1450,                       // optional, both veth ends
//     "dns": {"nameservers": [...]},     // optional, reported when IPAM gives none
//     "ipam": {"type": "sluice-ipam", ...}  // required: any IPAM plugin in CNI_PATH
//   }
//
// ADD wires a routed veth, Calico/ptp style, with no bridge:
//   container: CNI_IFNAME with the IPAM addresses (no prefix route), a link
//              route to the gateway and routes (default via the gateway)
//   node:      "sl" + hash(container id, ifname) holding the gateway as a
//              host address (/32, /128) so the pod's ARP/ND for it is
//              answered, plus a /32 (/128) route to the pod; forwarding on.
// Pods on one node therefore reach each other through the node's routing,
// and pods on other nodes through whatever routes the node has for their
// CIDRs (fabric.h). The node veth's alias records "sluice-cni/<network>/
// <container id>/<ifname>" so GC can find stale ones.
#pragma once

#include <optional>
#include <string>

#include "cni/skel.h"
#include "cni/spec.h"

namespace sluice::cni {

// Name of the node-side veth: "sl" + 13 hex digits of FNV-1a-64 over
// "<containerId>/<ifName>" = 15 characters, the IFNAMSIZ limit. Deterministic,
// so DEL finds it without state; 52 bits make collisions negligible per node.
std::string hostVethName(std::string_view containerId, std::string_view ifName);
// The node veth alias GC reads back.
std::string hostVethAlias(std::string_view network, std::string_view containerId,
                          std::string_view ifName);

struct VethConfig {
  std::string network;
  std::string ipamType;
  int mtu = 0;  // 0: kernel default
  Dns dns;
  std::optional<AddResult> prevResult;

  // Codes: 7 for a missing/malformed field, 2 for a field sluice does not
  // implement (ipMasq: true).
  static CniResult<VethConfig> parse(const Json& config);
};

class VethPlugin final : public PluginHandlers {
 public:
  CniResult<Json> add(const CmdArgs& args) override;
  CniResult<void> del(const CmdArgs& args) override;
  CniResult<void> check(const CmdArgs& args) override;
  CniResult<void> gc(const CmdArgs& args) override;
  CniResult<void> status(const CmdArgs& args) override;
};

}  // namespace sluice::cni
