#include "control/metrics/registry.h"

#include <prometheus/text_serializer.h>

namespace sluice::metrics {

prometheus::Registry& apiServer() {
  static prometheus::Registry* r =
      new prometheus::Registry();  // never destroyed: threads may scrape at exit
  return *r;
}

prometheus::Registry& agent() {
  static prometheus::Registry* r = new prometheus::Registry();
  return *r;
}

prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void sample(prometheus::MetricFamily& f, double value, const prometheus::Labels& labels) {
  prometheus::ClientMetric m;
  for (const auto& [k, v] : labels) m.label.push_back({k, v});
  switch (f.type) {
    case prometheus::MetricType::Counter:
      m.counter.value = value;
      break;
    case prometheus::MetricType::Gauge:
      m.gauge.value = value;
      break;
    default:
      m.untyped.value = value;
      break;
  }
  f.metric.push_back(std::move(m));
}

prometheus::MetricFamily single(std::string name, std::string help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily f = family(std::move(name), std::move(help), type);
  sample(f, value);
  return f;
}

CollectFn collect(const prometheus::Registry& registry) {
  return [&registry] { return registry.Collect(); };
}

std::string serialize(const std::vector<CollectFn>& sources) {
  std::vector<prometheus::MetricFamily> all;
  for (const CollectFn& s : sources) {
    auto part = s();
    all.insert(all.end(), std::make_move_iterator(part.begin()),
               std::make_move_iterator(part.end()));
  }
  return prometheus::TextSerializer().Serialize(all);
}

std::vector<double> exponentialBuckets(double start, double factor, int count) {
  std::vector<double> b;
  for (double v = start; static_cast<int>(b.size()) < count; v *= factor) b.push_back(v);
  return b;
}

}  // namespace sluice::metrics
