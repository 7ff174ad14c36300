#include "control/agent/runtime/runtime_metrics.h"

#include <prometheus/counter.h>

#include "control/metrics/registry.h"

namespace sluice::agent::runtime_metrics {

namespace {

prometheus::Family<prometheus::Counter>& counter(const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(metrics::agent());
}

struct Families {
  prometheus::Family<prometheus::Counter>& pods =
      counter("kubelet_started_pods_total", "Cumulative number of pods started");
  prometheus::Family<prometheus::Counter>& podErrors = counter(
      "kubelet_started_pods_errors_total", "Cumulative number of errors when starting pods");
  prometheus::Family<prometheus::Counter>& containers =
      counter("kubelet_started_containers_total", "Cumulative number of containers started");
  prometheus::Family<prometheus::Counter>& containerErrors =
      counter("kubelet_started_containers_errors_total",
              "Cumulative number of errors when starting containers");
  prometheus::Family<prometheus::Counter>& probes =
      counter("prober_probe_total",
              "Cumulative number of a liveness, readiness or startup probe for a container "
              "by result.");
  prometheus::Family<prometheus::Counter>& operations =
      counter("kubelet_runtime_operations_errors_total",
              "Cumulative number of runtime operation errors by operation type.");
};

Families& f() {
  static Families* families = new Families();  // never destroyed: pod workers may log at exit
  return *families;
}

const char* typeOf(bool init) { return init ? "init_container" : "container"; }

}  // namespace

void podStarted() { f().pods.Add({}).Increment(); }
void podStartFailed() { f().podErrors.Add({}).Increment(); }
void containerStarted(bool init) {
  f().containers.Add({{"container_type", typeOf(init)}}).Increment();
}
void containerStartFailed(bool init, const std::string& code) {
  f().containerErrors.Add({{"code", code}, {"container_type", typeOf(init)}}).Increment();
}
void probe(const char* type, bool success) {
  f().probes.Add({{"probe_type", type}, {"result", success ? "successful" : "failed"}}).Increment();
}
void operationFailed(const std::string& operation) {
  f().operations.Add({{"operation_type", operation}}).Increment();
}

}  // namespace sluice::agent::runtime_metrics
