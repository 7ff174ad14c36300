// client-go's work-queue metrics for the controllers' queues, under their
// Kubernetes names (labelled name=<controller>), and the controller
// manager's leader_election_master_status{name="kube-controller-manager"}.
// Registered in metrics::apiServer(): the controllers run inside `sluice
// server`, so they are scraped on its /metrics (kube-controller-manager
// serves the same series on its own port).
#pragma once

#include "control/client/work_queue.h"

namespace sluice::controllers {

// The process-wide provider (installed by ControllerManager::start).
client::WorkQueueMetricsProvider& queueMetricsProvider();

// 1 while this process's controllers run (sluice runs them in every
// server; with one server it is always the leader), else 0.
void setLeader(bool leading);

}  // namespace sluice::controllers
