// A plain-HTTP metrics and health endpoint on Boost.Beast: GET /metrics
// (Prometheus text format from the given sources), /healthz, /livez and
// /readyz (200 "ok", or 500 with the failing check's reason, as
// kube-apiserver's and kube-proxy's). The agent serves it on
// --metrics-bind-address (kube-proxy's 127.0.0.1:10249).
//
// prometheus-cpp's own Exposer (civetweb) serves /metrics only, without
// health paths, hence Beast, which the API server already uses.
//
// Threading: one I/O thread; a scrape renders on it (scrapes are rare and
// small). Requests are bounded: 8 KiB of header, 5 s to send it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/metrics/registry.h"
#include "dataplane/result.h"

namespace sluice::metrics {

struct EndpointOptions {
  std::string address;  // "ADDR:PORT", "[::1]:PORT"; port 0: any free port
  std::vector<CollectFn> sources;
  // /readyz's check: nullopt when ready, else why not. None: always ready.
  std::function<std::optional<std::string>()> ready;
};

class Endpoint {
 public:
  static Result<std::unique_ptr<Endpoint>> start(EndpointOptions options);
  ~Endpoint();
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  uint16_t port() const;
  void stop();

 private:
  struct Impl;
  explicit Endpoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::metrics
