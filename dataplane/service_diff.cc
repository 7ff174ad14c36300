#include "dataplane/service_diff.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace sluice {

namespace {

// Both maps are ordered by key: one merge pass, O(n) comparisons of keys;
// whole-service equality is compared only for keys present in both.
// value(it) gives the Service an iterator holds.
template <typename FromMap, typename ToMap, typename FromValue, typename ToValue>
ServiceDiff mergeDiff(const FromMap& from, const ToMap& to, FromValue fromValue, ToValue toValue) {
  ServiceDiff diff;
  auto a = from.begin();
  auto b = to.begin();
  while (a != from.end() || b != to.end()) {
    if (b == to.end() || (a != from.end() && a->first < b->first)) {
      diff.changes.push_back({fromValue(a), std::nullopt});
      ++a;
    } else if (a == from.end() || b->first < a->first) {
      diff.changes.push_back({std::nullopt, toValue(b)});
      ++b;
    } else {
      if (!(fromValue(a) == toValue(b))) diff.changes.push_back({fromValue(a), toValue(b)});
      ++a;
      ++b;
    }
  }
  return diff;
}

}  // namespace

ServiceDiff ServiceDiff::between(const ServiceTable& from, const ServiceTable& to) {
  auto value = [](auto it) -> const Service& { return it->second; };
  return mergeDiff(from, to, value, value);
}

ServiceDiff ServiceDiff::between(const std::map<ServiceKey, const Service*>& from,
                                 const std::map<ServiceKey, Service>& to) {
  return mergeDiff(
      from, to, [](auto it) -> const Service& { return *it->second; },
      [](auto it) -> const Service& { return it->second; });
}

ServiceDiff ServiceDiff::fullSync(const ServiceTable& table) {
  ServiceDiff diff;
  diff.changes.reserve(table.size());
  for (const auto& [key, svc] : table) diff.changes.push_back({std::nullopt, svc});
  return diff;
}

Result<void> applyDiff(ServiceTable& table, const ServiceDiff& diff) {
  // In place, logging each touched service's previous value: on a failure
  // the log restores them newest first (each restore returns the table to
  // a state it was valid in, so it cannot fail), and a change costs
  // O(its services), not a copy of the table (~60 ms at 100,000 services x
  // 10 backends, on every endpoint change of the agent's proxy).
  std::vector<std::pair<ServiceKey, std::optional<Service>>> undo;
  auto fail = [&](Error e) -> Result<void> {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
      if (it->second) {
        (void)table.upsert(std::move(*it->second));
      } else {
        table.erase(it->first);
      }
    }
    return e;
  };
  for (const ServiceChange& c : diff.changes) {
    if (!c.before || c.after) continue;
    const Service* cur = table.find(c.before->key);
    if (!cur) return fail(Error::notFound("remove " + c.before->key.toString() + ": not in the table"));
    undo.emplace_back(c.before->key, *cur);
    table.erase(c.before->key);
  }
  for (const ServiceChange& c : diff.changes) {
    if (!c.after) continue;
    if (c.before && c.before->key != c.after->key) {
      return fail(Error::invalid("change of " + c.before->key.toString() + " renames it to " +
                                 c.after->key.toString()));
    }
    std::optional<Service> prev;
    if (const Service* cur = table.find(c.after->key)) prev = *cur;
    if (auto r = table.upsert(*c.after); !r) return fail(r.error());
    undo.emplace_back(c.after->key, std::move(prev));
  }
  return okResult();
}

namespace {
struct Endpoint {
  IpAddress address;
  uint16_t port;
  friend auto operator<=>(const Endpoint&, const Endpoint&) = default;
};
}  // namespace

BackendDelta diffBackends(const Service& before, const Service& after) {
  std::map<Endpoint, const Backend*> old;
  for (const Backend& b : before.backends) old[{b.address, b.port}] = &b;
  BackendDelta delta;
  for (const Backend& b : after.backends) {
    auto it = old.find({b.address, b.port});
    if (it == old.end()) {
      delta.added.push_back(b);
      continue;
    }
    if (!(*it->second == b)) delta.changed.push_back(b);
    old.erase(it);
  }
  // Report removals in `before`'s order, which callers may rely on for ids.
  for (const Backend& b : before.backends) {
    if (old.count({b.address, b.port})) delta.removed.push_back(b);
  }
  return delta;
}

FrontendDelta diffFrontends(const Service& before, const Service& after) {
  FrontendDelta delta;
  auto contains = [](const std::vector<Frontend>& v, const Frontend& f) {
    return std::find(v.begin(), v.end(), f) != v.end();
  };
  for (const Frontend& f : after.frontends) {
    if (!contains(before.frontends, f)) delta.added.push_back(f);
  }
  for (const Frontend& f : before.frontends) {
    if (!contains(after.frontends, f)) delta.removed.push_back(f);
  }
  return delta;
}

}  // namespace sluice
