// The dummy interface the IPVS mode puts service addresses on
// (`sluice-ipvs0`, kube-proxy's kube-ipvs0): a virtual server only sees
// packets the node accepts as local, so every ClusterIP, LoadBalancer IP
// and externalIP must be a local address. NodePort frontends are the
// node's own addresses and are never added here.
//
// Over rtnetlink: the link and the initial address list through libnl-route,
// address changes pipelined on one NetlinkChannel (netlink_channel.h), so a
// full sync of N addresses is N requests in ceil(N / window) round trips
// rather than N round trips (kube-proxy's netlink calls, one per address,
// cost ~1 ms each under TCG: 10 s for 10,000 ClusterIPs). Applies add or
// delete only the addresses whose services changed. IPv6 addresses are added
// with IFA_F_NODAD so they are usable at once.
//
// Not thread-safe: one owner (the IPVS datapath, under its lock).
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dataplane/ip_address.h"
#include "dataplane/result.h"
#include "ipvs/netlink_channel.h"

struct nl_sock;

namespace sluice::ipvs {

class ServiceAddresses {
 public:
  // Creates the dummy link `ifname` if missing and sets it up; adopts the
  // addresses it holds.
  static Result<std::unique_ptr<ServiceAddresses>> create(const std::string& ifname);
  ~ServiceAddresses();
  ServiceAddresses(const ServiceAddresses&) = delete;
  ServiceAddresses& operator=(const ServiceAddresses&) = delete;

  // Makes the link hold exactly `wanted`; errors name each address, the
  // rest is still done.
  Result<void> set(const std::set<IpAddress>& wanted);
  // Adds and removes these (O(changed), for applies).
  Result<void> update(const std::set<IpAddress>& add, const std::set<IpAddress>& remove);
  const std::set<IpAddress>& addresses() const { return held_; }
  int ifindex() const { return ifindex_; }
  uint64_t requests() const { return requests_; }

  // Deletes the link (and so its addresses); absent is not an error.
  static Result<void> removeLink(const std::string& ifname);

 private:
  ServiceAddresses(nl_sock* sock, int ifindex) : sock_(sock), ifindex_(ifindex) {}
  struct Change {
    IpAddress address;
    bool add;
  };
  // One pipelined batch; held_ follows what the kernel acknowledged.
  Result<void> send(const std::vector<Change>& changes);

  nl_sock* sock_;
  std::unique_ptr<NetlinkChannel> channel_;
  int ifindex_;
  std::set<IpAddress> held_;
  uint64_t requests_ = 0;
};

}  // namespace sluice::ipvs
