// Field-level validation errors, shaped as Kubernetes' field.ErrorList so the
// server's 422 Status reads exactly as users know it:
//   Pod "x" is invalid: spec.containers[0].ports[0].containerPort: Invalid
//   value: 70000: must be between 1 and 65535, inclusive
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::api {

enum class FieldErrorType : uint8_t {
  kRequired,
  kInvalid,
  kNotSupported,
  kDuplicate,
  kForbidden,
  kTooLong,
  kNotFound,
  kTooMany,
  kInternal,
};

// A bad value, rendered as Go's %#v would for the scalar types validation
// reports: strings quoted, numbers bare.
struct BadValue {
  std::string text;
  bool present = false;

  BadValue() = default;
  BadValue(std::string_view s);  // NOLINT(google-explicit-constructor): quoted
  BadValue(const char* s) : BadValue(std::string_view(s)) {}  // NOLINT
  BadValue(const std::string& s) : BadValue(std::string_view(s)) {}  // NOLINT
  BadValue(int64_t v) : text(std::to_string(v)), present(true) {}  // NOLINT
  BadValue(int32_t v) : text(std::to_string(v)), present(true) {}  // NOLINT
  static BadValue raw(std::string text) { BadValue b; b.text = std::move(text); b.present = true; return b; }
};

struct FieldError {
  FieldErrorType type = FieldErrorType::kInvalid;
  std::string field;  // spec.containers[0].ports[0].containerPort
  BadValue value;
  std::string detail;

  // "Invalid value: 70000: must be between 1 and 65535, inclusive"
  std::string body() const;
  // "<field>: <body>"
  std::string message() const;
  // The StatusCause reason: FieldValueInvalid, FieldValueRequired, ...
  std::string_view reason() const;
};

class FieldErrors {
 public:
  void required(std::string field, std::string detail = {});
  void invalid(std::string field, BadValue value, std::string detail);
  void notSupported(std::string field, BadValue value, const std::vector<std::string>& supported);
  void duplicate(std::string field, BadValue value);
  void forbidden(std::string field, std::string detail);
  void tooLong(std::string field, BadValue value, size_t max);
  void notFound(std::string field, BadValue value);
  void add(FieldError e) { errors_.push_back(std::move(e)); }
  void append(const FieldErrors& other);

  bool empty() const { return errors_.empty(); }
  size_t size() const { return errors_.size(); }
  const std::vector<FieldError>& errors() const { return errors_; }

  // "a: x" for one error, "[a: x, b: y]" for several (utilerrors.Aggregate).
  std::string summary() const;

 private:
  std::vector<FieldError> errors_;
};

// Builds field paths the way field.Path prints them.
inline std::string child(std::string_view parent, std::string_view name) {
  if (parent.empty()) return std::string(name);
  std::string s(parent);
  s += '.';
  s += name;
  return s;
}
inline std::string index(std::string_view parent, size_t i) {
  return std::string(parent) + "[" + std::to_string(i) + "]";
}
inline std::string key(std::string_view parent, std::string_view k) {
  return std::string(parent) + "[" + std::string(k) + "]";
}

}  // namespace sluice::api
