#include "ipvs/ipvs_types.h"

#include <cstdio>

namespace sluice::ipvs {
namespace {

std::string hostPort(const IpAddress& address, uint16_t port) {
  const std::string a = address.toString();
  return (address.isV6() ? "[" + a + "]" : a) + ":" + std::to_string(port);
}

uint8_t fullPrefix(IpFamily family) { return family == IpFamily::kV4 ? 32 : 128; }

}  // namespace

std::string_view toString(ForwardMethod method) {
  switch (method) {
    case ForwardMethod::kMasquerade:
      return "masq";
    case ForwardMethod::kLocal:
      return "local";
    case ForwardMethod::kTunnel:
      return "tunnel";
    case ForwardMethod::kDirectRoute:
      return "route";
    case ForwardMethod::kBypass:
      return "bypass";
  }
  return "unknown";
}

std::string_view toString(TunnelType type) {
  switch (type) {
    case TunnelType::kIpip:
      return "ipip";
    case TunnelType::kGue:
      return "gue";
    case TunnelType::kGre:
      return "gre";
  }
  return "unknown";
}

ServiceKey ServiceKey::tuple(const IpAddress& address, uint16_t port, Protocol protocol) {
  ServiceKey key;
  key.family = address.family();
  key.protocol = protocol;
  key.address = address;
  key.port = port;
  return key;
}

ServiceKey ServiceKey::mark(IpFamily family, uint32_t fwmark) {
  ServiceKey key;
  key.family = family;
  key.fwmark = fwmark;
  // The kernel stores fwmark services as TCP with a zero address; mirror it so a dumped key
  // compares equal to the one that created it.
  key.address = family == IpFamily::kV4 ? IpAddress() : IpAddress::v6({});
  return key;
}

std::string ServiceKey::toString() const {
  if (isFwmark()) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "fwmark 0x%x/%s", fwmark,
                  family == IpFamily::kV4 ? "IPv4" : "IPv6");
    return buf;
  }
  return hostPort(address, port) + "/" + std::string(sluice::toString(protocol));
}

bool Service::sameConfig(const Service& other) const {
  const uint8_t full = fullPrefix(key.family);
  return key == other.key && scheduler == other.scheduler &&
         (flags & ServiceFlags::kUserMask) == (other.flags & ServiceFlags::kUserMask) &&
         timeoutSeconds == other.timeoutSeconds &&
         persistencePrefix.value_or(full) == other.persistencePrefix.value_or(full) &&
         persistenceEngine == other.persistenceEngine;
}

std::string Destination::toString() const { return hostPort(address, port); }

bool Destination::sameConfig(const Destination& other) const {
  const bool tunnel = forward == ForwardMethod::kTunnel;
  return address == other.address && port == other.port && weight == other.weight &&
         forward == other.forward && upperThreshold == other.upperThreshold &&
         lowerThreshold == other.lowerThreshold &&
         (!tunnel || (tunnelType == other.tunnelType && tunnelPort == other.tunnelPort &&
                      tunnelFlags == other.tunnelFlags));
}

std::string Info::versionString() const {
  return std::to_string((version >> 16) & 0xff) + "." + std::to_string((version >> 8) & 0xff) +
         "." + std::to_string(version & 0xff);
}

}  // namespace sluice::ipvs
