#include "ipvs/service_addresses.h"

#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <sys/socket.h>

#include <cerrno>
#include <vector>

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
  NetlinkChannel::Options options;
  options.protocol = NETLINK_ROUTE;
  auto channel = NetlinkChannel::create(options);
  if (!channel) return channel.error().wrap(where);
  out->channel_ = std::move(*channel);
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

Result<void> ServiceAddresses::set(const std::set<IpAddress>& wanted) {
  std::vector<Change> changes;
  for (const IpAddress& a : held_) {
    if (!wanted.count(a)) changes.push_back({a, false});
  }
  for (const IpAddress& a : wanted) {
    if (!held_.count(a)) changes.push_back({a, true});
  }
  return send(changes);
}

Result<void> ServiceAddresses::update(const std::set<IpAddress>& add,
                                      const std::set<IpAddress>& remove) {
  std::vector<Change> changes;
  for (const IpAddress& a : remove) {
    if (held_.count(a)) changes.push_back({a, false});
  }
  for (const IpAddress& a : add) {
    if (!held_.count(a)) changes.push_back({a, true});
  }
  return send(changes);
}

Result<void> ServiceAddresses::send(const std::vector<Change>& changes) {
  if (changes.empty()) return okResult();
  auto acks =
      channel_->transact(changes.size(), RTM_NEWADDR, [&](size_t i, nl_msg* msg) -> Result<void> {
        const Change& c = changes[i];
        nlmsghdr* h = nlmsg_hdr(msg);
        h->nlmsg_type = c.add ? RTM_NEWADDR : RTM_DELADDR;
        if (c.add) h->nlmsg_flags |= NLM_F_CREATE | NLM_F_REPLACE;
        ifaddrmsg ifa{};
        ifa.ifa_family = c.address.isV4() ? AF_INET : AF_INET6;
        ifa.ifa_prefixlen = c.address.isV4() ? 32 : 128;
        ifa.ifa_index = static_cast<uint32_t>(ifindex_);
        ifa.ifa_flags = c.address.isV6() ? IFA_F_NODAD : 0;
        ifa.ifa_scope = RT_SCOPE_UNIVERSE;
        const auto bytes = c.address.bytes();
        if (nlmsg_append(msg, &ifa, sizeof(ifa), NLMSG_ALIGNTO) < 0 ||
            nla_put(msg, IFA_LOCAL, static_cast<int>(bytes.size()), bytes.data()) < 0 ||
            nla_put(msg, IFA_ADDRESS, static_cast<int>(bytes.size()), bytes.data()) < 0) {
          return Error::internal("address " + c.address.toString() + ": message too large");
        }
        return okResult();
      });
  requests_ += changes.size();
  if (!acks) return acks.error().wrap("service addresses");
  std::string errors;
  for (size_t i = 0; i < changes.size(); ++i) {
    const Change& c = changes[i];
    const int err = (*acks)[i].error;
    // Gone already (deleted) is the wanted state.
    if (err != 0 && !(!c.add && (err == EADDRNOTAVAIL || err == ENOENT))) {
      errors += (errors.empty() ? "" : "; ") + std::string(c.add ? "add " : "delete ") +
                c.address.toString() + ": " + errnoText(err);
      if (c.add) continue;
    }
    if (c.add) {
      held_.insert(c.address);
    } else {
      held_.erase(c.address);
    }
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
