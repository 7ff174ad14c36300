// Result<T>: a value or an Error, for slow-path functions (STYLE.md: errors are
// returned as values, never thrown). std::expected needs C++23 and clang 14's
// concepts support, which Debian 12's toolchains do not both have, hence this.
#pragma once

#include <cassert>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace sluice {

// Kinds of failure a caller branches on; maps 1:1 onto gRPC status codes and
// onto HTTP statuses in the API server.
enum class ErrorCode : uint8_t {
  kInvalidArgument,     // the input names a bad field or value
  kNotFound,            // what was named does not exist
  kAlreadyExists,       // a unique key (frontend, name) is taken
  kResourceExhausted,   // a bounded table is full
  kFailedPrecondition,  // the system is not in a state to do this
  kAborted,             // a compare-and-swap lost: the caller's revision is stale
  kOutOfRange,          // a revision older than compaction (HTTP 410 Gone)
  kUnavailable,         // try again later (kernel busy, peer down)
  kInternal,            // a bug or an unexpected OS error
};

std::string_view toString(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  // Full context a user needs, e.g. "service default/web:http: backend 2: port 0".
  std::string message;

  static Error invalid(std::string msg) { return {ErrorCode::kInvalidArgument, std::move(msg)}; }
  static Error notFound(std::string msg) { return {ErrorCode::kNotFound, std::move(msg)}; }
  static Error exists(std::string msg) { return {ErrorCode::kAlreadyExists, std::move(msg)}; }
  static Error exhausted(std::string msg) { return {ErrorCode::kResourceExhausted, std::move(msg)}; }
  static Error internal(std::string msg) { return {ErrorCode::kInternal, std::move(msg)}; }
  static Error aborted(std::string msg) { return {ErrorCode::kAborted, std::move(msg)}; }
  static Error outOfRange(std::string msg) { return {ErrorCode::kOutOfRange, std::move(msg)}; }
  static Error unavailable(std::string msg) { return {ErrorCode::kUnavailable, std::move(msg)}; }

  // Prefixes context: err.wrap("service default/web") -> "service default/web: <msg>".
  Error wrap(std::string_view context) const& {
    return {code, std::string(context) + ": " + message};
  }
};

// Result<T, E>: a T or an E. E is Error everywhere but at protocol edges
// whose errors carry more than an ErrorCode can say (cni::CniError: the CNI
// spec's numeric codes), which instantiate the same template.
template <typename T, typename E = Error>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(E error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const E& error() const { assert(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

template <typename E>
class [[nodiscard]] Result<void, E> {
 public:
  Result() = default;
  Result(E error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const E& error() const { assert(!ok_); return error_; }

 private:
  E error_;
  bool ok_ = true;
};

inline Result<void> okResult() { return {}; }

}  // namespace sluice
