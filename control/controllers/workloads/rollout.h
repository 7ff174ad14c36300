// Deployment rollout arithmetic and status, as k8s.io/kubernetes'
// pkg/controller/deployment/util: maxSurge/maxUnavailable (int or percent,
// surge rounds up, unavailable down), the new ReplicaSet's next size,
// proportional scaling shares, revisions, the Progressing/Available
// conditions and the status computed from a deployment's ReplicaSets. Pure
// functions over JSON objects, so they are tested without a server.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "control/controllers/workloads/pod_util.h"

namespace sluice::controllers::workloads {

// Condition types and reasons kubectl and users key on.
inline constexpr const char* kProgressing = "Progressing";
inline constexpr const char* kAvailable = "Available";
inline constexpr const char* kReplicaFailure = "ReplicaFailure";
inline constexpr const char* kNewRSReason = "NewReplicaSetCreated";
inline constexpr const char* kFoundNewRSReason = "FoundNewReplicaSet";
inline constexpr const char* kRSUpdatedReason = "ReplicaSetUpdated";
inline constexpr const char* kNewRSAvailableReason = "NewReplicaSetAvailable";
inline constexpr const char* kTimedOutReason = "ProgressDeadlineExceeded";
inline constexpr const char* kFailedRSCreateReason = "ReplicaSetCreateError";
inline constexpr const char* kPausedReason = "DeploymentPaused";
inline constexpr const char* kResumedReason = "DeploymentResumed";
inline constexpr const char* kMinAvailableReason = "MinimumReplicasAvailable";
inline constexpr const char* kMinUnavailableReason = "MinimumReplicasUnavailable";

// intstr.GetScaledValueFromIntOrPercent: an int, or "N%" of total rounded
// up or down. Anything else counts as 0.
int32_t scaledValue(const Json& intOrPercent, int32_t total, bool roundUp);

bool isRollingUpdate(const Json& d);
// Resolved fenceposts: both 0 becomes unavailable 1.
int32_t maxSurge(const Json& d);
int32_t maxUnavailable(const Json& d);

int32_t sumSpecReplicas(const std::vector<const Json*>& rss);
int32_t sumStatus(const std::vector<const Json*>& rss, const char* field);
std::vector<const Json*> activeReplicaSets(const std::vector<const Json*>& rss);

// deploymentutil.NewRSNewReplicas: the new ReplicaSet's size for this step.
int32_t newRSNewReplicas(const Json& d, const std::vector<const Json*>& all, const Json& newRS);
// deploymentutil.GetProportion for proportional scaling.
int32_t proportion(const Json& rs, const Json& d, int32_t toAdd, int32_t added);

int64_t revisionOf(const Json& rs);
int64_t maxRevision(const std::vector<const Json*>& rss);

// The annotations Deployment adds to its ReplicaSets; true when changed.
bool setReplicasAnnotations(Json& rs, int32_t desired, int32_t max);
// Copies deployment annotations (except the rollout bookkeeping ones), the
// revision (only upwards, recording the old one in revision-history) and,
// for a new ReplicaSet, the replica annotations. True when changed.
bool setNewReplicaSetAnnotations(const Json& d, Json& rs, int64_t newRevision, bool exists);

bool hasProgressDeadline(const Json& d);
const Json* condition(const Json& status, const std::string& type);
Json newCondition(const std::string& type, const std::string& status, const std::string& reason,
                  const std::string& message, TimePoint now);
// deploymentutil.SetDeploymentCondition: same status and reason is a no-op;
// same status keeps lastTransitionTime.
void setCondition(Json& status, Json cond);
void removeCondition(Json& status, const std::string& type);

// calculateStatus: counts from all ReplicaSets plus the Available condition.
Json calculateStatus(const Json& d, const std::vector<const Json*>& all, const Json* newRS, TimePoint now);
bool deploymentComplete(const Json& d, const Json& status);
bool deploymentProgressing(const Json& d, const Json& newStatus);
bool deploymentTimedOut(const Json& d, const Json& newStatus, TimePoint now);
// Semantic equality of two status objects (absent counters are 0).
bool sameStatus(const Json& a, const Json& b);

}  // namespace sluice::controllers::workloads
