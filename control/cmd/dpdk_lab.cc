#include "control/cmd/dpdk_lab.h"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "cni/netlink.h"
#include "cni/netns.h"

namespace sluice::cmd {
namespace {

constexpr const char* kOutsideLink = "eth0";

IpAddress hostOf(const cni::IpPrefix& subnet, uint32_t host) {
  return IpAddress::v4FromHost(subnet.network().address().v4Host() + host);
}

// Transmit checksum offload off (ethtool -K DEV tx off), in the calling
// thread's namespace.
Result<void> softwareChecksums(const std::string& dev) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::internal(std::string("socket: ") + std::strerror(errno));
  ethtool_value value{};
  value.cmd = ETHTOOL_STXCSUM;
  value.data = 0;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, dev.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = reinterpret_cast<char*>(&value);
  const int rc = ::ioctl(fd, SIOCETHTOOL, &ifr);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return Error::internal(dev + ": ETHTOOL_STXCSUM: " + std::strerror(err));
  return okResult();
}

Result<void> setUpOutside(const DpdkLab& lab, const cni::Netns& outside) {
  auto nl = cni::NetlinkSocket::createIn(outside);
  if (!nl) return nl.error();
  for (const char* name : {"lo", kOutsideLink}) {
    auto l = nl->link(name);
    if (!l) return l.error();
    if (auto r = nl->setUp(l->index); !r) return r;
  }
  const int eth0 = nl->link(kOutsideLink)->index;
  auto address = cni::IpPrefix::make(lab.outsideAddress(), lab.subnet.length());
  if (!address) return address.error();
  if (auto r = nl->addAddress(eth0, *address); !r && r.error().code != ErrorCode::kAlreadyExists) return r;
  for (const cni::IpPrefix& route : lab.outsideRoutes) {
    cni::RouteSpec spec;
    spec.dst = route.network();
    spec.ifIndex = eth0;
    if (auto r = nl->addRoute(spec); !r && r.error().code != ErrorCode::kAlreadyExists) return r;
  }
  return outside.run([] { return softwareChecksums(kOutsideLink); });
}

}  // namespace

Result<DpdkLab> DpdkLab::make(std::string link, std::string outsideNetns, const std::string& subnet) {
  DpdkLab lab;
  if (link.empty() || link.size() >= IFNAMSIZ) {
    return Error::invalid("--dpdk-lab-link " + link + ": an interface name of 1-15 characters");
  }
  if (outsideNetns.empty() || outsideNetns.find('/') != std::string::npos) {
    return Error::invalid("--dpdk-lab-netns " + outsideNetns + ": a namespace name without '/'");
  }
  auto prefix = cni::IpPrefix::parse(subnet);
  if (!prefix || !prefix->address().isV4() || prefix->length() > 30 || prefix->length() < 8) {
    return Error::invalid("--dpdk-lab-subnet " + subnet + ": an IPv4 prefix of /8 to /30");
  }
  lab.link = std::move(link);
  lab.outsideNetns = std::move(outsideNetns);
  lab.subnet = prefix->network();
  return lab;
}

IpAddress DpdkLab::nodeAddress() const { return hostOf(subnet, 1); }
IpAddress DpdkLab::outsideAddress() const { return hostOf(subnet, 2); }

Result<void> createDpdkLab(const DpdkLab& lab) {
  auto nl = cni::NetlinkSocket::create();
  if (!nl) return nl.error();
  bool madeNetns = false, madeLink = false;
  auto outside = cni::Netns::create(lab.outsideNetns);
  if (outside) {
    madeNetns = true;
  } else if (outside.error().code == ErrorCode::kAlreadyExists) {
    outside = cni::Netns::open(cni::Netns::pathOf(lab.outsideNetns));
  }
  if (!outside) return Error{outside.error().code, "netns " + lab.outsideNetns + ": " + outside.error().message};
  auto undo = [&](Error e) -> Result<void> {
    if (madeLink) (void)nl->deleteLink(lab.link);
    if (madeNetns) (void)cni::Netns::remove(lab.outsideNetns);
    return e;
  };
  auto existing = nl->link(lab.link);
  if (!existing) {
    if (existing.error().code != ErrorCode::kNotFound) return undo(existing.error());
    cni::VethSpec veth;
    veth.name = lab.link;
    veth.peerName = kOutsideLink;
    veth.peerNetnsFd = outside->fd();
    if (auto r = nl->createVeth(veth); !r) {
      return undo({r.error().code, "veth " + lab.link + ": " + r.error().message});
    }
    madeLink = true;
    existing = nl->link(lab.link);
    if (!existing) return undo(existing.error());
  } else if (existing->kind != "veth") {
    return undo(Error::invalid("--dpdk-lab-link " + lab.link + ": exists and is not a veth (" +
                               (existing->kind.empty() ? "a device" : existing->kind) + ")"));
  }
  if (auto r = nl->setUp(existing->index); !r) return undo(r.error());
  if (auto r = setUpOutside(lab, *outside); !r) {
    return undo({r.error().code, "netns " + lab.outsideNetns + ": " + r.error().message});
  }
  return okResult();
}

Result<void> removeDpdkLab(const DpdkLab& lab) {
  auto nl = cni::NetlinkSocket::create();
  if (!nl) return nl.error();
  // Deleting one end of a veth deletes the pair.
  if (auto r = nl->deleteLink(lab.link); !r && r.error().code != ErrorCode::kNotFound) return r;
  if (auto r = cni::Netns::remove(lab.outsideNetns); !r && r.error().code != ErrorCode::kNotFound) {
    return r;
  }
  return okResult();
}

}  // namespace sluice::cmd
