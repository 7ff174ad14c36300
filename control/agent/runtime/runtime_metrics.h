// The pod runtime's counters, under kubelet's names, in metrics::agent()
// (served on the agent's metrics address):
//   kubelet_started_pods_total, kubelet_started_pods_errors_total
//   kubelet_started_containers_total{container_type="container"|"init_container"}
//   kubelet_started_containers_errors_total{code,container_type}
//   prober_probe_total{probe_type="Liveness"|"Readiness",result="successful"|"failed"}
//   kubelet_runtime_operations_errors_total{operation_type}
// kubelet also labels probe results by container, pod, namespace and
// pod_uid; sluice leaves those out so series stay bounded while pods churn
// (`kubectl describe pod` has the per-pod story).
#pragma once

#include <string>

namespace sluice::agent::runtime_metrics {

void podStarted();
void podStartFailed();
void containerStarted(bool init);
void containerStartFailed(bool init, const std::string& code);
void probe(const char* type, bool success);
void operationFailed(const std::string& operation);

}  // namespace sluice::agent::runtime_metrics
