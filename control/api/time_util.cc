#include "control/api/time_util.h"

#include "control/util/rfc3339.h"

#include <cstdio>
#include <ctime>

namespace sluice::api {

std::string nowTime() { return util::formatRfc3339(Clock::now()); }

std::string humanDuration(std::chrono::seconds d) {
  long long seconds = d.count();
  auto f = [](long long a, const char* ua, long long b, const char* ub) {
    return b == 0 ? std::to_string(a) + ua : std::to_string(a) + ua + std::to_string(b) + ub;
  };
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 60 * 2) return std::to_string(seconds) + "s";
  long long minutes = seconds / 60;
  if (minutes < 10) return f(minutes, "m", seconds % 60, "s");
  if (minutes < 60 * 3) return std::to_string(minutes) + "m";
  long long hours = minutes / 60;
  if (hours < 8) return f(hours, "h", minutes % 60, "m");
  if (hours < 48) return std::to_string(hours) + "h";
  if (hours < 24 * 8) return f(hours / 24, "d", hours % 24, "h");
  if (hours < 24 * 365 * 2) return std::to_string(hours / 24) + "d";
  if (hours < 24 * 365 * 8) return f(hours / 24 / 365, "y", (hours / 24) % 365, "d");
  return std::to_string(hours / 24 / 365) + "y";
}

std::string age(std::string_view timestamp, Clock::time_point now) {
  auto t = util::parseRfc3339(timestamp);
  if (!t) return "<unknown>";
  return humanDuration(std::chrono::duration_cast<std::chrono::seconds>(now - *t));
}

}  // namespace sluice::api
