// Kubeconfig: where an API server is and how to authenticate to it, read from
// a kubeconfig file the way client-go reads it (the current context's
// cluster and user). sluice writes one at DATA_DIR/kubeconfig; a Kubernetes
// cluster's admin.conf works too (client certificates as well as tokens).
#pragma once

#include <cstdint>
#include <string>

#include "dataplane/result.h"

namespace sluice::client {

struct Kubeconfig {
  std::string host;  // "127.0.0.1", "::1", "api.example"
  uint16_t port = 443;
  std::string caPem;  // empty: system trust store
  bool insecureSkipVerify = false;
  std::string token;
  std::string clientCertPem;
  std::string clientKeyPem;

  // Reads `path`; errors name the file and the field that is missing or bad.
  static Result<Kubeconfig> load(const std::string& path);
  // "https://host:port".
  std::string url() const;
};

}  // namespace sluice::client
