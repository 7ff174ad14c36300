#include "control/api/field_errors.h"

namespace sluice::api {

namespace {

// Go's %q for the strings validation reports: quotes and backslashes escaped.
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace

BadValue::BadValue(std::string_view s) : text(quote(s)), present(true) {}

std::string FieldError::body() const {
  std::string s;
  switch (type) {
    case FieldErrorType::kRequired: s = "Required value"; break;
    case FieldErrorType::kForbidden: s = "Forbidden"; break;
    case FieldErrorType::kTooLong: s = "Too long"; break;
    case FieldErrorType::kTooMany: s = "Too many"; break;
    case FieldErrorType::kInternal: s = "Internal error"; break;
    case FieldErrorType::kInvalid: s = "Invalid value"; break;
    case FieldErrorType::kNotSupported: s = "Unsupported value"; break;
    case FieldErrorType::kDuplicate: s = "Duplicate value"; break;
    case FieldErrorType::kNotFound: s = "Not found"; break;
  }
  bool showValue = type == FieldErrorType::kInvalid || type == FieldErrorType::kNotSupported ||
                   type == FieldErrorType::kDuplicate || type == FieldErrorType::kNotFound;
  if (showValue && value.present) s += ": " + value.text;
  if (!detail.empty()) s += ": " + detail;
  return s;
}

std::string FieldError::message() const { return field + ": " + body(); }

std::string_view FieldError::reason() const {
  switch (type) {
    case FieldErrorType::kRequired: return "FieldValueRequired";
    case FieldErrorType::kInvalid: return "FieldValueInvalid";
    case FieldErrorType::kNotSupported: return "FieldValueNotSupported";
    case FieldErrorType::kDuplicate: return "FieldValueDuplicate";
    case FieldErrorType::kForbidden: return "FieldValueForbidden";
    case FieldErrorType::kTooLong: return "FieldValueTooLong";
    case FieldErrorType::kNotFound: return "FieldValueNotFound";
    case FieldErrorType::kTooMany: return "FieldValueTooMany";
    case FieldErrorType::kInternal: return "InternalError";
  }
  return "FieldValueInvalid";
}

void FieldErrors::required(std::string field, std::string detail) {
  errors_.push_back({FieldErrorType::kRequired, std::move(field), {}, std::move(detail)});
}

void FieldErrors::invalid(std::string field, BadValue value, std::string detail) {
  errors_.push_back({FieldErrorType::kInvalid, std::move(field), std::move(value), std::move(detail)});
}

void FieldErrors::notSupported(std::string field, BadValue value,
                               const std::vector<std::string>& supported) {
  std::string detail;
  if (!supported.empty()) {
    detail = "supported values: ";
    for (size_t i = 0; i < supported.size(); ++i) {
      if (i > 0) detail += ", ";
      detail += quote(supported[i]);
    }
  }
  errors_.push_back({FieldErrorType::kNotSupported, std::move(field), std::move(value), detail});
}

void FieldErrors::duplicate(std::string field, BadValue value) {
  errors_.push_back({FieldErrorType::kDuplicate, std::move(field), std::move(value), {}});
}

void FieldErrors::forbidden(std::string field, std::string detail) {
  errors_.push_back({FieldErrorType::kForbidden, std::move(field), {}, std::move(detail)});
}

void FieldErrors::tooLong(std::string field, BadValue value, size_t max) {
  errors_.push_back({FieldErrorType::kTooLong, std::move(field), std::move(value),
                     "may not be more than " + std::to_string(max) + " bytes"});
}

void FieldErrors::notFound(std::string field, BadValue value) {
  errors_.push_back({FieldErrorType::kNotFound, std::move(field), std::move(value), {}});
}

void FieldErrors::append(const FieldErrors& other) {
  errors_.insert(errors_.end(), other.errors_.begin(), other.errors_.end());
}

std::string FieldErrors::summary() const {
  if (errors_.size() == 1) return errors_[0].message();
  std::string s = "[";
  for (size_t i = 0; i < errors_.size(); ++i) {
    if (i > 0) s += ", ";
    s += errors_[i].message();
  }
  return s + "]";
}

}  // namespace sluice::api
