// Timestamps as the API carries them (RFC 3339, UTC, second precision for
// metav1.Time and microseconds for MicroTime) and the age strings printed in
// table columns (duration.HumanDuration).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::api {

using Clock = std::chrono::system_clock;

// "2024-05-01T12:00:00Z"
std::string formatTime(Clock::time_point t);
// "2024-05-01T12:00:00.123456Z"
std::string formatMicroTime(Clock::time_point t);
std::string nowTime();
// Accepts "...Z" and "+hh:mm" offsets, with optional fractional seconds.
std::optional<Clock::time_point> parseTime(std::string_view s);

// "5s", "3m20s", "4h", "2d3h", ... as kubectl prints ages.
std::string humanDuration(std::chrono::seconds d);
// The AGE cell for a timestamp: humanDuration(now - t), "<unknown>" if unset.
std::string age(std::string_view timestamp, Clock::time_point now);

}  // namespace sluice::api
