#include "control/controllers/cluster/cluster_util.h"

#include <cmath>
#include <cstdio>
#include <ctime>

namespace sluice::controllers {
namespace {

std::string formatWithFraction(TimePoint t, int digits, bool trimZeros) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  int64_t secs = ns / 1'000'000'000;
  int64_t frac = ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    --secs;
  }
  std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec);
  std::string s = buf;
  if (digits > 0) {
    char f[16];
    std::snprintf(f, sizeof f, "%09lld", static_cast<long long>(frac));
    std::string fs(f, static_cast<size_t>(digits));
    if (trimZeros) {
      while (!fs.empty() && fs.back() == '0') fs.pop_back();
    }
    if (!fs.empty()) s += "." + fs;
  }
  return s + "Z";
}

}  // namespace

std::optional<TimePoint> parseApiTime(std::string_view s) {
  int y, mo, d, h, mi, sec;
  int n = 0;
  std::string str(s);
  if (std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6) return std::nullopt;
  size_t pos = static_cast<size_t>(n);
  int64_t fracNs = 0;
  if (pos < str.size() && str[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < str.size() && std::isdigit(static_cast<unsigned char>(str[pos]))) {
      if (digits < 9) {
        fracNs = fracNs * 10 + (str[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    for (; digits < 9; ++digits) fracNs *= 10;
  }
  int offset = 0;
  if (pos < str.size() && (str[pos] == '+' || str[pos] == '-')) {
    int oh = 0, om = 0;
    if (std::sscanf(str.c_str() + pos + 1, "%2d:%2d", &oh, &om) != 2) return std::nullopt;
    offset = (oh * 60 + om) * 60 * (str[pos] == '+' ? 1 : -1);
  } else if (pos >= str.size() || (str[pos] != 'Z' && str[pos] != 'z')) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  std::time_t tt = timegm(&tm);
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(std::chrono::seconds(tt - offset) +
                                                                   std::chrono::nanoseconds(fracNs)));
}

std::string formatApiTime(TimePoint t) { return formatWithFraction(t, 0, false); }
std::string formatMicroTime(TimePoint t) { return formatWithFraction(t, 6, false); }
std::string formatNanoTime(TimePoint t) { return formatWithFraction(t, 9, true); }

std::optional<int64_t> parseMilli(std::string_view q) {
  if (q.empty()) return std::nullopt;
  size_t i = 0;
  if (q[0] == '+' || q[0] == '-') ++i;
  while (i < q.size() && (std::isdigit(static_cast<unsigned char>(q[i])) || q[i] == '.')) ++i;
  std::string num(q.substr(0, i));
  std::string suffix(q.substr(i));
  if (num.empty() || num == "." || num == "+" || num == "-") return std::nullopt;
  double v = std::strtod(num.c_str(), nullptr);
  double mult = 1;
  if (suffix.empty()) {
  } else if (suffix == "m") {
    mult = 1e-3;
  } else if (suffix == "k") {
    mult = 1e3;
  } else if (suffix == "M") {
    mult = 1e6;
  } else if (suffix == "G") {
    mult = 1e9;
  } else if (suffix == "T") {
    mult = 1e12;
  } else if (suffix == "Ki") {
    mult = 1024.0;
  } else if (suffix == "Mi") {
    mult = 1024.0 * 1024;
  } else if (suffix == "Gi") {
    mult = 1024.0 * 1024 * 1024;
  } else if (suffix == "Ti") {
    mult = 1024.0 * 1024 * 1024 * 1024;
  } else if (suffix[0] == 'e' || suffix[0] == 'E') {
    char* end = nullptr;
    long e = std::strtol(suffix.c_str() + 1, &end, 10);
    if (end == suffix.c_str() + 1 || *end != '\0') return std::nullopt;
    mult = std::pow(10.0, static_cast<double>(e));
  } else {
    return std::nullopt;
  }
  // Kubernetes rounds fractional milli-values up (Quantity.MilliValue).
  return static_cast<int64_t>(std::ceil(v * mult * 1000 - 1e-9));
}

const Json& labelsOf(const Json& obj) {
  static const Json kEmpty = Json::object();
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return kEmpty;
  auto l = m->find("labels");
  if (l == m->end() || !l->is_object()) return kEmpty;
  return *l;
}

Json arrayOf(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_array()) return Json::array();
  return *it;
}

const Json* findCondition(const Json& obj, std::string_view type) {
  auto st = obj.find("status");
  if (st == obj.end() || !st->is_object()) return nullptr;
  auto cs = st->find("conditions");
  if (cs == st->end() || !cs->is_array()) return nullptr;
  for (const auto& c : *cs) {
    if (c.value("type", "") == type) return &c;
  }
  return nullptr;
}

bool setCondition(Json& conditions, const Json& cond, const std::string& now) {
  if (!conditions.is_array()) conditions = Json::array();
  for (auto& c : conditions) {
    if (c.value("type", "") != cond.value("type", "")) continue;
    Json next = c;
    for (auto it = cond.begin(); it != cond.end(); ++it) next[it.key()] = it.value();
    if (c.value("status", "") != cond.value("status", "")) next["lastTransitionTime"] = now;
    if (next == c) return false;
    c = std::move(next);
    return true;
  }
  Json next = cond;
  if (!next.contains("lastTransitionTime")) next["lastTransitionTime"] = now;
  conditions.push_back(std::move(next));
  return true;
}

bool podReady(const Json& pod) {
  const Json* c = findCondition(pod, "Ready");
  return c != nullptr && c->value("status", "") == "True";
}

bool podTerminating(const Json& pod) {
  auto m = pod.find("metadata");
  return m != pod.end() && m->is_object() && !m->value("deletionTimestamp", "").empty();
}

bool podTerminal(const Json& pod) {
  std::string phase = pod.value("/status/phase"_json_pointer, std::string());
  return phase == "Succeeded" || phase == "Failed";
}

std::string podIpOfFamily(const Json& pod, std::string_view family) {
  auto isV6 = [](const std::string& ip) { return ip.find(':') != std::string::npos; };
  bool wantV6 = family == "IPv6";
  const Json& st = pod.contains("status") ? pod["status"] : Json::object();
  if (st.contains("podIPs") && st["podIPs"].is_array()) {
    for (const auto& p : st["podIPs"]) {
      std::string ip = p.value("ip", "");
      if (!ip.empty() && isV6(ip) == wantV6) return ip;
    }
  }
  std::string ip = st.value("podIP", "");
  if (!ip.empty() && isV6(ip) == wantV6) return ip;
  return "";
}

bool selectorMatches(const Json& selector, const Json& labels) {
  if (!selector.is_object() || selector.empty()) return false;
  for (auto it = selector.begin(); it != selector.end(); ++it) {
    auto l = labels.find(it.key());
    if (l == labels.end() || *l != it.value()) return false;
  }
  return true;
}

}  // namespace sluice::controllers
