#include "cni/veth_plugin.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <set>

#include "cni/ipam_delegate.h"
#include "cni/netlink.h"
#include "cni/netns.h"

namespace sluice::cni {
namespace {

constexpr std::string_view kAliasPrefix = "sluice-cni/";
// The kernel refuses an interface alias of IFALIASZ (256) bytes or more.
constexpr size_t kMaxAliasLength = 255;
// RFC 791's minimum IPv4 MTU; veth's maximum is 64 KiB - 1.
constexpr int64_t kMinMtu = 68;
constexpr int64_t kMaxMtu = 65535;

// Runs an undo action on scope exit unless dismissed.
class Rollback {
 public:
  explicit Rollback(std::function<void()> undo) : undo_(std::move(undo)) {}
  Rollback(const Rollback&) = delete;
  Rollback& operator=(const Rollback&) = delete;
  ~Rollback() {
    if (undo_) undo_();
  }
  void dismiss() { undo_ = nullptr; }

 private:
  std::function<void()> undo_;
};

CniError internal(const Error& e) { return CniError::from(kCodeInternal, e); }

CniResult<NetlinkSocket> hostSocket() {
  auto sock = NetlinkSocket::create();
  if (!sock) return internal(sock.error());
  return std::move(*sock);
}

// The container's netns, and a netlink socket acting in it. A missing netns
// is code 3: the runtime named a container that does not exist.
struct Sandbox {
  Netns netns;
  NetlinkSocket sock;
};
CniResult<Sandbox> openSandbox(const std::string& path) {
  auto netns = Netns::open(path);
  if (!netns) {
    uint32_t code = kCodeInternal;
    if (netns.error().code == ErrorCode::kNotFound) code = kCodeUnknownContainer;
    if (netns.error().code == ErrorCode::kInvalidArgument) code = kCodeInvalidEnvironment;
    return CniError::make(code, "CNI_NETNS: " + netns.error().message);
  }
  // A runtime bug (or a hostNetwork pod sent here) would otherwise get the
  // node's own interfaces renamed and readdressed.
  auto self = Netns::current();
  if (self && self->sameAs(*netns)) {
    return CniError::make(kCodeInvalidEnvironment,
                          "CNI_NETNS: " + path + " is the node's own network namespace");
  }
  auto sock = NetlinkSocket::createIn(*netns);
  if (!sock) return internal(sock.error());
  return Sandbox{std::move(*netns), std::move(*sock)};
}

bool isNotFound(const Error& e) { return e.code == ErrorCode::kNotFound; }

// The gateway of each address: the IPAM's, else the subnet's first address
// (host-local's default).
IpAddress gatewayOf(const IpConfig& ip) {
  return ip.gateway ? *ip.gateway : nextAddress(ip.address.network().address());
}

struct Wiring {
  Interface hostIf;
  Interface podIf;
  std::vector<IpConfig> ips;
  std::vector<Route> routes;
};

// Everything ADD changes in the kernel after IPAM; the caller undoes it on error.
CniResult<Wiring> wirePod(NetlinkSocket& host, Sandbox& pod, const CmdArgs& args,
                          const VethConfig& config, const std::string& hostName,
                          const AddResult& ipam) {
  Wiring w;
  // Per family: the first address's gateway routes that family.
  std::optional<IpAddress> gw4, gw6;
  for (const auto& ip : ipam.ips) {
    const IpAddress gw = gatewayOf(ip);
    if (gw.family() != ip.address.family() || gw == ip.address.address()) {
      return CniError::make(kCodeInvalidConfig, "ipam: gateway " + gw.toString() +
                                                    " cannot route address " + ip.address.toString());
    }
    auto& slot = ip.address.address().isV4() ? gw4 : gw6;
    if (!slot) slot = gw;
    w.ips.push_back({ip.address, gw, std::nullopt});
  }

  VethSpec veth{hostName, args.ifName, pod.netns.fd(), config.mtu};
  if (auto r = host.createVeth(veth); !r) {
    const uint32_t code =
        r.error().code == ErrorCode::kAlreadyExists ? kCodeInterfaceExists : kCodeInternal;
    return CniError::from(code, r.error());
  }
  auto hostLink = host.link(hostName);
  if (!hostLink) return internal(hostLink.error());
  const int hostIndex = hostLink->index;
  if (auto r = host.setAlias(hostIndex, hostVethAlias(config.network, args.containerId, args.ifName));
      !r) {
    return internal(r.error());
  }
  // Host side up first: the pod side has no carrier until both ends are up.
  if (auto r = host.setUp(hostIndex); !r) return internal(r.error());

  auto podLink = pod.sock.link(args.ifName);
  if (!podLink) return internal(podLink.error());
  const int podIndex = podLink->index;
  for (const auto& ip : w.ips) {
    // No prefix route: every destination, same subnet included, goes via the
    // gateway, since other pods sit behind other veths, not on this link.
    if (auto r = pod.sock.addAddress(podIndex, ip.address, true, true); !r) return internal(r.error());
  }
  if (auto r = pod.sock.setUp(podIndex); !r) return internal(r.error());
  for (const auto& gw : {gw4, gw6}) {
    if (!gw) continue;
    if (auto r = pod.sock.addRoute({IpPrefix::host(*gw), std::nullopt, podIndex}); !r) {
      return internal(r.error());
    }
  }
  bool default4 = false, default6 = false;
  for (const auto& route : ipam.routes) {
    const auto& gw = route.dst.address().isV4() ? gw4 : gw6;
    if (!gw && !route.gw) {
      return CniError::make(kCodeInvalidConfig, "ipam: route " + route.dst.toString() +
                                                    " has no address of its family to route by");
    }
    Route installed{route.dst, route.gw ? route.gw : gw};
    if (auto r = pod.sock.addRoute({installed.dst, installed.gw, podIndex}); !r) {
      return CniError::from(kCodeInternal, r.error().wrap("ipam route"));
    }
    (route.dst.address().isV4() ? default4 : default6) |= route.dst.isDefault();
    w.routes.push_back(installed);
  }
  // A default route via the gateway unless IPAM supplied one.
  for (auto [gw, have] : {std::pair{gw4, default4}, std::pair{gw6, default6}}) {
    if (!gw || have) continue;
    auto dst = IpPrefix::make(gw->isV4() ? IpAddress() : IpAddress::v6({}), 0);
    Route installed{*dst, *gw};
    if (auto r = pod.sock.addRoute({installed.dst, installed.gw, podIndex}); !r) {
      return internal(r.error());
    }
    w.routes.push_back(installed);
  }

  for (const auto& gw : {gw4, gw6}) {
    if (!gw) continue;
    // The same gateway address sits on every pod's node veth (ptp does the
    // same); the kernel keeps its local route until the last one goes.
    if (auto r = host.addAddress(hostIndex, IpPrefix::host(*gw), false, true); !r) {
      return internal(r.error());
    }
  }
  for (const auto& ip : w.ips) {
    if (auto r = host.addRoute({IpPrefix::host(ip.address.address()), std::nullopt, hostIndex}); !r) {
      return internal(r.error());
    }
  }
  // The node routes between pods and to other nodes.
  if (gw4) {
    if (auto r = writeSysctl("net/ipv4/ip_forward", "1"); !r) return internal(r.error());
  }
  if (gw6) {
    if (auto r = writeSysctl("net/ipv6/conf/all/forwarding", "1"); !r) return internal(r.error());
  }

  auto podNow = pod.sock.link(podIndex);
  if (!podNow) return internal(podNow.error());
  w.hostIf = {hostName, hostLink->mac, std::nullopt, ""};
  w.podIf = {args.ifName, podNow->mac, podNow->mtu, args.netns};
  return w;
}

// Code 104 for CHECK's findings.
CniError mismatch(std::string msg) { return CniError::make(kCodeCheckFailed, std::move(msg)); }

bool hasRoute(const std::vector<RouteInfo>& table, const IpPrefix& dst,
              const std::optional<IpAddress>& gw, int ifIndex) {
  return std::any_of(table.begin(), table.end(), [&](const RouteInfo& r) {
    return r.dst == dst.network() && r.ifIndex == ifIndex && (!gw || r.gw == gw);
  });
}

}  // namespace

std::string hostVethName(std::string_view containerId, std::string_view ifName) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 0x100000001b3ULL;  // FNV-1a 64 prime
    }
  };
  mix(containerId);
  mix("/");
  mix(ifName);
  char buf[16];
  std::snprintf(buf, sizeof(buf), "sl%013llx", static_cast<unsigned long long>(h >> 12));
  return buf;
}

