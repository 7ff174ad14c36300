#include "dataplane/dpdk/api_codec.h"

#include <array>
#include <cstring>

namespace sluice::dpdk {

std::string addressBytes(const IpAddress& a) {
  const auto b = a.bytes();
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

Result<IpAddress> addressFrom(const std::string& bytes) {
  if (bytes.size() == 4) {
    return IpAddress::v4(
        {uint8_t(bytes[0]), uint8_t(bytes[1]), uint8_t(bytes[2]), uint8_t(bytes[3])});
  }
  if (bytes.size() == 16) {
    std::array<uint8_t, 16> b;
    std::memcpy(b.data(), bytes.data(), 16);
    return IpAddress::v6(b);
  }
  return Error::invalid("address of " + std::to_string(bytes.size()) + " bytes: want 4 or 16");
}

void toProto(const ServiceKey& k, api::ServiceKey& out) {
  out.set_ns(k.ns);
  out.set_name(k.name);
  out.set_port(k.port);
}

ServiceKey fromProto(const api::ServiceKey& in) { return {in.ns(), in.name(), in.port()}; }

void toProto(const Service& s, api::Service& out) {
  toProto(s.key, *out.mutable_key());
  out.set_protocol(static_cast<uint32_t>(s.protocol));
  for (const Frontend& f : s.frontends) {
    api::Frontend* p = out.add_frontends();
    p->set_address(addressBytes(f.address));
    p->set_port(f.port);
    p->set_protocol(static_cast<uint32_t>(f.protocol));
    p->set_scope(static_cast<uint32_t>(f.scope));
  }
  for (const Backend& b : s.backends) {
    api::Backend* p = out.add_backends();
    p->set_address(addressBytes(b.address));
    p->set_port(b.port);
    p->set_weight(b.weight);
    p->set_state(static_cast<uint32_t>(b.state));
    p->set_node_local(b.nodeLocal);
  }
  out.set_affinity(s.affinity.clientIp);
  out.set_affinity_timeout_s(s.affinity.timeoutSeconds);
  out.set_external_policy(static_cast<uint32_t>(s.externalPolicy));
  out.set_internal_policy(static_cast<uint32_t>(s.internalPolicy));
  out.set_algorithm(static_cast<uint32_t>(s.algorithm));
  out.set_maglev_table_size(s.maglevTableSize);
  // Only this mode's options travel: the process reads no other mode's.
  for (const auto& [key, value] : s.modeOptions) {
    if (key.rfind("dpdk-", 0) == 0) (*out.mutable_options())[key] = value;
  }
}

Result<Service> fromProto(const api::Service& in) {
  Service s;
  s.key = fromProto(in.key());
  const std::string where = "service " + s.key.toString() + ": ";
  auto protocol = [&](uint32_t v, const std::string& field) -> Result<Protocol> {
    if (v != 6 && v != 17 && v != 132 && v != 1 && v != 58) {
      return Error::invalid(where + field + ": protocol " + std::to_string(v));
    }
    return static_cast<Protocol>(v);
  };
  auto p = protocol(in.protocol(), "protocol");
  if (!p) return p.error();
  s.protocol = *p;
  for (int i = 0; i < in.frontends_size(); ++i) {
    const api::Frontend& f = in.frontends(i);
    const std::string field = "frontends[" + std::to_string(i) + "]";
    auto a = addressFrom(f.address());
    if (!a) return a.error().wrap(where + field + ".address");
    auto fp = protocol(f.protocol(), field + ".protocol");
    if (!fp) return fp.error();
    if (f.port() > 65535)
      return Error::invalid(where + field + ".port: " + std::to_string(f.port()));
    if (f.scope() > static_cast<uint32_t>(FrontendScope::kExternalIp)) {
      return Error::invalid(where + field + ".scope: " + std::to_string(f.scope()));
    }
    s.frontends.push_back({*a, uint16_t(f.port()), *fp, static_cast<FrontendScope>(f.scope())});
  }
  for (int i = 0; i < in.backends_size(); ++i) {
    const api::Backend& b = in.backends(i);
    const std::string field = "backends[" + std::to_string(i) + "]";
    auto a = addressFrom(b.address());
    if (!a) return a.error().wrap(where + field + ".address");
    if (b.port() > 65535 || b.weight() > 65535 ||
        b.state() > static_cast<uint32_t>(BackendState::kQuarantined)) {
      return Error::invalid(where + field + ": port, weight or state out of range");
    }
    s.backends.push_back({*a, uint16_t(b.port()), uint16_t(b.weight()),
                          static_cast<BackendState>(b.state()), b.node_local()});
  }
  s.affinity.clientIp = in.affinity();
  s.affinity.timeoutSeconds = in.affinity_timeout_s();
  if (in.external_policy() > 1 || in.internal_policy() > 1 || in.algorithm() > 1) {
    return Error::invalid(where + "policy or algorithm out of range");
  }
  s.externalPolicy = static_cast<TrafficPolicy>(in.external_policy());
  s.internalPolicy = static_cast<TrafficPolicy>(in.internal_policy());
  s.algorithm = static_cast<LbAlgorithm>(in.algorithm());
  s.maglevTableSize = in.maglev_table_size();
  for (const auto& [key, value] : in.options()) s.modeOptions[key] = value;
  return s;
}

}  // namespace sluice::dpdk
