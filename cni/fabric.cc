#include "cni/fabric.h"

#include <cstdio>
#include <utility>

#include "cni/netlink.h"
#include "cni/netns.h"

namespace sluice::cni {
namespace {

constexpr std::string_view kHubBridge = "slfab0";
constexpr std::string_view kUplink = "uplink0";

IpAddress nthHost(const IpPrefix& prefix, size_t n) {
  IpAddress a = prefix.network().address();
  for (size_t i = 0; i < n; ++i) a = nextAddress(a);
  return a;
}

}  // namespace

std::string vxlanMac(uint32_t index) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "02:53:4c:%02x:%02x:%02x", (index >> 16) & 0xff,
                (index >> 8) & 0xff, index & 0xff);
  return buf;
}

Result<void> setUpNode(FabricMode mode, const FabricPeer& self, const std::string& underlayDevice) {
  if (auto r = writeSysctl("net/ipv4/ip_forward", "1"); !r) return r;
  if (mode != FabricMode::kVxlan) return {};
  auto sock = NetlinkSocket::create();
  if (!sock) return sock.error();
  auto under = sock->link(underlayDevice);
  if (!under) return under.error();
  VxlanSpec spec;
  spec.name = std::string(kVxlanDevice);
  spec.vni = kVxlanVni;
  spec.local = self.underlay;
  spec.underlayIndex = under->index;
  spec.mac = vxlanMac(self.index);
  if (auto r = sock->createVxlan(spec); !r) return r;
  auto vx = sock->link(kVxlanDevice);
  if (!vx) return vx.error();
  // The CIDR's network address names this node on the overlay (flannel's
  // convention), so peers route "<our CIDR> via <it> onlink".
  if (auto r = sock->addAddress(vx->index, IpPrefix::host(self.podCidr.network().address())); !r) {
    return r;
  }
  return sock->setUp(vx->index);
}

Result<void> addPeerRoutes(FabricMode mode, const std::vector<FabricPeer>& peers,
                           const std::string& underlayDevice) {
  auto sock = NetlinkSocket::create();
  if (!sock) return sock.error();
  auto dev = sock->link(mode == FabricMode::kVxlan ? std::string(kVxlanDevice) : underlayDevice);
  if (!dev) return dev.error();
  for (const auto& peer : peers) {
    const IpPrefix cidr = peer.podCidr.network();
    if (mode == FabricMode::kRoutes) {
      if (auto r = sock->addRoute({cidr, peer.underlay, dev->index, false}); !r) return r;
      continue;
    }
    const std::string mac = vxlanMac(peer.index);
    const IpAddress overlayGw = cidr.address();
    if (auto r = sock->addFdb(dev->index, mac, peer.underlay); !r) return r;
    if (auto r = sock->addNeighbor(dev->index, overlayGw, mac); !r) return r;
    if (auto r = sock->addRoute({cidr, overlayGw, dev->index, true}); !r) return r;
  }
  return {};
}

Fabric::Fabric(Fabric&& other) noexcept
    : hub_(std::exchange(other.hub_, std::string())), addresses_(std::move(other.addresses_)) {}

Fabric::~Fabric() {
  if (!hub_.empty()) (void)Netns::remove(hub_);
}

Result<Fabric> Fabric::create(const FabricOptions& options, const std::vector<SimNode>& nodes) {
  if (nodes.size() + 2 > rangeSize(options.underlay.network().address(), options.underlay.last())) {
    return Error::invalid("fabric: underlay " + options.underlay.toString() + " too small for " +
                          std::to_string(nodes.size()) + " nodes");
  }
  auto hub = Netns::create(options.hubNetnsName);
  if (!hub) return hub.error();
  std::vector<IpAddress> addresses;
  for (size_t i = 0; i < nodes.size(); ++i) addresses.push_back(nthHost(options.underlay, i + 1));
  // Owns the hub from here: an early return removes it and all uplinks.
  Fabric fabric(options.hubNetnsName, addresses);

  auto hubSock = NetlinkSocket::createIn(*hub);
  if (!hubSock) return hubSock.error();
  if (auto r = hubSock->createBridge(kHubBridge); !r) return r.error();
  auto bridge = hubSock->link(kHubBridge);
  if (!bridge) return bridge.error();
  if (auto r = hubSock->setUp(bridge->index); !r) return r.error();

  std::vector<FabricPeer> peers;
  for (size_t i = 0; i < nodes.size(); ++i) {
    peers.push_back({nodes[i].podCidr, addresses[i], static_cast<uint32_t>(i + 1)});
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto node = Netns::open(nodes[i].netnsPath);
    if (!node) return node.error();
    const std::string port = "fab" + std::to_string(i);
    if (auto r = hubSock->createVeth({port, std::string(kUplink), node->fd(), 0}); !r) {
      return r.error();
    }
    auto portLink = hubSock->link(port);
    if (!portLink) return portLink.error();
    if (auto r = hubSock->setMaster(portLink->index, bridge->index); !r) return r.error();
    if (auto r = hubSock->setUp(portLink->index); !r) return r.error();

    auto nodeSock = NetlinkSocket::createIn(*node);
    if (!nodeSock) return nodeSock.error();
    for (std::string_view dev : {std::string_view("lo"), kUplink}) {
      auto l = nodeSock->link(dev);
      if (!l) return l.error();
      if (auto r = nodeSock->setUp(l->index); !r) return r.error();
    }
    auto uplink = nodeSock->link(kUplink);
    if (!uplink) return uplink.error();
    auto address = IpPrefix::make(addresses[i], options.underlay.length());
    if (auto r = nodeSock->addAddress(uplink->index, *address); !r) return r.error();
    const FabricPeer self = peers[i];
    auto setUp = node->run([&] { return setUpNode(options.mode, self, std::string(kUplink)); });
    if (!setUp) return setUp.error();
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto node = Netns::open(nodes[i].netnsPath);
    if (!node) return node.error();
    std::vector<FabricPeer> others;
    for (size_t j = 0; j < nodes.size(); ++j) {
      if (j != i) others.push_back(peers[j]);
    }
    auto routed = node->run([&] { return addPeerRoutes(options.mode, others, std::string(kUplink)); });
    if (!routed) return routed.error();
  }
  return fabric;
}

}  // namespace sluice::cni
