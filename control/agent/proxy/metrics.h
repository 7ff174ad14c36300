// Prometheus text-format metrics of the agent's proxy: a histogram type and a
// small plain-HTTP server answering GET /metrics (kube-proxy's
// --metrics-bind-address, default 127.0.0.1:10249). The server renders by
// calling back into its owner on each scrape, so values are never stale.
//
// Threading: Histogram is thread-safe; MetricsServer runs one thread that
// serves one connection at a time (scrapes are rare and small).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/result.h"

namespace sluice::agent {

class Histogram {
 public:
  // `bounds`: upper bounds of the buckets, seconds, ascending (+Inf implied).
  explicit Histogram(std::vector<double> bounds);
  // 1 ms .. ~17 min doubling: 1 ms-resolution programming latencies and
  // multi-minute outliers (kube-proxy's buckets start at 250 ms).
  static std::vector<double> defaultBounds();

  void observe(double seconds);
  uint64_t count() const;
  double sum() const;
  // Appends the _bucket/_sum/_count lines of `name` (with HELP and TYPE).
  void render(const std::string& name, const std::string& help, std::string& out) const;

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> buckets_;  // non-cumulative, one per bound plus +Inf
  uint64_t count_ = 0;
  double sum_ = 0;
};

// Appends one gauge or counter sample with HELP and TYPE lines.
void renderSample(const std::string& name, const std::string& type, const std::string& help,
                  double value, std::string& out);
// Prometheus label value escaping (backslash, quote, newline).
std::string escapeLabel(const std::string& value);

class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  // Listens on "ADDR:PORT" ("127.0.0.1:10249", "[::1]:10249"; port 0: any).
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& address, Render render);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  uint16_t port() const { return port_; }
  void stop();

 private:
  MetricsServer(int fd, uint16_t port, Render render);
  void run();
  void serve(int conn);

  int fd_ = -1;
  uint16_t port_ = 0;
  Render render_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace sluice::agent
