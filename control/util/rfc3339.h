// RFC 3339 timestamps as the Kubernetes API carries them: the one parser and
// the formatters every part of the control plane uses (metav1.Time, second
// precision; MicroTime for leases and events; Go's RFC3339Nano for the
// endpoints' last-change-trigger-time).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::util {

using TimePoint = std::chrono::system_clock::time_point;

// "2026-11-22T03:08:21Z", "...21.123456789Z" (up to nanoseconds), offsets
// "+01:00" / "-00:30", a lower-case z. Anything else (no zone, trailing
// text, a space for the T) is nullopt.
std::optional<TimePoint> parseRfc3339(std::string_view text);

// "2026-11-22T03:08:21Z" (fraction dropped, as metav1.Time).
std::string formatRfc3339(TimePoint t);
// "2026-11-22T03:08:21.123456Z" (metav1.MicroTime: always six digits).
std::string formatRfc3339Micro(TimePoint t);
// Go's time.RFC3339Nano: nine digits with trailing zeros dropped, no dot
// for a whole second.
std::string formatRfc3339Nano(TimePoint t);

}  // namespace sluice::util
