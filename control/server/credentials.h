// The API server's TLS and client credentials, generated on first start into
// the data directory and reused after:
//   ca.crt / ca.key        a self-signed CA (ECDSA P-256, 10 years)
//   server.crt / server.key the serving certificate, re-issued by the CA on
//                          every start for the current listen address (SANs:
//                          127.0.0.1, ::1, localhost, the host's name and the
//                          listen address), so a changed --listen needs no
//                          new kubeconfig
//   token                  the admin bearer token (256 random bits, hex)
//   node-secret            the key node tokens are derived from (authz.h;
//                          256 random bits, hex; never leaves the server)
// and DATA_DIR/kubeconfig pointing kubectl at https://ADDR:PORT with the CA
// and the token. Every file is written 0600 (the data directory is 0700).
#pragma once

#include <string>
#include <vector>

#include "dataplane/result.h"

namespace sluice::server {

struct Credentials {
  std::string caCertPem;
  std::string certPem;  // serving certificate
  std::string keyPem;   // serving key
  std::string token;
  std::string nodeSecret;
};

// `sans` are extra DNS names or IP addresses for the serving certificate.
Result<Credentials> loadOrCreateCredentials(const std::string& dataDir, const std::vector<std::string>& sans);

// A kubeconfig for `serverUrl` ("https://127.0.0.1:6443") as `user`.
std::string kubeconfigYaml(const std::string& serverUrl, const std::string& caCertPem, const std::string& token,
                           const std::string& user);
// Writes the admin kubeconfig (0600).
Result<void> writeKubeconfig(const std::string& path, const std::string& serverUrl,
                             const std::string& caCertPem, const std::string& token);

std::string base64Encode(std::string_view data);
Result<std::string> base64Decode(std::string_view data);

}  // namespace sluice::server