std::string hostVethAlias(std::string_view network, std::string_view containerId,
                          std::string_view ifName) {
  return std::string(kAliasPrefix) + std::string(network) + "/" + std::string(containerId) + "/" +
         std::string(ifName);
}

CniResult<VethConfig> VethConfig::parse(const Json& config) {
  VethConfig out;
  auto name = requireString(config, "name", "name");
  if (!name) return name.error();
  out.network = *name;
  auto ipam = optObject(config, "ipam", "ipam");
  if (!ipam) return ipam.error();
  if (*ipam == nullptr) return CniError::make(kCodeInvalidConfig, "ipam: required");
  auto ipamType = requireString(**ipam, "type", "ipam.type");
  if (!ipamType) return ipamType.error();
  out.ipamType = *ipamType;
  auto mtu = optInt(config, "mtu", "mtu");
  if (!mtu) return mtu.error();
  if (*mtu) {
    if (**mtu < kMinMtu || **mtu > kMaxMtu) {
      return CniError::make(kCodeInvalidConfig, "mtu: " + std::to_string(**mtu) + " is outside " +
                                                    std::to_string(kMinMtu) + "-" +
                                                    std::to_string(kMaxMtu));
    }
    out.mtu = static_cast<int>(**mtu);
  }
  auto ipMasq = optBool(config, "ipMasq", "ipMasq");
  if (!ipMasq) return ipMasq.error();
  if (ipMasq->value_or(false)) {
    return CniError::make(kCodeUnsupportedField,
                          "ipMasq: true is not supported: sluice-cni does not masquerade pod "
                          "traffic (the proxy SNATs where Service semantics need it)");
  }
  if (const Json* dns = findField(config, "dns")) {
    auto parsed = parseDns(*dns, "dns", kCodeInvalidConfig);
    if (!parsed) return parsed.error();
    out.dns = std::move(*parsed);
  }
  if (const Json* prev = findField(config, "prevResult")) {
    auto parsed = parseResult(*prev, "prevResult", kCodeInvalidConfig);
    if (!parsed) return parsed.error();
    out.prevResult = std::move(*parsed);
  }
  return out;
}

