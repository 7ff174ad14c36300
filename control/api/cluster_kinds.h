// The kinds the cluster controllers add to the API: coordination.k8s.io/v1
// Lease, autoscaling/v2 (and v1) HorizontalPodAutoscaler, and
// metrics.k8s.io/v1beta1 PodMetrics/NodeMetrics — their defaulting,
// validation, the v1 <-> stored HPA conversion, and table rows. Registered
// in registry.cc; printers listed in tables.cc.
#pragma once

#include <vector>

#include "control/api/field_errors.h"
#include "control/api/json_codec.h"
#include "control/api/proto/autoscaling.pb.h"
#include "control/api/proto/coordination.pb.h"
#include "control/api/proto/metrics.pb.h"
#include "control/api/time_util.h"

namespace sluice::api {

void validateLease(const Lease& lease, FieldErrors& errs);
void validatePodMetrics(const PodMetrics& m, FieldErrors& errs);
void validateNodeMetrics(const NodeMetrics& m, FieldErrors& errs);

// SetDefaults_HorizontalPodAutoscaler: minReplicas 1, cpu at 80 % when no
// metric is given.
void defaultHorizontalPodAutoscaler(HorizontalPodAutoscaler& hpa);
// autoscaling/v1 writes: targetCPUUtilizationPercentage becomes the cpu
// Resource metric, then the v2 defaults apply.
void defaultHorizontalPodAutoscalerV1(HorizontalPodAutoscaler& hpa);
// A v1 update keeps what only v2 can express (behavior, other metrics).
void prepareHorizontalPodAutoscalerV1Update(HorizontalPodAutoscaler& hpa, const HorizontalPodAutoscaler& old);
// The stored object as autoscaling/v1 shows it.
void toHorizontalPodAutoscalerV1(google::protobuf::Message& obj);
void validateHorizontalPodAutoscaler(const HorizontalPodAutoscaler& hpa, FieldErrors& errs);

// Table rows (printers.go): HPA, Lease.
std::vector<Json> horizontalPodAutoscalerRow(const google::protobuf::Message& m, Clock::time_point now);
std::vector<Json> leaseRow(const google::protobuf::Message& m, Clock::time_point now);

}  // namespace sluice::api
