// Label selectors (equality and set-based: =, ==, !=, in, notin, exists, !,
// gt/lt) and field selectors (=, ==, !=), with the query-string syntax of
// k8s.io/apimachinery/pkg/labels and pkg/fields. `Selector` is the parsed,
// matchable form; `LabelSelector` (meta.proto) is the API field.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/api/proto/meta.pb.h"
#include "dataplane/result.h"

namespace sluice::api {

class Selector {
 public:
  enum class Op : uint8_t { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist, kGt, kLt };
  struct Requirement {
    std::string key;
    Op op = Op::kEquals;
    std::vector<std::string> values;  // sorted, unique
  };

  // Matches everything.
  Selector() = default;

  // "app=web,tier in (fe,be),!legacy". Errors are 400-worthy parse errors.
  static Result<Selector> parse(std::string_view text);
  // metav1.LabelSelector: matchLabels AND matchExpressions. An absent or
  // empty selector selects everything (callers decide if that is allowed).
  static Result<Selector> fromProto(const LabelSelector& proto);

  template <typename Map>
  bool matches(const Map& labels) const {
    return matchesLookup([&labels](const std::string& k) -> const std::string* {
      auto it = labels.find(k);
      return it == labels.end() ? nullptr : &it->second;
    });
  }
  bool matchesLookup(const std::function<const std::string*(const std::string&)>& lookup) const;

  bool empty() const { return requirements_.empty(); }
  const std::vector<Requirement>& requirements() const { return requirements_; }
  // The canonical text, requirements sorted by key ("app=web,tier in (be,fe)").
  std::string toString() const;

 private:
  std::vector<Requirement> requirements_;
};

class FieldSelector {
 public:
  struct Requirement {
    std::string field;
    bool equals = true;  // false: !=
    std::string value;
  };

  static Result<FieldSelector> parse(std::string_view text);

  // `value` yields a field's value for an object, or nullopt when the field
  // is not supported for the resource (the parse-time check is separate).
  bool matches(const std::function<std::optional<std::string>(std::string_view)>& value) const;
  // First requirement whose field is not in `supported`, for the 400 error.
  std::optional<std::string> unsupportedField(const std::vector<std::string>& supported) const;
  // The value a requirement pins `field` to with =, if any (e.g. metadata.name
  // to turn a list into a get).
  std::optional<std::string> exactValue(std::string_view field) const;

  bool empty() const { return requirements_.empty(); }
  const std::vector<Requirement>& requirements() const { return requirements_; }

 private:
  std::vector<Requirement> requirements_;
};

}  // namespace sluice::api
