#include "bpf/loader/uplink_addresses.h"

#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

namespace sluice::bpf {

namespace {

// One NETLINK_ROUTE socket per call: these run a few times per LB change.
class RtSocket {
 public:
  RtSocket() : fd_(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)) {}
  ~RtSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  RtSocket(const RtSocket&) = delete;
  RtSocket& operator=(const RtSocket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

void addAttr(std::vector<char>& msg, uint16_t type, const void* data, size_t len) {
  const size_t at = NLMSG_ALIGN(msg.size());
  msg.resize(at + RTA_SPACE(len), 0);
  auto* rta = reinterpret_cast<rtattr*>(msg.data() + at);
  rta->rta_type = type;
  rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
  std::memcpy(RTA_DATA(rta), data, len);
  reinterpret_cast<nlmsghdr*>(msg.data())->nlmsg_len = static_cast<uint32_t>(msg.size());
}

std::vector<char> addrMessage(uint16_t type, uint16_t flags, int ifindex, const IpAddress& a) {
  std::vector<char> msg(NLMSG_SPACE(sizeof(ifaddrmsg)), 0);
  auto* nh = reinterpret_cast<nlmsghdr*>(msg.data());
  nh->nlmsg_len = static_cast<uint32_t>(msg.size());
  nh->nlmsg_type = type;
  nh->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
  auto* ifa = reinterpret_cast<ifaddrmsg*>(NLMSG_DATA(nh));
  ifa->ifa_family = a.isV4() ? AF_INET : AF_INET6;
  ifa->ifa_prefixlen = a.isV4() ? 32 : 128;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<uint32_t>(ifindex);
  addAttr(msg, IFA_LOCAL, a.bytes().data(), a.bytes().size());
  addAttr(msg, IFA_ADDRESS, a.bytes().data(), a.bytes().size());
  return msg;
}

// Sends one request and reads its ACK; returns -errno (0 on success).
int transact(const std::vector<char>& msg) {
  RtSocket s;
  if (s.fd() < 0) return -errno;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(s.fd(), msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof kernel) < 0) {
    return -errno;
  }
  alignas(nlmsghdr) char buf[8192];
  const ssize_t n = ::recv(s.fd(), buf, sizeof buf, 0);
  if (n < 0) return -errno;
  auto* nh = reinterpret_cast<nlmsghdr*>(buf);
  if (NLMSG_OK(nh, static_cast<unsigned>(n)) && nh->nlmsg_type == NLMSG_ERROR) {
    return reinterpret_cast<nlmsgerr*>(NLMSG_DATA(nh))->error;
  }
  return 0;
}

}  // namespace

Result<void> UplinkAddresses::addAddress(int ifindex, const IpAddress& a, uint8_t proto) {
  std::vector<char> msg = addrMessage(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, ifindex, a);
  addAttr(msg, IFA_PROTO, &proto, sizeof proto);
  if (a.isV6()) {
    // No duplicate address detection: the address must answer ND at once,
    // and uniqueness is the LoadBalancer pool's job.
    const uint32_t flags = IFA_F_NODAD;
    addAttr(msg, IFA_FLAGS, &flags, sizeof flags);
  }
  if (int r = transact(msg); r < 0) {
    return Error::internal("add " + a.toString() + " to ifindex " + std::to_string(ifindex) +
                           ": " + std::strerror(-r));
  }
  return okResult();
}

Result<void> UplinkAddresses::deleteAddress(int ifindex, const IpAddress& a) {
  const int r = transact(addrMessage(RTM_DELADDR, 0, ifindex, a));
  if (r < 0 && r != -EADDRNOTAVAIL && r != -ENODEV) {
    return Error::internal("delete " + a.toString() + " from ifindex " + std::to_string(ifindex) +
                           ": " + std::strerror(-r));
  }
  return okResult();
}

Result<std::set<IpAddress>> UplinkAddresses::listAddresses(int ifindex, uint8_t proto) {
  RtSocket s;
  if (s.fd() < 0) return Error::internal(std::string("netlink socket: ") + std::strerror(errno));
  struct {
    nlmsghdr nh;
    ifaddrmsg ifa;
  } req{};
  req.nh.nlmsg_len = sizeof req;
  req.nh.nlmsg_type = RTM_GETADDR;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.ifa.ifa_family = AF_UNSPEC;
  if (::send(s.fd(), &req, sizeof req, 0) < 0) {
    return Error::internal(std::string("netlink dump: ") + std::strerror(errno));
  }
  std::set<IpAddress> out;
  alignas(nlmsghdr) char buf[32768];
  for (;;) {
    const ssize_t n = ::recv(s.fd(), buf, sizeof buf, 0);
    if (n < 0) return Error::internal(std::string("netlink dump: ") + std::strerror(errno));
    auto len = static_cast<unsigned>(n);
    for (auto* nh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
      if (nh->nlmsg_type == NLMSG_DONE) return out;
      if (nh->nlmsg_type == NLMSG_ERROR) return Error::internal("netlink dump: error");
      if (nh->nlmsg_type != RTM_NEWADDR) continue;
      auto* ifa = reinterpret_cast<ifaddrmsg*>(NLMSG_DATA(nh));
      if (static_cast<int>(ifa->ifa_index) != ifindex) continue;
      int attrLen = static_cast<int>(IFA_PAYLOAD(nh));
      std::optional<IpAddress> local;
      uint8_t p = 0;
      for (auto* rta = IFA_RTA(ifa); RTA_OK(rta, attrLen); rta = RTA_NEXT(rta, attrLen)) {
        const auto* data = static_cast<const uint8_t*>(RTA_DATA(rta));
        if ((rta->rta_type == IFA_LOCAL || (rta->rta_type == IFA_ADDRESS && !local)) &&
            RTA_PAYLOAD(rta) == (ifa->ifa_family == AF_INET ? 4u : 16u)) {
          if (ifa->ifa_family == AF_INET) {
            local = IpAddress::v4({data[0], data[1], data[2], data[3]});
          } else {
            std::array<uint8_t, 16> b{};
            std::memcpy(b.data(), data, 16);
            local = IpAddress::v6(b);
          }
        } else if (rta->rta_type == IFA_PROTO && RTA_PAYLOAD(rta) >= 1) {
          p = data[0];
        }
      }
      if (local && p == proto) out.insert(*local);
    }
  }
}

Result<void> UplinkAddresses::apply(const ServiceDiff& diff, bool full) {
  std::map<IpAddress, int> before = users_;
  if (full) users_.clear();
  auto count = [this](const Service& s, int delta) {
    for (const Frontend& f : s.frontends) {
      if (f.scope != FrontendScope::kLoadBalancer) continue;
      int& n = users_[f.address];
      n += delta;
      if (n <= 0) users_.erase(f.address);
    }
  };
  for (const ServiceChange& c : diff.changes) {
    if (c.before && !full) count(*c.before, -1);
    if (c.after) count(*c.after, +1);
  }
  std::string errors;
  auto note = [&errors](const Result<void>& r) {
    if (!r) errors += (errors.empty() ? "" : "; ") + r.error().message;
  };
  std::set<IpAddress> stale;
  for (const auto& [a, n] : before) {
    if (!users_.count(a)) stale.insert(a);
  }
  if (full) {
    // Tagged addresses a previous agent added.
    auto tagged = listAddresses(ifindex_, kAddressProto);
    if (tagged) {
      for (const IpAddress& a : *tagged) {
        if (!users_.count(a)) stale.insert(a);
      }
    } else {
      note(tagged.error());
    }
  }
  for (const IpAddress& a : stale) note(deleteAddress(ifindex_, a));
  for (const auto& [a, n] : users_) {
    if (full || !before.count(a)) note(addAddress(ifindex_, a, kAddressProto));
  }
  if (!errors.empty()) return Error::internal("LoadBalancer addresses: " + errors);
  return okResult();
}

std::set<IpAddress> UplinkAddresses::addresses() const {
  std::set<IpAddress> out;
  for (const auto& [a, n] : users_) out.insert(a);
  return out;
}

}  // namespace sluice::bpf
