// Kubeconfig: where an API server is and how to authenticate to it, read from
// a kubeconfig file the way client-go reads it (the current context's
// cluster and user). sluice writes one at DATA_DIR/kubeconfig; a Kubernetes
// cluster's admin.conf works too (client certificates as well as tokens).
//
// Any text is a value or an Error: YAML errors, wrong types and bad base64
// are reported with the file and field, never thrown past parse().
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

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

  // Reads the files a kubeconfig names (certificate-authority,
  // client-certificate, client-key, tokenFile), already resolved against the
  // kubeconfig's directory where relative.
  using FileReader = std::function<Result<std::string>(const std::string& path)>;

  // Reads `path`; errors name the file and the field that is missing or bad.
  static Result<Kubeconfig> load(const std::string& path);
  // The kubeconfig `text` that was read from `path` (which names it in
  // errors and anchors relative file names), reading named files with `read`.
  static Result<Kubeconfig> parse(std::string_view text, const std::string& path,
                                  const FileReader& read);
  // "https://host:port".
  std::string url() const;
};

}  // namespace sluice::client
