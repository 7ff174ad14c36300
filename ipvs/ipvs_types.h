// The kernel's IPVS tables as values: virtual services (by address/port/protocol or by firewall
// mark), their destinations (real servers), counters and global settings. Plain data with no
// netlink in sight, so the IPVS ProxyMode and its tests can build, compare and print them.
//
// Units and byte order: ports and addresses are as everywhere in sluice (IpAddress holds network
// order; ports here are host order, converted at the netlink edge); timeouts are seconds.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dataplane/ip_address.h"

namespace sluice::ipvs {

// IP_VS_SVC_F_* from <linux/ip_vs.h>. The scheduler flags mean what the service's scheduler says:
// for mh, kSched1 is MH_FALLBACK (skip a destination whose weight is 0 or that is overloaded,
// instead of dropping) and kSched2 MH_PORT (hash the source port too, not only the address); sh
// reads them the same way. The uapi header defines only the SH aliases; ip_vs_mh.c defines the
// MH ones privately, hence the names here.
struct ServiceFlags {
  static constexpr uint32_t kPersistent = 0x0001;
  static constexpr uint32_t kHashed = 0x0002;  // kernel-owned: reported, never sent
  static constexpr uint32_t kOnePacket = 0x0004;
  static constexpr uint32_t kSched1 = 0x0008;
  static constexpr uint32_t kSched2 = 0x0010;
  static constexpr uint32_t kSched3 = 0x0020;
  static constexpr uint32_t kMhFallback = kSched1;
  static constexpr uint32_t kMhPort = kSched2;
  static constexpr uint32_t kShFallback = kSched1;
  static constexpr uint32_t kShPort = kSched2;
  // What a client may set. Sent as the flags mask, so an update also clears flags left out.
  static constexpr uint32_t kUserMask = kPersistent | kOnePacket | kSched1 | kSched2 | kSched3;
};

// IP_VS_CONN_F_* forwarding methods (the low 3 bits of a destination's conn flags).
enum class ForwardMethod : uint8_t {
  kMasquerade = 0,   // NAT: rewrite the destination, replies must come back through this node
  kLocal = 1,        // deliver locally (the kernel reports this for a local address)
  kTunnel = 2,       // encapsulate (IPIP, GUE or GRE) to the real server
  kDirectRoute = 3,  // DR: rewrite the MAC only; the real server holds the VIP
  kBypass = 4,
};

// IP_VS_CONN_F_TUNNEL_TYPE_*: kernel 5.2 added GUE, 5.3 GRE. IPIP is what older kernels do.
enum class TunnelType : uint8_t { kIpip = 0, kGue = 1, kGre = 2 };

std::string_view toString(ForwardMethod method);
std::string_view toString(TunnelType type);

// Identity of a virtual service: either (family, protocol, address, port) or (family, fwmark).
struct ServiceKey {
  IpFamily family = IpFamily::kV4;
  Protocol protocol = Protocol::kTcp;  // TCP, UDP or SCTP; fwmark services ignore it
  IpAddress address;                   // of `family`
  uint16_t port = 0;                   // host order; 0 is the kernel's "any port" service
  uint32_t fwmark = 0;                 // non-zero: a firewall-mark service

  static ServiceKey tuple(const IpAddress& address, uint16_t port, Protocol protocol);
  static ServiceKey mark(IpFamily family, uint32_t fwmark);

  bool isFwmark() const { return fwmark != 0; }
  // "10.96.0.10:53/UDP", "[fd00::a]:443/TCP", "fwmark 0x10/IPv4": the name errors use.
  std::string toString() const;

