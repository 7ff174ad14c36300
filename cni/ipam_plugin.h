// sluice-ipam: the host-local style IPAM plugin. Reads the `ipam` object of
// the network configuration:
//
//   "ipam": {
//     "type": "sluice-ipam",
//     "subnet": "10.244.1.0/24",          // this node's pod CIDR
//     "rangeStart": "10.244.1.10",        // optional, default network+1
//     "rangeEnd": "10.244.1.200",         // optional, default last usable
//     "gateway": "10.244.1.1",            // optional, default network+1
//     "ranges": [{"subnet": "fd00:1::/64"}],  // optional further ranges
//                                         //   (one address from each: dual stack)
//     "routes": [{"dst": "0.0.0.0/0"}],   // optional, copied into the result
//     "dataDir": "/var/lib/sluice/ipam"   // optional; allocations live in
//   }                                     //   <dataDir>/<network name>/
//
// ADD allocates, DEL releases by (CNI_CONTAINERID, CNI_IFNAME), CHECK verifies
// the allocation is still held, GC releases every allocation whose owner is
// not in cni.dev/valid-attachments, STATUS fails with code 50 when a range has
// no free address.
#pragma once

#include <string>
#include <vector>

#include "cni/ipam_store.h"
#include "cni/skel.h"
#include "cni/spec.h"

namespace sluice::cni {

inline constexpr std::string_view kDefaultIpamDataDir = "/var/lib/sluice/ipam";

struct IpamConfig {
  std::string network;
  std::string dataDir;  // the per-network directory (<dataDir>/<network>)
  std::vector<IpRange> ranges;
  std::vector<Route> routes;

  // Errors are code 7 and name the field ("ipam.rangeStart: ...").
  static CniResult<IpamConfig> parse(const Json& config);
};

class IpamPlugin final : public PluginHandlers {
 public:
  CniResult<Json> add(const CmdArgs& args) override;
  CniResult<void> del(const CmdArgs& args) override;
  CniResult<void> check(const CmdArgs& args) override;
  CniResult<void> gc(const CmdArgs& args) override;
  CniResult<void> status(const CmdArgs& args) override;
};

}  // namespace sluice::cni
