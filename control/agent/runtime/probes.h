// Container probes as the kubelet runs them: httpGet (status 200-399 is
// success), tcpSocket (a completed connect), exec (exit code 0), each with
// timeoutSeconds; and the per-probe schedule and thresholds (initialDelay,
// period, failureThreshold, successThreshold) as a small state machine.
// Network probes connect from inside the pod's network namespace to the pod
// IP, which works whichever node namespace the pod hangs under.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace sluice::agent {

struct ProbeTarget {
  std::string netnsPath;
  std::string podIp;
  pid_t containerPid = 0;
  const nlohmann::json* container = nullptr;  // for named ports
};

struct ProbeOutcome {
  bool success = false;
  std::string message;  // why it failed
};

ProbeOutcome runProbe(const nlohmann::json& probe, const ProbeTarget& target);

// Schedule and thresholds of one probe of one running container.
class ProbeState {
 public:
  // `initiallyHealthy`: liveness starts as passing, readiness as failing.
  ProbeState(const nlohmann::json& probe, bool initiallyHealthy);
  // Whether the probe is due at `nowMs` for a container started at
  // `startedAtMs`.
  bool due(int64_t nowMs, int64_t startedAtMs) const;
  // Records a result; returns the (possibly changed) verdict.
  bool record(bool success, int64_t nowMs);
  bool healthy() const { return healthy_; }
  const nlohmann::json& spec() const { return spec_; }

 private:
  nlohmann::json spec_;
  int64_t initialDelayMs_ = 0;
  int64_t periodMs_ = 10000;
  int failureThreshold_ = 3;
  int successThreshold_ = 1;
  int failures_ = 0;
  int successes_ = 0;
  int64_t lastMs_ = 0;
  bool healthy_ = false;
};

}  // namespace sluice::agent
