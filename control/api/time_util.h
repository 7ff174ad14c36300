// The age strings printed in table columns (duration.HumanDuration), and
// now as the API stamps it. RFC 3339 itself: control/util/rfc3339.h.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::api {

using Clock = std::chrono::system_clock;

// Parsing and formatting: control/util/rfc3339.h. Now as metav1.Time.
std::string nowTime();

// "5s", "3m20s", "4h", "2d3h", ... as kubectl prints ages.
std::string humanDuration(std::chrono::seconds d);
// The AGE cell for a timestamp: humanDuration(now - t), "<unknown>" if unset.
std::string age(std::string_view timestamp, Clock::time_point now);

}  // namespace sluice::api
