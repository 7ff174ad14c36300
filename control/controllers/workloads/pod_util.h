// Helpers the workload controllers share, on objects as JSON (what the REST
// client and informers carry): label selector matching, pod readiness and
// availability (minReadySeconds against the injected clock), controller
// references and the pod-template hash.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "control/client/api_client.h"
#include "control/client/informer.h"
#include "control/util/json_fields.h"
#include "control/util/rfc3339.h"

namespace sluice::controllers::workloads {

using client::Json;
using TimePoint = std::chrono::system_clock::time_point;

inline constexpr const char* kPodTemplateHashLabel = "pod-template-hash";
inline constexpr const char* kRevisionAnnotation = "deployment.kubernetes.io/revision";
inline constexpr const char* kRevisionHistoryAnnotation = "deployment.kubernetes.io/revision-history";
inline constexpr const char* kDesiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas";
inline constexpr const char* kMaxReplicasAnnotation = "deployment.kubernetes.io/max-replicas";
inline constexpr const char* kChangeCauseAnnotation = "kubernetes.io/change-cause";
inline constexpr const char* kForegroundFinalizer = "foregroundDeletion";

// metav1.LabelSelector semantics: matchLabels AND matchExpressions (In,
// NotIn, Exists, DoesNotExist). A null or missing selector matches nothing;
// an empty object matches everything.
bool selectorMatches(const Json& selector, const Json& labels);

// Small accessors tolerant of absent fields (metaOf, labelsOf, annotation:
// control/util/json_fields.h).
using util::annotation;
using util::labelsOf;
using util::metaOf;
using util::podReady;
bool isDeleting(const Json& obj);
bool hasFinalizer(const Json& obj, const std::string& finalizer);
int64_t generationOf(const Json& obj);
// spec.replicas, defaulting to 1 when absent (as the API defaults it).
int32_t specReplicas(const Json& obj);
int32_t statusInt(const Json& obj, const char* field);

// Pods.
bool podActive(const Json& pod);  // not finished and not terminating
// Ready for at least minReadySeconds at `now`. With `becomesAvailable`, the
// time it will be (when ready but not yet available).
bool podAvailable(const Json& pod, int32_t minReadySeconds, TimePoint now,
                  std::optional<TimePoint>* becomesAvailable = nullptr);
std::optional<TimePoint> podReadySince(const Json& pod);

// An ownerReference naming `owner` as controller (blockOwnerDeletion too).
Json controllerRefTo(const Json& owner, const std::string& apiVersion, const std::string& kind);
// True when obj's controller reference has this uid.
bool controlledBy(const Json& obj, const std::string& uid);
// obj's ownerReferences without those of `uid`.
Json ownerRefsWithout(const Json& obj, const std::string& uid);

// The pod-template-hash: FNV-1a (32 bit) over the template's canonical JSON
// and the collision count, rendered with Kubernetes' SafeEncodeString
// alphabet (no vowels, so it never spells words).
std::string templateHash(const Json& podTemplate, std::optional<int32_t> collisionCount);
// Two pod templates equal once pod-template-hash is removed from both
// (deploymentutil.EqualIgnoreHash).
bool equalIgnoreHash(const Json& a, const Json& b);

// Runs fn(0..n-1) on up to maxThreads threads (API writes in parallel, as
// client-go's slow-start batches do); returns when all are done.
void parallelFor(size_t n, size_t maxThreads, const std::function<void(size_t)>& fn);

// RFC 3339 timestamps: control/util/rfc3339.h.
using util::formatRfc3339;
using util::parseRfc3339;
TimePoint creationTime(const Json& obj);

}  // namespace sluice::controllers::workloads
