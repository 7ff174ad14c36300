// A Store decorator that times every operation of the store under the API
// server (SQLite or etcd alike) and counts its errors:
//   apiserver_storage_request_duration_seconds{operation,type}
//   apiserver_storage_request_errors_total{operation,type}
// (kube-apiserver's etcd_request_duration_seconds, named for the store;
// `type` is the resource, from the key "/registry/<resource>/..."), and
// counts objects per resource for apiserver_storage_objects, as
// kube-apiserver does: by listing keys at most once a minute, on scrape.
// Expected outcomes (kAborted on a stale compare-and-swap, kNotFound,
// kAlreadyExists) are answers, not store errors, and are not counted.
#pragma once

#include <prometheus/metric_family.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "control/store/store.h"

namespace sluice::server {

class InstrumentedStore final : public store::Store {
 public:
  explicit InstrumentedStore(std::unique_ptr<store::Store> inner) : inner_(std::move(inner)) {}

  Result<int64_t> currentRevision() override;
  Result<std::optional<store::KeyValue>> get(std::string_view key) override;
  Result<store::ListResult> list(std::string_view prefix, int64_t limit,
                                 std::string_view startAfter, int64_t atRevision) override;
  Result<int64_t> create(std::string_view key, std::string_view value) override;
  Result<store::KeyValue> update(std::string_view key, std::string_view value,
                                 int64_t expectedModRevision) override;
  Result<store::KeyValue> remove(std::string_view key, int64_t expectedModRevision) override;
  Result<std::unique_ptr<store::Watch>> watch(std::string_view prefix,
                                              int64_t afterRevision) override;
  Result<void> compact(int64_t revision) override;
  Result<int64_t> compactedRevision() override;

  // apiserver_storage_objects, recounted when older than a minute.
  std::vector<prometheus::MetricFamily> collectObjectCounts();

 private:
  std::unique_ptr<store::Store> inner_;
  std::mutex countMu_;
  std::chrono::steady_clock::time_point countedAt_;
  std::map<std::string, int64_t> counts_;
};

}  // namespace sluice::server
