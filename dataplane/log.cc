#include "dataplane/log.h"

#include <atomic>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace sluice::log {

namespace {

std::atomic<int> gVerbosity{0};

// The sink behind a shared_ptr so a record in flight keeps the sink it
// started with while setSink() swaps it.
std::mutex gSinkMu;
std::shared_ptr<const Sink> gSink;

std::mutex gStderrMu;  // one record, one uninterrupted line

void defaultSink(const Record& r) {
  std::string line = formatText(r);
  line += '\n';
  std::lock_guard lock(gStderrMu);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

void emit(Severity s, int v, std::string_view component, std::string_view message,
          const Fields& fields, uint64_t suppressed) {
  Record r;
  r.severity = s;
  r.verbosity = v;
  r.component = component;
  r.message = message;
  r.fields = &fields;
  r.suppressed = suppressed;
  r.time = std::chrono::system_clock::now();
  std::shared_ptr<const Sink> sink;
  {
    std::lock_guard lock(gSinkMu);
    sink = gSink;
  }
  if (sink && *sink) {
    (*sink)(r);
  } else {
    defaultSink(r);
  }
}

// Per key: when the last record went out and how many were held back since.
// Bounded (kMaxKeys): keys carry object names, and a cluster churning
// through pods must not grow this without end; past the bound, keys whose
// interval has passed are dropped (they would be written anyway).
struct LimitState {
  std::chrono::steady_clock::time_point last;
  uint64_t suppressed = 0;
};
constexpr size_t kMaxKeys = 4096;
std::mutex gLimitMu;
std::unordered_map<std::string, LimitState> gLimits;

// True: write now, with `suppressed` repeats held back before it.
bool admit(const Limit& limit, uint64_t& suppressed) {
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(gLimitMu);
  auto it = gLimits.find(std::string(limit.key));
  if (it != gLimits.end()) {
    if (now - it->second.last < limit.interval) {
      ++it->second.suppressed;
      return false;
    }
    suppressed = it->second.suppressed;
    it->second = {now, 0};
    return true;
  }
  if (gLimits.size() >= kMaxKeys) {
    // Entries older than this call's interval would admit their next
    // record anyway; when none is, forget everything rather than grow.
    std::erase_if(gLimits, [&](const auto& e) { return now - e.second.last >= limit.interval; });
    if (gLimits.size() >= kMaxKeys) gLimits.clear();
  }
  gLimits.emplace(std::string(limit.key), LimitState{now, 0});
  suppressed = 0;
  return true;
}

bool needsQuotes(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20)
      return true;
  }
  return false;
}

}  // namespace

std::string_view toString(Severity s) {
  switch (s) {
    case Severity::kInfo:
      return "info";
    case Severity::kWarning:
      return "warning";
    case Severity::kError:
      return "error";
  }
  return "info";
}

std::string Field::formatDouble(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

void setSink(Sink sink) {
  auto p = sink ? std::make_shared<const Sink>(std::move(sink)) : nullptr;
  std::lock_guard lock(gSinkMu);
  gSink = std::move(p);
}

void setVerbosity(int v) { gVerbosity.store(v, std::memory_order_relaxed); }
int verbosity() { return gVerbosity.load(std::memory_order_relaxed); }
bool enabled(int v) { return v <= verbosity(); }

void info(int v, std::string_view component, std::string_view message, const Fields& fields) {
  if (enabled(v)) emit(Severity::kInfo, v, component, message, fields, 0);
}

void warning(std::string_view component, std::string_view message, const Fields& fields) {
  emit(Severity::kWarning, 0, component, message, fields, 0);
}

void error(std::string_view component, std::string_view message, const Fields& fields) {
  emit(Severity::kError, 0, component, message, fields, 0);
}

void warning(const Limit& limit, std::string_view component, std::string_view message,
             const Fields& fields) {
  uint64_t suppressed = 0;
  if (admit(limit, suppressed)) emit(Severity::kWarning, 0, component, message, fields, suppressed);
}

void error(const Limit& limit, std::string_view component, std::string_view message,
           const Fields& fields) {
  uint64_t suppressed = 0;
  if (admit(limit, suppressed)) emit(Severity::kError, 0, component, message, fields, suppressed);
}

void info(const Limit& limit, int v, std::string_view component, std::string_view message,
          const Fields& fields) {
  if (!enabled(v)) return;
  uint64_t suppressed = 0;
  if (admit(limit, suppressed)) emit(Severity::kInfo, v, component, message, fields, suppressed);
}

std::string logfmtValue(std::string_view v) {
  if (!needsQuotes(v)) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

std::string jsonString(std::string_view v) {
  std::string out = "\"";
  for (char c : v) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x",
                        static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string formatFields(const Record& r) {
  std::string out;
  if (r.fields != nullptr) {
    for (const Field& f : *r.fields) {
      if (!out.empty()) out += ' ';
      out += f.key;
      out += '=';
      out += logfmtValue(f.value);
    }
  }
  if (r.suppressed > 0) {
    if (!out.empty()) out += ' ';
    out += "suppressed=" + std::to_string(r.suppressed);
  }
  return out;
}

std::string formatText(const Record& r) {
  // klog's header: severity letter, MMDD hh:mm:ss.uuuuuu (UTC).
  const char letter = r.severity == Severity::kError     ? 'E'
                      : r.severity == Severity::kWarning ? 'W'
                                                         : 'I';
  auto t = std::chrono::system_clock::to_time_t(r.time);
  auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(r.time.time_since_epoch()).count() %
      1000000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char head[48];
  std::snprintf(head, sizeof head, "%c%02d%02d %02d:%02d:%02d.%06lld ", letter, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(us));
  std::string line = head;
  if (!r.component.empty()) {
    line += r.component;
    line += ": ";
  }
  line += r.message;
  std::string fields = formatFields(r);
  if (!fields.empty()) {
    line += ' ';
    line += fields;
  }
  return line;
}

}  // namespace sluice::log
