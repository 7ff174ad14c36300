#include "cni/json_field.h"

namespace sluice::cni {
namespace {

CniError wrongType(std::string_view path, std::string_view want) {
  return CniError::make(kCodeInvalidConfig, std::string(path) + ": must be " + std::string(want));
}

}  // namespace

std::string dumpJson(const Json& doc) {
  return doc.dump(-1, ' ', false, Json::error_handler_t::replace);
}

CniResult<Json> parseJson(std::string_view text, std::string_view what) {
  // allow_exceptions=false: a parse error yields a "discarded" value instead.
  Json doc = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return CniError::make(kCodeDecodeFailure, std::string(what) + ": not valid JSON");
  }
  return doc;
}

const Json* findField(const Json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

CniResult<std::optional<std::string>> optString(const Json& obj, std::string_view key,
                                                std::string_view path) {
  const Json* f = findField(obj, key);
  if (f == nullptr) return std::optional<std::string>();
  if (!f->is_string()) return wrongType(path, "a string");
  return std::optional<std::string>(f->get<std::string>());
}

CniResult<std::string> requireString(const Json& obj, std::string_view key,
                                     std::string_view path) {
  auto s = optString(obj, key, path);
  if (!s) return s.error();
  if (!s->has_value() || (*s)->empty()) {
    return CniError::make(kCodeInvalidConfig, std::string(path) + ": required");
  }
  return std::move(**s);
}

CniResult<std::optional<int64_t>> optInt(const Json& obj, std::string_view key,
                                         std::string_view path) {
  const Json* f = findField(obj, key);
  if (f == nullptr) return std::optional<int64_t>();
  if (!f->is_number_integer()) return wrongType(path, "an integer");
  return std::optional<int64_t>(f->get<int64_t>());
}

CniResult<std::optional<bool>> optBool(const Json& obj, std::string_view key,
                                       std::string_view path) {
  const Json* f = findField(obj, key);
  if (f == nullptr) return std::optional<bool>();
  if (!f->is_boolean()) return wrongType(path, "true or false");
  return std::optional<bool>(f->get<bool>());
}

CniResult<const Json*> optObject(const Json& obj, std::string_view key, std::string_view path) {
  const Json* f = findField(obj, key);
  if (f != nullptr && !f->is_object()) return wrongType(path, "an object");
  return f;
}

CniResult<const Json*> optArray(const Json& obj, std::string_view key, std::string_view path) {
  const Json* f = findField(obj, key);
  if (f != nullptr && !f->is_array()) return wrongType(path, "an array");
  return f;
}

}  // namespace sluice::cni
