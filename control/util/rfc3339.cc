#include "control/util/rfc3339.h"

#include <cstdint>
#include <cstdio>
#include <ctime>

namespace sluice::util {

namespace {

std::string withFraction(TimePoint t, int digits, bool trimZeros) {
  const auto since = t.time_since_epoch();
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(since);
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(since - secs).count();
  if (nanos < 0) {  // before 1970: floor, so the fraction stays positive
    secs -= std::chrono::seconds(1);
    nanos += 1'000'000'000;
  }
  const std::time_t tt = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char base[32];
  std::strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out = base;
  if (digits > 0) {
    char frac[24];  // nanos is 0..999999999; room for any long long keeps -O0 warnings quiet
    std::snprintf(frac, sizeof frac, "%09lld", static_cast<long long>(nanos));
    std::string f(frac, static_cast<size_t>(digits));
    if (trimZeros) {
      while (!f.empty() && f.back() == '0') f.pop_back();
    }
    if (!f.empty()) out += "." + f;
  }
  return out + "Z";
}

}  // namespace

std::optional<TimePoint> parseRfc3339(std::string_view s) {
  const std::string text(s);
  int year = 0, mon = 0, day = 0, hour = 0, min = 0, sec = 0;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &mon, &day, &hour, &min, &sec,
                  &consumed) != 6 ||
      consumed != 19) {
    return std::nullopt;
  }
  size_t i = 19;
  int64_t nanos = 0;
  if (i < text.size() && text[i] == '.') {
    int64_t scale = 100000000;
    size_t digits = 0;
    for (++i; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++digits) {
      nanos += (text[i] - '0') * scale;
      scale /= 10;
    }
    if (digits == 0) return std::nullopt;
  }
  int offset = 0;  // seconds east of UTC
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
    int oh = 0, om = 0, n = 0;
    if (std::sscanf(text.c_str() + i + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5) return std::nullopt;
    offset = (text[i] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    i += 6;
  } else if (i < text.size() && (text[i] == 'Z' || text[i] == 'z')) {
    ++i;
  } else {
    return std::nullopt;
  }
  if (i != text.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  const time_t t = ::timegm(&tm) - offset;
  // A TimePoint counts nanoseconds in an int64: years 1678-2262. Past that
  // from_time_t would overflow (signed overflow: undefined), so such a
  // timestamp, valid RFC 3339 as it is, is not one sluice can hold.
  constexpr time_t kMaxSeconds =
      std::chrono::duration_cast<std::chrono::seconds>(TimePoint::duration::max()).count() - 1;
  if (t > kMaxSeconds || t < -kMaxSeconds) return std::nullopt;
  return std::chrono::system_clock::from_time_t(t) +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(nanos));
}

std::string formatRfc3339(TimePoint t) { return withFraction(t, 0, false); }
std::string formatRfc3339Micro(TimePoint t) { return withFraction(t, 6, false); }
std::string formatRfc3339Nano(TimePoint t) { return withFraction(t, 9, true); }

}  // namespace sluice::util
