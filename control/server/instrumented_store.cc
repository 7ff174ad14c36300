#include "control/server/instrumented_store.h"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include "control/metrics/registry.h"

namespace sluice::server {

namespace {

// kube-apiserver's etcd_request_duration_seconds buckets.
const prometheus::Histogram::BucketBoundaries kBuckets = {
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2,
    3,     4,     5,    6,   8,   10,  15,  20,  30,  45,   60};
// How stale apiserver_storage_objects may be (kube-apiserver: one minute).
constexpr std::chrono::seconds kCountInterval{60};
// Keys listed per page when counting: bounds the memory a count takes.
constexpr int64_t kCountPage = 500;

prometheus::Family<prometheus::Histogram>& durations() {
  static auto& f =
      prometheus::BuildHistogram()
          .Name("apiserver_storage_request_duration_seconds")
          .Help("Storage request latency in seconds for each operation and object type.")
          .Register(metrics::apiServer());
  return f;
}

prometheus::Family<prometheus::Counter>& errors() {
  static auto& f = prometheus::BuildCounter()
                       .Name("apiserver_storage_request_errors_total")
                       .Help("Storage requests that failed, for each operation and object type.")
                       .Register(metrics::apiServer());
  return f;
}

// "/registry/pods/default/web" -> "pods"; "" for keys outside /registry/.
std::string typeOf(std::string_view key) {
  constexpr std::string_view kRoot = "/registry/";
  if (key.substr(0, kRoot.size()) != kRoot) return "";
  key.remove_prefix(kRoot.size());
  return std::string(key.substr(0, key.find('/')));
}

bool isStoreError(const Error& e) {
  return e.code != ErrorCode::kAborted && e.code != ErrorCode::kNotFound &&
         e.code != ErrorCode::kAlreadyExists && e.code != ErrorCode::kOutOfRange;
}

template <typename R>
R timed(const char* operation, std::string_view key, const std::function<R()>& call) {
  auto began = std::chrono::steady_clock::now();
  R r = call();
  const prometheus::Labels labels = {{"operation", operation}, {"type", typeOf(key)}};
  durations()
      .Add(labels, kBuckets)
      .Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count());
  if (!r && isStoreError(r.error())) errors().Add(labels).Increment();
  return r;
}

}  // namespace

Result<int64_t> InstrumentedStore::currentRevision() { return inner_->currentRevision(); }

Result<std::optional<store::KeyValue>> InstrumentedStore::get(std::string_view key) {
  return timed<Result<std::optional<store::KeyValue>>>("get", key,
                                                       [&] { return inner_->get(key); });
}

Result<store::ListResult> InstrumentedStore::list(std::string_view prefix, int64_t limit,
                                                  std::string_view startAfter, int64_t atRevision) {
  return timed<Result<store::ListResult>>(
      "list", prefix, [&] { return inner_->list(prefix, limit, startAfter, atRevision); });
}

Result<int64_t> InstrumentedStore::create(std::string_view key, std::string_view value) {
  return timed<Result<int64_t>>("create", key, [&] { return inner_->create(key, value); });
}

Result<store::KeyValue> InstrumentedStore::update(std::string_view key, std::string_view value,
                                                  int64_t expectedModRevision) {
  return timed<Result<store::KeyValue>>(
      "update", key, [&] { return inner_->update(key, value, expectedModRevision); });
}

Result<store::KeyValue> InstrumentedStore::remove(std::string_view key,
                                                  int64_t expectedModRevision) {
  return timed<Result<store::KeyValue>>("delete", key,
                                        [&] { return inner_->remove(key, expectedModRevision); });
}

Result<std::unique_ptr<store::Watch>> InstrumentedStore::watch(std::string_view prefix,
                                                               int64_t afterRevision) {
  return timed<Result<std::unique_ptr<store::Watch>>>(
      "watch", prefix, [&] { return inner_->watch(prefix, afterRevision); });
}

Result<void> InstrumentedStore::compact(int64_t revision) {
  return timed<Result<void>>("compact", "", [&] { return inner_->compact(revision); });
}

Result<int64_t> InstrumentedStore::compactedRevision() { return inner_->compactedRevision(); }

std::vector<prometheus::MetricFamily> InstrumentedStore::collectObjectCounts() {
  std::lock_guard lock(countMu_);
  auto now = std::chrono::steady_clock::now();
  if (counts_.empty() || now - countedAt_ >= kCountInterval) {
    std::map<std::string, int64_t> counts;
    std::string after;
    bool complete = true;
    while (true) {
      auto page = inner_->list("/registry/", kCountPage, after, 0);
      if (!page) {
        complete = false;
        break;
      }
      for (const store::KeyValue& kv : page->kvs) ++counts[typeOf(kv.key)];
      if (!page->more || page->kvs.empty()) break;
      after = page->kvs.back().key;
    }
    // A failed count keeps the last one rather than reporting zeros.
    if (complete) {
      counts_ = std::move(counts);
      countedAt_ = now;
    }
  }
  prometheus::MetricFamily f =
      metrics::family("apiserver_storage_objects",
                      "Number of stored objects at the time of last check split by kind.",
                      prometheus::MetricType::Gauge);
  for (const auto& [resource, n] : counts_)
    metrics::sample(f, static_cast<double>(n), {{"resource", resource}});
  return {std::move(f)};
}

}  // namespace sluice::server