namespace {

// The node veth's alias names network, container and interface (GC reads
// the owner back from it), so their lengths together are bounded. The spec
// sets no length for a container id; this is where one comes from.
CniResult<void> checkAliasFits(const VethConfig& config, const CmdArgs& args) {
  const size_t fixed = hostVethAlias(config.network, "", args.ifName).size();
  if (fixed >= kMaxAliasLength) {
    return CniError::make(kCodeInvalidConfig,
                          "name: '" + config.network + "' is too long: the node veth's alias (" +
                              std::string(kAliasPrefix) + "<network>/<id>/<ifname>) holds " +
                              std::to_string(kMaxAliasLength) + " bytes");
  }
  const size_t maxId = kMaxAliasLength - fixed;
  if (args.containerId.size() > maxId) {
    return CniError::make(kCodeInvalidEnvironment,
                          "CNI_CONTAINERID: " + std::to_string(args.containerId.size()) +
                              " characters is too long for network '" + config.network +
                              "' and CNI_IFNAME '" + args.ifName + "': at most " +
                              std::to_string(maxId) + " fit the node veth's alias (" +
                              std::string(kAliasPrefix) + "<network>/<id>/<ifname>, " +
                              std::to_string(kMaxAliasLength) + " bytes)");
  }
  return {};
}

}  // namespace

