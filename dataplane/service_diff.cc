#include "dataplane/service_diff.h"

#include <algorithm>
#include <map>

namespace sluice {

ServiceDiff ServiceDiff::between(const ServiceTable& from, const ServiceTable& to) {
  // Both maps are ordered by key: one merge pass, O(n) comparisons of keys;
  // whole-service equality is compared only for keys present in both.
  ServiceDiff diff;
  auto a = from.begin();
  auto b = to.begin();
  while (a != from.end() || b != to.end()) {
    if (b == to.end() || (a != from.end() && a->first < b->first)) {
      diff.changes.push_back({a->second, std::nullopt});
      ++a;
    } else if (a == from.end() || b->first < a->first) {
      diff.changes.push_back({std::nullopt, b->second});
      ++b;
    } else {
      if (!(a->second == b->second)) diff.changes.push_back({a->second, b->second});
      ++a;
      ++b;
    }
  }
  return diff;
}

ServiceDiff ServiceDiff::fullSync(const ServiceTable& table) {
  ServiceDiff diff;
  diff.changes.reserve(table.size());
  for (const auto& [key, svc] : table) diff.changes.push_back({std::nullopt, svc});
  return diff;
}

Result<void> applyDiff(ServiceTable& table, const ServiceDiff& diff) {
  // Work on a copy so a failure leaves `table` untouched (no partial state).
  ServiceTable next = table;
  for (const ServiceChange& c : diff.changes) {
    if (c.before && !c.after && !next.erase(c.before->key)) {
      return Error::notFound("remove " + c.before->key.toString() + ": not in the table");
    }
  }
  for (const ServiceChange& c : diff.changes) {
    if (!c.after) continue;
    if (c.before && c.before->key != c.after->key) {
      return Error::invalid("change of " + c.before->key.toString() + " renames it to " +
                            c.after->key.toString());
    }
    if (auto r = next.upsert(*c.after); !r) return r;
  }
  table = std::move(next);
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
