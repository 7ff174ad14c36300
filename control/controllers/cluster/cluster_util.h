// Small pieces the cluster controllers share: API timestamps (RFC 3339 with
// optional fractional seconds), resource quantities in milli-units, and pod
// predicates (ready, terminating, IPs) over the JSON objects the informers
// hold.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "control/client/api_client.h"

namespace sluice::controllers {

using client::Json;
using TimePoint = std::chrono::system_clock::time_point;

// "2024-05-01T12:00:00Z", "...00.123Z", "+02:00" offsets.
std::optional<TimePoint> parseApiTime(std::string_view s);
// metav1.Time: second precision.
std::string formatApiTime(TimePoint t);
// metav1.MicroTime (leases): "2024-05-01T12:00:00.123456Z".
std::string formatMicroTime(TimePoint t);
// Go's time.RFC3339Nano: fractional seconds with trailing zeros dropped.
std::string formatNanoTime(TimePoint t);

// A quantity ("500m", "2", "1.5", "128Mi", "1G", "1e3") in thousandths of
// its unit: cpu "500m" -> 500, memory "1Ki" -> 1024000. nullopt if malformed.
std::optional<int64_t> parseMilli(std::string_view q);

// Pod predicates, as k8s.io/kubernetes/pkg/api/v1/pod.
bool podReady(const Json& pod);
bool podTerminating(const Json& pod);
// Phase Succeeded or Failed: its containers will not run again.
bool podTerminal(const Json& pod);
// The pod's IP of a family ("IPv4" / "IPv6"), or "" when it has none.
std::string podIpOfFamily(const Json& pod, std::string_view family);
// A condition of status.conditions by type, or nullptr.
const Json* findCondition(const Json& obj, std::string_view type);
// Sets (or adds) a condition; lastTransitionTime changes only with status.
// Returns true if anything changed.
bool setCondition(Json& conditions, const Json& cond, const std::string& now);

// Label map `selector` (matchLabels semantics) matches `labels`. An empty or
// missing selector matches nothing (Services without selector).
bool selectorMatches(const Json& selector, const Json& labels);

// metadata.labels as an object (never null).
const Json& labelsOf(const Json& obj);
// obj[key] if it is an array, else an empty array (absent and null lists
// are the same on the wire).
Json arrayOf(const Json& obj, const char* key);

}  // namespace sluice::controllers