CniResult<Json> VethPlugin::add(const CmdArgs& args) {
  auto config = VethConfig::parse(args.config);
  if (!config) return config.error();
  if (auto r = checkAliasFits(*config, args); !r) return r.error();
  auto pod = openSandbox(args.netns);
  if (!pod) return pod.error();
  auto host = hostSocket();
  if (!host) return host.error();
  const std::string hostName = hostVethName(args.containerId, args.ifName);

  // Refuse before allocating anything, so a refusal leaves nothing to undo.
  if (auto l = pod->sock.link(args.ifName); l || !isNotFound(l.error())) {
    if (!l) return internal(l.error());
    return CniError::make(kCodeInterfaceExists, "CNI_IFNAME: interface " + args.ifName +
                                                    " already exists in " + args.netns);
  }
  if (auto l = host->link(hostName); l || !isNotFound(l.error())) {
    if (!l) return internal(l.error());
    return CniError::make(kCodeInterfaceExists,
                          "node interface " + hostName + " for " + args.containerId + "/" +
                              args.ifName + " already exists (alias '" + l->alias + "')");
  }

  auto ipam = IpamDelegate::create(args, config->ipamType);
  if (!ipam) return ipam.error();
  auto allocated = ipam->add();
  if (!allocated) return allocated.error();
  // From here a failure must leave nothing behind: deleting the node veth
  // takes the pod end (and every address and route on both) with it.
  Rollback undo([&] {
    (void)host->deleteLink(hostName);
    (void)ipam->del();
  });
  auto wired = wirePod(*host, *pod, args, *config, hostName, *allocated);
  if (!wired) return wired.error();

  // Chained after another interface plugin: keep its result, append ours.
  AddResult result = config->prevResult.value_or(AddResult{});
  const int podIndex = static_cast<int>(result.interfaces.size()) + 1;
  result.interfaces.push_back(wired->hostIf);
  result.interfaces.push_back(wired->podIf);
  for (auto ip : wired->ips) {
    ip.interfaceIndex = podIndex;
    result.ips.push_back(ip);
  }
  result.routes.insert(result.routes.end(), wired->routes.begin(), wired->routes.end());
  if (!allocated->dns.empty()) {
    result.dns = allocated->dns;
  } else if (!config->dns.empty()) {
    result.dns = config->dns;
  }
  undo.dismiss();
  return toJson(result, args.cniVersion);
}

CniResult<void> VethPlugin::del(const CmdArgs& args) {
  auto config = VethConfig::parse(args.config);
  if (!config) return config.error();
  auto host = hostSocket();
  if (!host) return host.error();
  // The node end is deterministic; deleting it removes the pod end too. Gone
  // already (netns deleted, earlier DEL) is success: DEL is idempotent.
  if (auto r = host->deleteLink(hostVethName(args.containerId, args.ifName));
      !r && !isNotFound(r.error())) {
    return internal(r.error());
  }
  auto ipam = IpamDelegate::create(args, config->ipamType);
  if (!ipam) return ipam.error();
  return ipam->del();
}

