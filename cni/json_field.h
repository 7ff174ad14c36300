// Typed, non-throwing access to fields of a CNI JSON document. nlohmann::json
// throws on a type mismatch and asserts on a missing key; configs come from
// users, so every read goes through these, and a wrong field becomes code 7
// (invalid network configuration) with the field's dotted path in the message.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "cni/cni_error.h"

namespace sluice::cni {

using Json = nlohmann::json;

// Serializes without exceptions: nlohmann throws on invalid UTF-8, and
// messages quote user input (an env var, a file name) verbatim; such bytes
// become U+FFFD instead.
std::string dumpJson(const Json& doc);

// Parses text without exceptions: code 6 (decode failure) naming `what`.
CniResult<Json> parseJson(std::string_view text, std::string_view what);

// The field at obj[key], or nullptr when absent or null. obj must be an object.
const Json* findField(const Json& obj, std::string_view key);

// path is the dotted name used in messages ("ipam.subnet").
CniResult<std::optional<std::string>> optString(const Json& obj, std::string_view key,
                                                std::string_view path);
CniResult<std::string> requireString(const Json& obj, std::string_view key, std::string_view path);
CniResult<std::optional<int64_t>> optInt(const Json& obj, std::string_view key,
                                         std::string_view path);
CniResult<std::optional<bool>> optBool(const Json& obj, std::string_view key,
                                       std::string_view path);
// The object at obj[key]; nullptr when absent. An error when present but not an object.
CniResult<const Json*> optObject(const Json& obj, std::string_view key, std::string_view path);
CniResult<const Json*> optArray(const Json& obj, std::string_view key, std::string_view path);

}  // namespace sluice::cni
