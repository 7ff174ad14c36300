// Builders for Services in tests: terse, with Kubernetes-looking defaults.
#pragma once

#include <string>

#include "dataplane/service.h"

namespace sluice::testing {

inline IpAddress ip(const std::string& text) { return IpAddress::parse(text).value(); }

inline Backend backend(const std::string& addr, uint16_t port,
                       BackendState state = BackendState::kActive, bool nodeLocal = false) {
  Backend b;
  b.address = ip(addr);
  b.port = port;
  b.state = state;
  b.nodeLocal = nodeLocal;
  return b;
}

// A ClusterIP service "default/<name>:http" on clusterIp:80/TCP with the given backends.
inline Service clusterIpService(const std::string& name, const std::string& clusterIp,
                                std::vector<Backend> backends = {}) {
  Service s;
  s.key = {"default", name, "http"};
  s.frontends.push_back({ip(clusterIp), 80, Protocol::kTcp, FrontendScope::kClusterIp});
  s.backends = std::move(backends);
  return s;
}

}  // namespace sluice::testing
