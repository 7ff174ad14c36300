// Small pieces the cluster controllers share: resource quantities in
// milli-units and pod predicates (terminating, IPs) over the JSON objects
// the informers hold; timestamps and field access come from control/util/.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "control/client/api_client.h"
#include "control/util/json_fields.h"
#include "control/util/rfc3339.h"

namespace sluice::controllers {

using client::Json;
using TimePoint = std::chrono::system_clock::time_point;

// Timestamps and field access: control/util/ (one home for the control plane).
using util::arrayOf;
using util::findCondition;
using util::formatRfc3339;
using util::formatRfc3339Micro;
using util::formatRfc3339Nano;
using util::labelsOf;
using util::parseRfc3339;
using util::podReady;

// A quantity ("500m", "2", "1.5", "128Mi", "1G", "1e3") in thousandths of
// its unit: cpu "500m" -> 500, memory "1Ki" -> 1024000. nullopt if malformed.
std::optional<int64_t> parseMilli(std::string_view q);

// Pod predicates, as k8s.io/kubernetes/pkg/api/v1/pod (podReady: util).
bool podTerminating(const Json& pod);
// Phase Succeeded or Failed: its containers will not run again.
bool podTerminal(const Json& pod);
// The pod's IP of a family ("IPv4" / "IPv6"), or "" when it has none.
std::string podIpOfFamily(const Json& pod, std::string_view family);
// Sets (or adds) a condition; lastTransitionTime changes only with status.
// Returns true if anything changed.
bool setCondition(Json& conditions, const Json& cond, const std::string& now);

// Label map `selector` (matchLabels semantics) matches `labels`. An empty or
// missing selector matches nothing (Services without selector).
bool selectorMatches(const Json& selector, const Json& labels);


}  // namespace sluice::controllers
