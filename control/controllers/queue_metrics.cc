#include "control/controllers/queue_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include "control/metrics/registry.h"

namespace sluice::controllers {

namespace {

// client-go's buckets: 1 µs to 1,000 s by tens.
const prometheus::Histogram::BucketBoundaries kBuckets = metrics::exponentialBuckets(1e-6, 10, 10);

struct Families {
  prometheus::Family<prometheus::Gauge>& depth = prometheus::BuildGauge()
                                                     .Name("workqueue_depth")
                                                     .Help("Current depth of workqueue")
                                                     .Register(metrics::apiServer());
  prometheus::Family<prometheus::Counter>& adds =
      prometheus::BuildCounter()
          .Name("workqueue_adds_total")
          .Help("Total number of adds handled by workqueue")
          .Register(metrics::apiServer());
  prometheus::Family<prometheus::Histogram>& queued =
      prometheus::BuildHistogram()
          .Name("workqueue_queue_duration_seconds")
          .Help("How long in seconds an item stays in workqueue before being requested.")
          .Register(metrics::apiServer());
  prometheus::Family<prometheus::Histogram>& work =
      prometheus::BuildHistogram()
          .Name("workqueue_work_duration_seconds")
          .Help(
              "How long in seconds processing an item from "
              "workqueue takes.")
          .Register(metrics::apiServer());
  prometheus::Family<prometheus::Counter>& retries =
      prometheus::BuildCounter()
          .Name("workqueue_retries_total")
          .Help("Total number of retries handled by workqueue")
          .Register(metrics::apiServer());
  prometheus::Family<prometheus::Gauge>& leader =
      prometheus::BuildGauge()
          .Name("leader_election_master_status")
          .Help(
              "Gauge of if the reporting system is master of the relevant lease, 0 indicates "
              "backup, 1 "
              "indicates master. 'name' is the string used to identify the lease.")
          .Register(metrics::apiServer());
};

Families& families() {
  static Families* f = new Families();  // never destroyed: queues may outlive statics at exit
  return *f;
}

class QueueMetrics final : public client::WorkQueueMetrics {
 public:
  explicit QueueMetrics(const std::string& name)
      : depth_(families().depth.Add({{"name", name}})),
        adds_(families().adds.Add({{"name", name}})),
        queued_(families().queued.Add({{"name", name}}, kBuckets)),
        work_(families().work.Add({{"name", name}}, kBuckets)),
        retries_(families().retries.Add({{"name", name}})) {}

  void added() override { adds_.Increment(); }
  void depth(size_t n) override { depth_.Set(static_cast<double>(n)); }
  void waited(double seconds) override { queued_.Observe(seconds); }
  void worked(double seconds) override { work_.Observe(seconds); }
  void retried() override { retries_.Increment(); }

 private:
  prometheus::Gauge& depth_;
  prometheus::Counter& adds_;
  prometheus::Histogram& queued_;
  prometheus::Histogram& work_;
  prometheus::Counter& retries_;
};

class Provider final : public client::WorkQueueMetricsProvider {
 public:
  std::unique_ptr<client::WorkQueueMetrics> forQueue(const std::string& name) override {
    return std::make_unique<QueueMetrics>(name);
  }
};

}  // namespace

client::WorkQueueMetricsProvider& queueMetricsProvider() {
  static Provider* p = new Provider();
  return *p;
}

void setLeader(bool leading) {
  families().leader.Add({{"name", "kube-controller-manager"}}).Set(leading ? 1 : 0);
}

}  // namespace sluice::controllers
