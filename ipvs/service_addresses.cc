#include "ipvs/service_addresses.h"

#include <linux/if_addr.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <sys/socket.h>

namespace sluice::ipvs {

namespace {

std::string nlError(int err) { return nl_geterror(err); }

struct SockDeleter {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};

Result<std::unique_ptr<nl_sock, SockDeleter>> routeSocket() {
  std::unique_ptr<nl_sock, SockDeleter> sock(nl_socket_alloc());
  if (!sock) return Error::internal("rtnetlink: nl_socket_alloc failed");
  if (int r = nl_connect(sock.get(), NETLINK_ROUTE); r < 0) {
    return Error::internal("rtnetlink: connect: " + nlError(r));
  }
  return sock;
}

}  // namespace

Result<std::unique_ptr<ServiceAddresses>> ServiceAddresses::create(const std::string& ifname) {
  auto sock = routeSocket();
  if (!sock) return sock.error();
  const std::string where = "dummy interface " + ifname;
  if (if_nametoindex(ifname.c_str()) == 0) {
    rtnl_link* link = rtnl_link_alloc();
    rtnl_link_set_name(link, ifname.c_str());
    if (int r = rtnl_link_set_type(link, "dummy"); r < 0) {
      rtnl_link_put(link);
      return Error::internal(where + ": " + nlError(r) + " (is the dummy module there?)");
    }
    const int r = rtnl_link_add(sock->get(), link, NLM_F_CREATE);
    rtnl_link_put(link);
    if (r < 0) return Error::internal(where + ": create: " + nlError(r));
  }
  rtnl_link* current = nullptr;
  if (int r = rtnl_link_get_kernel(sock->get(), 0, ifname.c_str(), &current); r < 0) {
    return Error::internal(where + ": " + nlError(r));
  }
  const int ifindex = rtnl_link_get_ifindex(current);
  if (!(rtnl_link_get_flags(current) & IFF_UP)) {
    rtnl_link* up = rtnl_link_alloc();
    rtnl_link_set_flags(up, IFF_UP);
    const int r = rtnl_link_change(sock->get(), current, up, 0);
    rtnl_link_put(up);
    if (r < 0) {
      rtnl_link_put(current);
      return Error::internal(where + ": set up: " + nlError(r));
    }
  }
  rtnl_link_put(current);

  std::unique_ptr<ServiceAddresses> out(new ServiceAddresses(sock->release(), ifindex));
  nl_cache* cache = nullptr;
  if (int r = rtnl_addr_alloc_cache(out->sock_, &cache); r < 0) {
    return Error::internal(where + ": list addresses: " + nlError(r));
  }
  for (nl_object* o = nl_cache_get_first(cache); o != nullptr; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_ifindex(a) != ifindex) continue;
    nl_addr* local = rtnl_addr_get_local(a);
    if (local == nullptr) continue;
    const auto* bytes = static_cast<const uint8_t*>(nl_addr_get_binary_addr(local));
    if (nl_addr_get_family(local) == AF_INET && nl_addr_get_len(local) == 4) {
      out->held_.insert(IpAddress::v4({bytes[0], bytes[1], bytes[2], bytes[3]}));
    } else if (nl_addr_get_family(local) == AF_INET6 && nl_addr_get_len(local) == 16) {
      std::array<uint8_t, 16> b{};
      std::copy(bytes, bytes + 16, b.begin());
      const IpAddress v6 = IpAddress::v6(b);
      // The kernel's own link-local address is not ours.
      if (!(b[0] == 0xfe && (b[1] & 0xc0) == 0x80)) out->held_.insert(v6);
    }
  }
  nl_cache_free(cache);
  return out;
}

ServiceAddresses::~ServiceAddresses() { nl_socket_free(sock_); }

Result<void> ServiceAddresses::change(const IpAddress& address, bool add) {
  rtnl_addr* a = rtnl_addr_alloc();
  rtnl_addr_set_ifindex(a, ifindex_);
  const auto bytes = address.bytes();
  nl_addr* local = nl_addr_build(address.isV4() ? AF_INET : AF_INET6, bytes.data(), bytes.size());
  nl_addr_set_prefixlen(local, address.isV4() ? 32 : 128);
  rtnl_addr_set_local(a, local);
  nl_addr_put(local);
  if (address.isV6()) rtnl_addr_set_flags(a, IFA_F_NODAD);
  ++requests_;
  const int r = add ? rtnl_addr_add(sock_, a, NLM_F_REPLACE) : rtnl_addr_delete(sock_, a, 0);
  rtnl_addr_put(a);
  // Gone already (deleted) is the wanted state.
  if (r < 0 && !(r == -NLE_NOADDR && !add) && !(r == -NLE_OBJ_NOTFOUND && !add)) {
    return Error::internal(std::string(add ? "add " : "delete ") + address.toString() + ": " +
                           nlError(r));
  }
  return okResult();
}

Result<void> ServiceAddresses::set(const std::set<IpAddress>& wanted) {
  std::string errors;
  for (auto it = held_.begin(); it != held_.end();) {
    if (wanted.count(*it)) {
      ++it;
      continue;
    }
    if (auto r = change(*it, false); !r) errors += (errors.empty() ? "" : "; ") + r.error().message;
    it = held_.erase(it);
  }
  for (const IpAddress& a : wanted) {
    if (held_.count(a)) continue;
    if (auto r = change(a, true); !r) {
      errors += (errors.empty() ? "" : "; ") + r.error().message;
      continue;
    }
    held_.insert(a);
  }
  if (!errors.empty()) return Error::internal("service addresses: " + errors);
  return okResult();
}

Result<void> ServiceAddresses::removeLink(const std::string& ifname) {
  if (if_nametoindex(ifname.c_str()) == 0) return okResult();
  auto sock = routeSocket();
  if (!sock) return sock.error();
  rtnl_link* link = rtnl_link_alloc();
  rtnl_link_set_name(link, ifname.c_str());
  const int r = rtnl_link_delete(sock->get(), link);
  rtnl_link_put(link);
  if (r < 0 && r != -NLE_NODEV && r != -NLE_OBJ_NOTFOUND) {
    return Error::internal("delete interface " + ifname + ": " + nlError(r));
  }
  return okResult();
}

}  // namespace sluice::ipvs
