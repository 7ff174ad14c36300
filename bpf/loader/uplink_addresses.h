// LoadBalancer ingress IPs on the node's uplink: the node answers ARP (and
// ND) for an IP only if the IP is one of its addresses, so every programmed
// LoadBalancer frontend address is added to the uplink as a /32 (/128) and
// removed when no service uses it any more (what MetalLB's L2 mode or
// kube-vip would announce). Addresses are tagged with IFA_PROTO
// kAddressProto, so a restarted agent finds and removes the ones a previous
// run added that no service wants now, and never touches others.
//
// Threading: called from ProxySync's sync thread only.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "dataplane/ip_address.h"
#include "dataplane/result.h"
#include "dataplane/service_diff.h"

namespace sluice::bpf {

// IFA_PROTO of the addresses this class adds (0-3 are the kernel's; "S").
inline constexpr uint8_t kAddressProto = 0x53;

class UplinkAddresses {
 public:
  explicit UplinkAddresses(int ifindex) : ifindex_(ifindex) {}

  // full: `diff` lists every service (ProxySync's full sync): start over,
  // removing tagged addresses no service wants. Errors are reported per
  // address in the result's message; the rest is still done.
  Result<void> apply(const ServiceDiff& diff, bool full);

  // The addresses this object holds on the uplink now.
  std::set<IpAddress> addresses() const;

  // rtnetlink: add/delete one host address on an interface, and list the
  // addresses with a given IFA_PROTO.
  static Result<void> addAddress(int ifindex, const IpAddress& address, uint8_t proto);
  static Result<void> deleteAddress(int ifindex, const IpAddress& address);
  static Result<std::set<IpAddress>> listAddresses(int ifindex, uint8_t proto);

 private:
  int ifindex_;
  std::map<IpAddress, int> users_;  // LB frontends (service ports) per address
};

}  // namespace sluice::bpf
