// Metrics through prometheus-cpp: the process-wide registries each
// /metrics endpoint serves, and helpers for families computed at scrape
// time (gauges read from live state, counters a mode keeps in its own
// maps) so values are never stale and nothing polls.
//
// Two registries, as Kubernetes keeps one registry per binary: `sluice up`
// runs the API server and the agent in one process, and each endpoint
// shows only its component's series — apiServer() on the API server's
// /metrics (requests, storage, controllers' work queues, leader status),
// agent() on the agent's metrics address (proxy, pods, probes). Families
// are registered once per process and shared by every instance of a part
// (tests start several servers in one process; counters then add up, as
// they would across restarts of a scraped target).
//
// Threading: prometheus-cpp's registries and metrics are thread-safe.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace sluice::metrics {

prometheus::Registry& apiServer();
prometheus::Registry& agent();

// Families produced by a function on each scrape.
using CollectFn = std::function<std::vector<prometheus::MetricFamily>()>;

// A family to fill with sample() (type counter, gauge or untyped).
prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type);
void sample(prometheus::MetricFamily& family, double value, const prometheus::Labels& labels = {});
// A one-sample gauge or counter family.
prometheus::MetricFamily single(std::string name, std::string help, prometheus::MetricType type,
                                double value);

// The Prometheus text exposition format (0.0.4) of every family of
// `sources`, registries and functions alike.
std::string serialize(const std::vector<CollectFn>& sources);
// A registry as a source for serialize().
CollectFn collect(const prometheus::Registry& registry);

// Exponential buckets as Prometheus' client_golang ExponentialBuckets.
std::vector<double> exponentialBuckets(double start, double factor, int count);

}  // namespace sluice::metrics