  friend auto operator<=>(const ServiceKey&, const ServiceKey&) = default;
  friend bool operator==(const ServiceKey&, const ServiceKey&) = default;
};

// Counters the kernel keeps per service and per destination (IPVS_*_ATTR_STATS64). The kernel's
// estimator folds its per-CPU counters into these every 2 s, so a read right after traffic can
// still show zeros. Rates are per second, averaged by that estimator.
struct Stats {
  uint64_t connections = 0;
  uint64_t packetsIn = 0;
  uint64_t packetsOut = 0;
  uint64_t bytesIn = 0;
  uint64_t bytesOut = 0;
  uint64_t connectionsPerSecond = 0;
  uint64_t packetsInPerSecond = 0;
  uint64_t packetsOutPerSecond = 0;
  uint64_t bytesInPerSecond = 0;
  uint64_t bytesOutPerSecond = 0;
  // True when the reply carried the 64-bit block (kernel >= 4.1); else the 32-bit legacy one.
  bool from64Bit = false;
  // False when the reply carried no statistics at all.
  bool present = false;

  friend bool operator==(const Stats&, const Stats&) = default;
};

struct Service {
  ServiceKey key;
  // An IPVS scheduler module's name without the ip_vs_ prefix: rr, wrr, lc, wlc, sh, mh, ...
  // At most 15 characters (IP_VS_SCHEDNAME_MAXLEN with its NUL). "none" binds no scheduler.
  std::string scheduler = "rr";
  uint32_t flags = 0;  // ServiceFlags; kHashed is ignored on the way in
  // Persistence (ServiceFlags::kPersistent): how long a client sticks to its destination,
  // seconds; and the client-address prefix that shares it (nullopt: the full address, /32 or
  // /128). IPv4 travels as a mask, IPv6 as a prefix length; this type hides the difference.
  uint32_t timeoutSeconds = 0;
  std::optional<uint8_t> persistencePrefix;
  // A persistence engine ("sip"); empty for none.
  std::string persistenceEngine;
  Stats stats;  // filled by reads only

  // Fields a write sets (everything but stats), for comparing desired with dumped state.
  bool sameConfig(const Service& other) const;
};

struct Destination {
  IpAddress address;    // may differ in family from the service only with kTunnel
  uint16_t port = 0;    // host order
  uint32_t weight = 1;  // 0 takes no new connections (a draining backend)
  ForwardMethod forward = ForwardMethod::kMasquerade;
  // Connection thresholds: above upper the destination is overloaded, it takes new connections
  // again below lower. 0 disables. lower must not exceed upper (the kernel says ERANGE).
  uint32_t upperThreshold = 0;
  uint32_t lowerThreshold = 0;
  // Tunnel encapsulation, used with kTunnel only (kernel >= 5.2; older ones tunnel IPIP).
  TunnelType tunnelType = TunnelType::kIpip;
  uint16_t tunnelPort = 0;   // host order; GUE needs one
  uint16_t tunnelFlags = 0;  // IP_VS_TUNNEL_ENCAP_FLAG_* (checksum options)
  // Filled by reads only.
  uint32_t activeConnections = 0;
  uint32_t inactiveConnections = 0;
  uint32_t persistentConnections = 0;
  Stats stats;

  // "10.244.1.7:53", "[fd00::7]:53": the name errors use.
  std::string toString() const;
  bool sameConfig(const Destination& other) const;
};

// IPVS_CMD_GET_INFO.
struct Info {
  uint32_t version = 0;               // IP_VS_VERSION_CODE, 0x010201 for 1.2.1
  uint32_t connTableSize = 0;         // buckets of the connection hash (ip_vs_conn_tab_bits)
  std::string versionString() const;  // "1.2.1"
};

// IPVS_CMD_GET_CONFIG / SET_CONFIG: connection timeouts in seconds (tcp established, tcp after
// FIN, udp). Setting 0 leaves that timeout as it is (the kernel's rule).
struct Timeouts {
  uint32_t tcpSeconds = 0;
  uint32_t tcpFinSeconds = 0;
  uint32_t udpSeconds = 0;
  friend bool operator==(const Timeouts&, const Timeouts&) = default;
};

}  // namespace sluice::ipvs
