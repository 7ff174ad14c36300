// Helpers shared by the control/api tests: result assertions and YAML
// manifests as JSON (the conversion kubectl does before sending them).
#pragma once

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "control/api/json_codec.h"

#define SLUICE_CAT_(a, b) a##b
#define SLUICE_CAT(a, b) SLUICE_CAT_(a, b)
// `decl = value of expr`, or fail the test with the Error's message.
#define ASSIGN_OR_FAIL(decl, expr)                                       \
  auto SLUICE_CAT(result_, __LINE__) = (expr);                           \
  ASSERT_TRUE(SLUICE_CAT(result_, __LINE__).ok())                        \
      << #expr << ": " << SLUICE_CAT(result_, __LINE__).error().message; \
  decl = std::move(SLUICE_CAT(result_, __LINE__)).value()
#define ASSERT_OK(expr)                                                    \
  do {                                                                     \
    auto result_ = (expr);                                                 \
    ASSERT_TRUE(result_.ok()) << #expr << ": " << result_.error().message; \
  } while (0)

namespace sluice::api::testing {

// YAML 1.2 core schema scalars: quoted -> string; plain -> null, bool,
// integer, float or string, as sigs.k8s.io/yaml resolves them.
inline Json yamlToJson(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Sequence: {
      Json a = Json::array();
      for (const auto& e : n) a.push_back(yamlToJson(e));
      return a;
    }
    case YAML::NodeType::Map: {
      Json o = Json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = yamlToJson(kv.second);
      return o;
    }
    case YAML::NodeType::Scalar: break;
  }
  std::string s = n.Scalar();
  if (n.Tag() == "!") return s;
  if (s == "null" || s == "~") return nullptr;
  if (s == "true") return true;
  if (s == "false") return false;
  if (!s.empty() && s.find_first_not_of("-0123456789") == std::string::npos && s != "-") {
    try {
      return std::stoll(s);
    } catch (...) {
      return s;
    }
  }
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (!s.empty() && *end == '\0' && s.find_first_of("0123456789") != std::string::npos) return d;
  return s;
}

inline std::vector<Json> loadManifests(const std::string& path) {
  std::vector<Json> docs;
  for (const auto& node : YAML::LoadAllFromFile(path)) {
    if (!node.IsNull()) docs.push_back(yamlToJson(node));
  }
  return docs;
}

inline Json yaml(const std::string& text) { return yamlToJson(YAML::Load(text)); }

}  // namespace sluice::api::testing
