// Route-netlink (links, addresses, routes, neighbours) through libnl-route-3,
// for the CNI plugin and the node fabric. A NetlinkSocket acts on the network
// namespace it was created in, whichever thread uses it: createIn() makes one
// inside another namespace (see netns.h) so a plugin can drive the host and
// the container side at once without moving threads.
//
// Not thread-safe: one socket per thread. Errors carry the kernel's reason;
// "does not exist" is ErrorCode::kNotFound and "already exists" kAlreadyExists
// so callers can treat them as idempotence cases.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cni/ip_prefix.h"
#include "cni/netns.h"
#include "dataplane/ip_address.h"
#include "dataplane/result.h"

struct nl_sock;

namespace sluice::cni {

struct LinkInfo {
  int index = 0;
  std::string name;
  std::string mac;    // "aa:bb:cc:dd:ee:ff"
  int mtu = 0;
  bool up = false;    // administratively up (IFF_UP)
  std::string kind;   // rtnetlink kind: "veth", "vxlan", "" for physical/lo
  std::string alias;  // IFLA_IFALIAS
};

struct VethSpec {
  std::string name;       // created in the socket's namespace
  std::string peerName;   // created in peerNetnsFd's namespace (or here when -1)
  int peerNetnsFd = -1;
  int mtu = 0;            // 0: kernel default (1500)
};

struct VxlanSpec {
  std::string name;
  uint32_t vni = 0;        // 24 bits
  IpAddress local;         // underlay source address
  int underlayIndex = 0;   // device the underlay address lives on
  uint16_t port = 4789;    // IANA VXLAN port
  std::string mac;         // fixed so peers can program FDB/ARP entries up front
  int mtu = 0;
};

struct RouteSpec {
  IpPrefix dst;
  std::optional<IpAddress> gw;
  int ifIndex = 0;
  // A gateway not covered by any prefix on the device (VXLAN "via x onlink").
  bool onLink = false;
};

struct RouteInfo {
  IpPrefix dst;
  std::optional<IpAddress> gw;
  int ifIndex = 0;
  int scope = 0;  // RT_SCOPE_*
};

class NetlinkSocket {
 public:
  // A socket in the calling thread's namespace.
  static Result<NetlinkSocket> create();
  // A socket acting on `netns`.
  static Result<NetlinkSocket> createIn(const Netns& netns);

  NetlinkSocket(NetlinkSocket&&) noexcept = default;
  NetlinkSocket& operator=(NetlinkSocket&&) noexcept = default;
  ~NetlinkSocket();

  // Links. Names are at most 15 characters (IFNAMSIZ).
  Result<LinkInfo> link(std::string_view name);
  Result<LinkInfo> link(int index);
  Result<std::vector<LinkInfo>> links();
  Result<void> createVeth(const VethSpec& spec);
  Result<void> createVxlan(const VxlanSpec& spec);
  Result<void> createBridge(std::string_view name);
  // Enslaves link `index` to the bridge `masterIndex`.
  Result<void> setMaster(int index, int masterIndex);
  Result<void> deleteLink(std::string_view name);
  Result<void> setUp(int index);
  Result<void> setAlias(int index, std::string_view alias);

  // Addresses. noPrefixRoute: no subnet route is derived from the prefix
  // (IFA_F_NOPREFIXROUTE); noDad: IPv6 address usable at once (IFA_F_NODAD).
  Result<void> addAddress(int index, const IpPrefix& address, bool noPrefixRoute = false,
                          bool noDad = false);
  Result<void> deleteAddress(int index, const IpPrefix& address);
  Result<std::vector<IpPrefix>> addresses(int index);

  // Routes in the main table.
  Result<void> addRoute(const RouteSpec& route);
  Result<void> deleteRoute(const RouteSpec& route);
  Result<std::vector<RouteInfo>> routes(IpFamily family);

  // A permanent neighbour (ARP/NDP) entry.
  Result<void> addNeighbor(int index, const IpAddress& ip, std::string_view mac);
  // A permanent VXLAN FDB entry: frames for `mac` go to underlay `dst`.
  Result<void> addFdb(int index, std::string_view mac, const IpAddress& dst);

 private:
  struct SockDeleter {
    void operator()(nl_sock* sock) const;
  };
  explicit NetlinkSocket(std::unique_ptr<nl_sock, SockDeleter> sock) : sock_(std::move(sock)) {}
  Result<LinkInfo> getLink(int index, const char* name, std::string_view what);
  Result<void> changeLink(int index, bool up, const char* alias);

  std::unique_ptr<nl_sock, SockDeleter> sock_;
};

}  // namespace sluice::cni
