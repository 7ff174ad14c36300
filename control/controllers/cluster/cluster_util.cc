#include "control/controllers/cluster/cluster_util.h"

#include <cmath>
#include <cstdio>

namespace sluice::controllers {
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
