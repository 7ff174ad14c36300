// The project's logging facade: levels as klog's (info with a verbosity,
// warning, error), key=value fields, repeat suppression per key, and one
// process-wide sink. Std-only, so every module (dataplane/, bpf/, ipvs/,
// cni/, control/) logs through it without depending on a logging library;
// executables install a richer sink (control/logging/: spdlog, with text,
// logfmt and JSON output). The default sink writes one plain line per record
// to stderr — never stdout, which CNI plugins keep for their result.
//
// Verbosity as Kubernetes components take `-v N`: info(0, ...) is always
// written, 2 is useful steady-state detail (one line per sync), 4 is debug
// (one line per request). warning() and error() are always written.
//
// Threading: every function is thread-safe. setSink() and setVerbosity()
// are meant for start-up, before threads log; a sink must be thread-safe.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::log {

enum class Severity : uint8_t { kInfo, kWarning, kError };

std::string_view toString(Severity s);  // "info", "warning", "error"

struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v != nullptr ? v : "") {}
  Field(std::string_view k, bool v) : key(k), value(v ? "true" : "false") {}
  template <std::integral T>
  Field(std::string_view k, T v) : key(k), value(std::to_string(v)) {}
  template <std::floating_point T>
  Field(std::string_view k, T v) : key(k), value(formatDouble(static_cast<double>(v))) {}

  std::string key;
  std::string value;

 private:
  static std::string formatDouble(double v);
};

using Fields = std::vector<Field>;

struct Record {
  Severity severity = Severity::kInfo;
  int verbosity = 0;           // the V level of an info record, else 0
  std::string_view component;  // "server", "agent", "proxy", "nodeipam", ...
  std::string_view message;    // constant text; variable parts go in fields
  const Fields* fields = nullptr;
  // Records of the same key suppressed since the last one written (repeat
  // limiting); 0 for records not rate-limited.
  uint64_t suppressed = 0;
  std::chrono::system_clock::time_point time;
};

using Sink = std::function<void(const Record&)>;

// Replaces the process-wide sink; an empty function restores the default.
void setSink(Sink sink);
void setVerbosity(int v);
int verbosity();
// Whether info(v, ...) writes anything: callers skip building costly
// fields behind it.
bool enabled(int v);

void info(int v, std::string_view component, std::string_view message, const Fields& fields = {});
void warning(std::string_view component, std::string_view message, const Fields& fields = {});
void error(std::string_view component, std::string_view message, const Fields& fields = {});

// Repeat limiting. A failing probe or a flapping endpoint logs the same
// thing every few hundred milliseconds; through a limited call the first
// record of a key is written, later ones within `interval` are counted, and
// the next record after the interval carries that count ("suppressed").
// Keys name the call site and its subject ("probe/default/web-1/app").
struct Limit {
  std::string_view key;
  std::chrono::milliseconds interval{30000};
};
void warning(const Limit& limit, std::string_view component, std::string_view message,
             const Fields& fields = {});
void error(const Limit& limit, std::string_view component, std::string_view message,
           const Fields& fields = {});
void info(const Limit& limit, int v, std::string_view component, std::string_view message,
          const Fields& fields = {});

// The default sink's line, also the text format of richer sinks:
// "W1207 08:30:00.123456 proxy: apply failed service=default/web err=\"...\"".
std::string formatText(const Record& r);
// key=value with logfmt quoting ("a b" -> "\"a b\"").
std::string formatFields(const Record& r);
// Quotes a logfmt value when it needs it.
std::string logfmtValue(std::string_view v);
// A JSON string literal with escapes, quotes included.
std::string jsonString(std::string_view v);

}  // namespace sluice::log