CniResult<void> VethPlugin::check(const CmdArgs& args) {
  auto config = VethConfig::parse(args.config);
  if (!config) return config.error();
  if (!config->prevResult) return CniError::make(kCodeInvalidConfig, "prevResult: required for CHECK");
  const AddResult& prev = *config->prevResult;
  auto ipam = IpamDelegate::create(args, config->ipamType);
  if (!ipam) return ipam.error();
  if (auto r = ipam->check(); !r) return r.error();

  auto pod = openSandbox(args.netns);
  if (!pod) return pod.error();
  auto host = hostSocket();
  if (!host) return host.error();
  const std::string hostName = hostVethName(args.containerId, args.ifName);

  auto podIt = std::find_if(prev.interfaces.begin(), prev.interfaces.end(), [&](const Interface& i) {
    return i.name == args.ifName && !i.sandbox.empty();
  });
  if (podIt == prev.interfaces.end()) {
    return mismatch("prevResult: no sandbox interface named " + args.ifName);
  }
  const int prevIndex = static_cast<int>(podIt - prev.interfaces.begin());
  auto link = pod->sock.link(args.ifName);
  if (!link) return mismatch("interface " + args.ifName + " missing in " + args.netns);
  if (link->kind != "veth") return mismatch("interface " + args.ifName + " is not a veth");
  if (!link->up) return mismatch("interface " + args.ifName + " is down");
  if (!podIt->mac.empty() && podIt->mac != link->mac) {
    return mismatch("interface " + args.ifName + " has MAC " + link->mac + ", prevResult " +
                    podIt->mac);
  }
  auto addresses = pod->sock.addresses(link->index);
  if (!addresses) return internal(addresses.error());
  std::vector<IpAddress> podIps;
  for (const auto& ip : prev.ips) {
    if (ip.interfaceIndex != prevIndex) continue;
    podIps.push_back(ip.address.address());
    if (std::find(addresses->begin(), addresses->end(), ip.address) == addresses->end()) {
      return mismatch("address " + ip.address.toString() + " missing on " + args.ifName);
    }
  }
  for (const auto& route : prev.routes) {
    auto table = pod->sock.routes(route.dst.family());
    if (!table) return internal(table.error());
    if (!hasRoute(*table, route.dst, route.gw, link->index)) {
      return mismatch("route " + route.dst.toString() +
                      (route.gw ? " via " + route.gw->toString() : "") + " missing on " +
                      args.ifName);
    }
  }

  auto hostLink = host->link(hostName);
  if (!hostLink) return mismatch("node interface " + hostName + " missing");
  if (!hostLink->up) return mismatch("node interface " + hostName + " is down");
  for (const auto& ip : podIps) {
    auto table = host->routes(ip.family());
    if (!table) return internal(table.error());
    if (!hasRoute(*table, IpPrefix::host(ip), std::nullopt, hostLink->index)) {
      return mismatch("node route to " + ip.toString() + " via " + hostName + " missing");
    }
  }
  return {};
}

CniResult<void> VethPlugin::gc(const CmdArgs& args) {
  auto config = VethConfig::parse(args.config);
  if (!config) return config.error();
  auto valid = parseValidAttachments(args.config);
  if (!valid) return valid.error();
  auto host = hostSocket();
  if (!host) return host.error();
  auto links = host->links();
  if (!links) return internal(links.error());
  // Keep going past failures (spec: GC removes as much as it can), then
  // report the first.
  std::optional<CniError> firstError;
  const std::string prefix = hostVethAlias(config->network, "", "");
  const std::string ourPrefix = prefix.substr(0, prefix.size() - 1);  // "sluice-cni/<net>/"
  for (const auto& l : *links) {
    if (l.kind != "veth" || l.alias.rfind(ourPrefix, 0) != 0) continue;
    const std::string rest = l.alias.substr(ourPrefix.size());
    const auto slash = rest.rfind('/');
    if (slash == std::string::npos) continue;
    const Attachment owner{rest.substr(0, slash), rest.substr(slash + 1)};
    if (std::find(valid->begin(), valid->end(), owner) != valid->end()) continue;
    if (auto r = host->deleteLink(l.name); !r && !isNotFound(r.error()) && !firstError) {
      firstError = internal(r.error());
    }
  }
  auto ipam = IpamDelegate::create(args, config->ipamType);
  if (!ipam) return ipam.error();
  if (auto r = ipam->gc(); !r && !firstError) firstError = r.error();
  if (firstError) return *firstError;
  return {};
}

CniResult<void> VethPlugin::status(const CmdArgs& args) {
  auto config = VethConfig::parse(args.config);
  if (!config) return config.error();
  // Without a usable IPAM plugin no ADD can succeed: that is "not available".
  auto ipam = IpamDelegate::create(args, config->ipamType);
  if (!ipam) return CniError::make(kCodePluginNotAvailable, ipam.error().msg, ipam.error().details);
  return ipam->status();
}

}  // namespace sluice::cni
