#include "cni/netlink.h"

#include <linux/if_addr.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <array>
#include <cstring>

namespace sluice::cni {
namespace {

// Owning pointers for libnl's reference-counted objects.
struct NlDeleter {
  void operator()(nl_addr* p) const { nl_addr_put(p); }
  void operator()(rtnl_link* p) const { rtnl_link_put(p); }
  void operator()(rtnl_addr* p) const { rtnl_addr_put(p); }
  void operator()(rtnl_route* p) const { rtnl_route_put(p); }
  void operator()(rtnl_neigh* p) const { rtnl_neigh_put(p); }
  void operator()(nl_cache* p) const { nl_cache_free(p); }
};
template <typename T>
using NlPtr = std::unique_ptr<T, NlDeleter>;

// libnl returns negative NLE_* codes; map the ones callers branch on.
Error nlError(int err, const std::string& what) {
  const int code = err < 0 ? -err : err;
  std::string msg = what + ": " + nl_geterror(code);
  switch (code) {
    case NLE_EXIST: return Error::exists(std::move(msg));
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV: return Error::notFound(std::move(msg));
    case NLE_BUSY:
    case NLE_AGAIN: return Error::unavailable(std::move(msg));
    default: return Error::internal(std::move(msg));
  }
}

NlPtr<nl_addr> toNlAddr(const IpAddress& ip, int prefixLength) {
  auto bytes = ip.bytes();
  NlPtr<nl_addr> a(nl_addr_build(ip.isV4() ? AF_INET : AF_INET6, bytes.data(), bytes.size()));
  if (a) nl_addr_set_prefixlen(a.get(), prefixLength);
  return a;
}

NlPtr<nl_addr> toNlAddr(const IpPrefix& prefix) {
  return toNlAddr(prefix.address(), prefix.length());
}

Result<NlPtr<nl_addr>> parseMac(std::string_view mac) {
  nl_addr* out = nullptr;
  const std::string text(mac);
  if (int err = nl_addr_parse(text.c_str(), AF_LLC, &out); err < 0) {
    return Error::invalid("MAC address '" + text + "': " + nl_geterror(-err));
  }
  return NlPtr<nl_addr>(out);
}

// A zero-length nl_addr is the default route's destination.
std::optional<IpPrefix> fromNlAddr(const nl_addr* a, int family) {
  const int af = a != nullptr ? nl_addr_get_family(a) : family;
  const unsigned len = a != nullptr ? nl_addr_get_len(a) : 0;
  const int prefix = a != nullptr ? static_cast<int>(nl_addr_get_prefixlen(a)) : 0;
  const auto* bytes = a != nullptr ? static_cast<const uint8_t*>(nl_addr_get_binary_addr(a)) : nullptr;
  if (af == AF_INET) {
    std::array<uint8_t, 4> b{};
    if (len == 4) std::memcpy(b.data(), bytes, 4);
    auto p = IpPrefix::make(IpAddress::v4(b), len == 4 ? prefix : 0);
    return p ? std::optional<IpPrefix>(*p) : std::nullopt;
  }
  if (af == AF_INET6) {
    std::array<uint8_t, 16> b{};
    if (len == 16) std::memcpy(b.data(), bytes, 16);
    auto p = IpPrefix::make(IpAddress::v6(b), len == 16 ? prefix : 0);
    return p ? std::optional<IpPrefix>(*p) : std::nullopt;
  }
  return std::nullopt;
}

LinkInfo toLinkInfo(rtnl_link* l) {
  LinkInfo info;
  info.index = rtnl_link_get_ifindex(l);
  if (const char* n = rtnl_link_get_name(l)) info.name = n;
  if (nl_addr* mac = rtnl_link_get_addr(l); mac != nullptr && nl_addr_get_len(mac) == 6) {
    char buf[32];
    info.mac = nl_addr2str(mac, buf, sizeof(buf));
  }
  info.mtu = static_cast<int>(rtnl_link_get_mtu(l));
  info.up = (rtnl_link_get_flags(l) & IFF_UP) != 0;
  if (const char* k = rtnl_link_get_type(l)) info.kind = k;
  if (const char* a = rtnl_link_get_ifalias(l)) info.alias = a;
  return info;
}

NlPtr<rtnl_route> buildRoute(const RouteSpec& spec) {
  NlPtr<rtnl_route> r(rtnl_route_alloc());
  const int af = spec.dst.address().isV4() ? AF_INET : AF_INET6;
  rtnl_route_set_family(r.get(), static_cast<uint8_t>(af));
  rtnl_route_set_table(r.get(), RT_TABLE_MAIN);
  rtnl_route_set_protocol(r.get(), RTPROT_STATIC);
  rtnl_route_set_type(r.get(), RTN_UNICAST);
  rtnl_route_set_scope(r.get(), spec.gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
  auto dst = toNlAddr(spec.dst.network());
  rtnl_route_set_dst(r.get(), dst.get());
  rtnl_nexthop* nh = rtnl_route_nh_alloc();
  rtnl_route_nh_set_ifindex(nh, spec.ifIndex);
  if (spec.gw) {
    auto gw = toNlAddr(IpPrefix::host(*spec.gw));
    rtnl_route_nh_set_gateway(nh, gw.get());
  }
  if (spec.onLink) rtnl_route_nh_set_flags(nh, RTNH_F_ONLINK);
  rtnl_route_add_nexthop(r.get(), nh);  // the route owns nh from here
  return r;
}

std::string routeText(const RouteSpec& spec) {
  std::string s = "route " + spec.dst.network().toString();
  if (spec.gw) s += " via " + spec.gw->toString();
  return s + " dev #" + std::to_string(spec.ifIndex);
}

}  // namespace

void NetlinkSocket::SockDeleter::operator()(nl_sock* sock) const { nl_socket_free(sock); }

NetlinkSocket::~NetlinkSocket() = default;

Result<NetlinkSocket> NetlinkSocket::create() {
  std::unique_ptr<nl_sock, SockDeleter> sock(nl_socket_alloc());
  if (!sock) return Error::internal("nl_socket_alloc: out of memory");
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) {
    return nlError(err, "connect NETLINK_ROUTE");
  }
  return NetlinkSocket(std::move(sock));
}

Result<NetlinkSocket> NetlinkSocket::createIn(const Netns& netns) {
  return netns.run([] { return create(); });
}

Result<LinkInfo> NetlinkSocket::getLink(int index, const char* name, std::string_view what) {
  rtnl_link* raw = nullptr;
  if (int err = rtnl_link_get_kernel(sock_.get(), index, name, &raw); err < 0) {
    return nlError(err, "link " + std::string(what));
  }
  NlPtr<rtnl_link> l(raw);
  return toLinkInfo(l.get());
}

Result<LinkInfo> NetlinkSocket::link(std::string_view name) {
  const std::string n(name);
  return getLink(0, n.c_str(), n);
}

Result<LinkInfo> NetlinkSocket::link(int index) {
  return getLink(index, nullptr, "#" + std::to_string(index));
}

Result<std::vector<LinkInfo>> NetlinkSocket::links() {
  nl_cache* raw = nullptr;
  if (int err = rtnl_link_alloc_cache(sock_.get(), AF_UNSPEC, &raw); err < 0) {
    return nlError(err, "dump links");
  }
  NlPtr<nl_cache> cache(raw);
  std::vector<LinkInfo> out;
  for (nl_object* o = nl_cache_get_first(cache.get()); o != nullptr; o = nl_cache_get_next(o)) {
    out.push_back(toLinkInfo(reinterpret_cast<rtnl_link*>(o)));
  }
  return out;
}

Result<void> NetlinkSocket::createVeth(const VethSpec& spec) {
  NlPtr<rtnl_link> l(rtnl_link_veth_alloc());
  if (!l) return Error::internal("rtnl_link_veth_alloc: out of memory");
  rtnl_link_set_name(l.get(), spec.name.c_str());
  if (spec.mtu > 0) rtnl_link_set_mtu(l.get(), static_cast<unsigned>(spec.mtu));
  NlPtr<rtnl_link> peer(rtnl_link_veth_get_peer(l.get()));  // a new reference
  rtnl_link_set_name(peer.get(), spec.peerName.c_str());
  if (spec.mtu > 0) rtnl_link_set_mtu(peer.get(), static_cast<unsigned>(spec.mtu));
  // IFLA_NET_NS_FD on the peer: the kernel creates it directly in that
  // namespace, so the name is checked there and never collides here.
  if (spec.peerNetnsFd >= 0) rtnl_link_set_ns_fd(peer.get(), spec.peerNetnsFd);
  if (int err = rtnl_link_add(sock_.get(), l.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0) {
    return nlError(err, "create veth " + spec.name + " <-> " + spec.peerName);
  }
  return {};
}

Result<void> NetlinkSocket::createVxlan(const VxlanSpec& spec) {
  NlPtr<rtnl_link> l(rtnl_link_vxlan_alloc());
  if (!l) return Error::internal("rtnl_link_vxlan_alloc: out of memory");
  rtnl_link_set_name(l.get(), spec.name.c_str());
  rtnl_link_vxlan_set_id(l.get(), spec.vni);
  auto local = toNlAddr(IpPrefix::host(spec.local));
  rtnl_link_vxlan_set_local(l.get(), local.get());
  rtnl_link_vxlan_set_link(l.get(), static_cast<uint32_t>(spec.underlayIndex));
  rtnl_link_vxlan_set_port(l.get(), spec.port);
  // Peers are programmed statically (FDB + neighbour entries), as flannel does.
  rtnl_link_vxlan_set_learning(l.get(), 0);
  if (spec.mtu > 0) rtnl_link_set_mtu(l.get(), static_cast<unsigned>(spec.mtu));
  if (!spec.mac.empty()) {
    auto mac = parseMac(spec.mac);
    if (!mac) return mac.error();
    rtnl_link_set_addr(l.get(), mac->get());
  }
  if (int err = rtnl_link_add(sock_.get(), l.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0) {
    return nlError(err, "create vxlan " + spec.name);
  }
  return {};
}

Result<void> NetlinkSocket::createBridge(std::string_view name) {
  NlPtr<rtnl_link> l(rtnl_link_bridge_alloc());
  if (!l) return Error::internal("rtnl_link_bridge_alloc: out of memory");
  const std::string n(name);
  rtnl_link_set_name(l.get(), n.c_str());
  if (int err = rtnl_link_add(sock_.get(), l.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0) {
    return nlError(err, "create bridge " + n);
  }
  return {};
}

Result<void> NetlinkSocket::setMaster(int index, int masterIndex) {
  NlPtr<rtnl_link> orig(rtnl_link_alloc());
  rtnl_link_set_ifindex(orig.get(), index);
  NlPtr<rtnl_link> change(rtnl_link_alloc());
  rtnl_link_set_master(change.get(), masterIndex);
  if (int err = rtnl_link_change(sock_.get(), orig.get(), change.get(), 0); err < 0) {
    return nlError(err, "enslave #" + std::to_string(index) + " to #" + std::to_string(masterIndex));
  }
  return {};
}

Result<void> NetlinkSocket::deleteLink(std::string_view name) {
  NlPtr<rtnl_link> l(rtnl_link_alloc());
  const std::string n(name);
  rtnl_link_set_name(l.get(), n.c_str());
  if (int err = rtnl_link_delete(sock_.get(), l.get()); err < 0) {
    return nlError(err, "delete link " + n);
  }
  return {};
}

Result<void> NetlinkSocket::changeLink(int index, bool up, const char* alias) {
  NlPtr<rtnl_link> orig(rtnl_link_alloc());
  rtnl_link_set_ifindex(orig.get(), index);
  NlPtr<rtnl_link> change(rtnl_link_alloc());
  if (up) rtnl_link_set_flags(change.get(), IFF_UP);
  if (alias != nullptr) rtnl_link_set_ifalias(change.get(), alias);
  if (int err = rtnl_link_change(sock_.get(), orig.get(), change.get(), 0); err < 0) {
    return nlError(err, "change link #" + std::to_string(index));
  }
  return {};
}

Result<void> NetlinkSocket::setUp(int index) { return changeLink(index, true, nullptr); }

Result<void> NetlinkSocket::setAlias(int index, std::string_view alias) {
  const std::string a(alias);
  return changeLink(index, false, a.c_str());
}

Result<void> NetlinkSocket::addAddress(int index, const IpPrefix& address, bool noPrefixRoute,
                                       bool noDad) {
  NlPtr<rtnl_addr> a(rtnl_addr_alloc());
  rtnl_addr_set_ifindex(a.get(), index);
  auto local = toNlAddr(address);
  if (int err = rtnl_addr_set_local(a.get(), local.get()); err < 0) {
    return nlError(err, "address " + address.toString());
  }
  unsigned flags = 0;
  if (noPrefixRoute) flags |= IFA_F_NOPREFIXROUTE;
  if (noDad && address.address().isV6()) flags |= IFA_F_NODAD;
  if (flags != 0) rtnl_addr_set_flags(a.get(), flags);
  if (int err = rtnl_addr_add(sock_.get(), a.get(), NLM_F_EXCL); err < 0) {
    return nlError(err, "add address " + address.toString() + " on #" + std::to_string(index));
  }
  return {};
}

Result<void> NetlinkSocket::deleteAddress(int index, const IpPrefix& address) {
  NlPtr<rtnl_addr> a(rtnl_addr_alloc());
  rtnl_addr_set_ifindex(a.get(), index);
  auto local = toNlAddr(address);
  if (int err = rtnl_addr_set_local(a.get(), local.get()); err < 0) {
    return nlError(err, "address " + address.toString());
  }
  if (int err = rtnl_addr_delete(sock_.get(), a.get(), 0); err < 0) {
    return nlError(err, "delete address " + address.toString() + " on #" + std::to_string(index));
  }
  return {};
}

Result<std::vector<IpPrefix>> NetlinkSocket::addresses(int index) {
  nl_cache* raw = nullptr;
  if (int err = rtnl_addr_alloc_cache(sock_.get(), &raw); err < 0) {
    return nlError(err, "dump addresses");
  }
  NlPtr<nl_cache> cache(raw);
  std::vector<IpPrefix> out;
  for (nl_object* o = nl_cache_get_first(cache.get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_ifindex(a) != index) continue;
    const int family = rtnl_addr_get_family(a);
    if (auto p = fromNlAddr(rtnl_addr_get_local(a), family)) out.push_back(*p);
  }
  return out;
}

Result<void> NetlinkSocket::addRoute(const RouteSpec& route) {
  auto r = buildRoute(route);
  if (int err = rtnl_route_add(sock_.get(), r.get(), NLM_F_EXCL); err < 0) {
    return nlError(err, "add " + routeText(route));
  }
  return {};
}

Result<void> NetlinkSocket::deleteRoute(const RouteSpec& route) {
  auto r = buildRoute(route);
  if (int err = rtnl_route_delete(sock_.get(), r.get(), 0); err < 0) {
    return nlError(err, "delete " + routeText(route));
  }
  return {};
}

Result<std::vector<RouteInfo>> NetlinkSocket::routes(IpFamily family) {
  const int af = family == IpFamily::kV4 ? AF_INET : AF_INET6;
  nl_cache* raw = nullptr;
  if (int err = rtnl_route_alloc_cache(sock_.get(), af, 0, &raw); err < 0) {
    return nlError(err, "dump routes");
  }
  NlPtr<nl_cache> cache(raw);
  std::vector<RouteInfo> out;
  for (nl_object* o = nl_cache_get_first(cache.get()); o != nullptr; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_table(r) != RT_TABLE_MAIN || rtnl_route_get_type(r) != RTN_UNICAST) continue;
    auto dst = fromNlAddr(rtnl_route_get_dst(r), af);
    if (!dst) continue;
    RouteInfo info;
    info.dst = *dst;
    info.scope = rtnl_route_get_scope(r);
    if (rtnl_route_get_nnexthops(r) > 0) {
      rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
      info.ifIndex = rtnl_route_nh_get_ifindex(nh);
      if (nl_addr* gw = rtnl_route_nh_get_gateway(nh)) {
        if (auto p = fromNlAddr(gw, af)) info.gw = p->address();
      }
    }
    out.push_back(std::move(info));
  }
  return out;
}

Result<void> NetlinkSocket::addNeighbor(int index, const IpAddress& ip, std::string_view mac) {
  auto ll = parseMac(mac);
  if (!ll) return ll.error();
  NlPtr<rtnl_neigh> n(rtnl_neigh_alloc());
  rtnl_neigh_set_ifindex(n.get(), index);
  auto dst = toNlAddr(IpPrefix::host(ip));
  rtnl_neigh_set_dst(n.get(), dst.get());
  rtnl_neigh_set_lladdr(n.get(), ll->get());
  rtnl_neigh_set_state(n.get(), NUD_PERMANENT);
  if (int err = rtnl_neigh_add(sock_.get(), n.get(), NLM_F_CREATE | NLM_F_REPLACE); err < 0) {
    return nlError(err, "add neighbour " + ip.toString() + " lladdr " + std::string(mac));
  }
  return {};
}

Result<void> NetlinkSocket::addFdb(int index, std::string_view mac, const IpAddress& dst) {
  auto ll = parseMac(mac);
  if (!ll) return ll.error();
  NlPtr<rtnl_neigh> n(rtnl_neigh_alloc());
  rtnl_neigh_set_ifindex(n.get(), index);
  // set_dst first: it adopts the address family, which set_family then
  // overrides with AF_BRIDGE (setting the family first makes set_dst refuse).
  auto ip = toNlAddr(IpPrefix::host(dst));
  rtnl_neigh_set_dst(n.get(), ip.get());
  rtnl_neigh_set_family(n.get(), AF_BRIDGE);
  rtnl_neigh_set_lladdr(n.get(), ll->get());
  rtnl_neigh_set_state(n.get(), NUD_PERMANENT);
  rtnl_neigh_set_flags(n.get(), NTF_SELF);
  if (int err = rtnl_neigh_add(sock_.get(), n.get(), NLM_F_CREATE | NLM_F_APPEND); err < 0) {
    return nlError(err, "add fdb " + std::string(mac) + " dst " + dst.toString());
  }
  return {};
}

}  // namespace sluice::cni
