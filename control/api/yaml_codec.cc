#include "control/api/yaml_codec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace sluice::api {
namespace {

// Nodes a document may expand to: each node of an alias-free document
// takes at least one byte of input, so this only bounds what aliases add.
constexpr size_t kNodesPerByte = 2;
constexpr size_t kMinNodeBudget = 10'000;

bool oneOf(const std::string& s, std::initializer_list<const char*> words) {
  return std::any_of(words.begin(), words.end(), [&](const char* w) { return s == w; });
}

// A plain (unquoted) scalar as go-yaml v2 resolves it.
Json resolvePlain(const std::string& s) {
  if (oneOf(s, {"", "~", "null", "Null", "NULL"})) return nullptr;
  if (oneOf(s, {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"}))
    return true;
  if (oneOf(s, {"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"}))
    return false;
  std::string plain;
  plain.reserve(s.size());
  for (char c : s) {
    if (c != '_') plain += c;  // YAML 1.1 digit separators
  }
  bool numeric = !plain.empty() &&
                 (std::isdigit(static_cast<unsigned char>(plain[0])) != 0 ||
                  ((plain[0] == '-' || plain[0] == '+' || plain[0] == '.') && plain.size() > 1));
  if (!numeric) return s;
  errno = 0;
  char* end = nullptr;
  long long i = std::strtoll(plain.c_str(), &end, 0);
  if (*end == '\0' && errno == 0) return static_cast<int64_t>(i);
  if (plain[0] != '-') {
    errno = 0;
    unsigned long long u = std::strtoull(plain.c_str(), &end, 0);
    if (*end == '\0' && errno == 0) return static_cast<uint64_t>(u);
  }
  errno = 0;
  double d = std::strtod(plain.c_str(), &end);
  // JSON has no infinities or NaN: such a scalar stays a string.
  if (*end == '\0' && std::isfinite(d) && plain.find_first_of("xXnN") == std::string::npos)
    return d;
  return s;
}

class Converter {
 public:
  explicit Converter(size_t budget) : budget_(budget) {}

  Result<Json> convert(const YAML::Node& n, size_t depth) {
    if (budget_ == 0) return Error::invalid("yaml: document expands to too many nodes (aliases)");
    --budget_;
    if (depth > kMaxJsonDepth) {
      return Error::invalid("yaml: exceeded max depth of " + std::to_string(kMaxJsonDepth));
    }
    switch (n.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        return Json(nullptr);
      case YAML::NodeType::Sequence: {
        Json a = Json::array();
        for (const auto& e : n) {
          auto v = convert(e, depth + 1);
          if (!v) return v;
          a.push_back(std::move(*v));
        }
        return a;
      }
      case YAML::NodeType::Map: {
        Json o = Json::object();
        for (const auto& kv : n) {
          if (!kv.first.IsScalar()) return Error::invalid("yaml: a mapping key must be a scalar");
          auto v = convert(kv.second, depth + 1);
          if (!v) return v;
          o[kv.first.Scalar()] = std::move(*v);
        }
        return o;
      }
      case YAML::NodeType::Scalar:
        break;
    }
    // "!" marks a quoted scalar; "?" a plain one; "!!str" an explicit string.
    if (n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str") return Json(n.Scalar());
    return resolvePlain(n.Scalar());
  }

 private:
  size_t budget_;
};

}  // namespace

Result<Json> parseYaml(std::string_view text) {
  // yaml-cpp reports every problem (syntax, its own depth guard) by exception.
  try {
    YAML::Node root = YAML::Load(std::string(text));
    Converter c(std::max(kMinNodeBudget, text.size() * kNodesPerByte));
    return c.convert(root, 0);
  } catch (const YAML::Exception& e) {
    return Error::invalid("error converting YAML to JSON: " + e.msg);
  } catch (const std::exception& e) {
    return Error::invalid(std::string("error converting YAML to JSON: ") + e.what());
  }
}

}  // namespace sluice::api
