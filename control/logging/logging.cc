#include "control/logging/logging.h"

#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>

#include "dataplane/log.h"

namespace sluice::logging {

namespace {

spdlog::level::level_enum levelOf(const log::Record& r) {
  switch (r.severity) {
    case log::Severity::kError:
      return spdlog::level::err;
    case log::Severity::kWarning:
      return spdlog::level::warn;
    case log::Severity::kInfo:
      break;
  }
  // klog's -v 4 and up is debug detail.
  return r.verbosity >= 4 ? spdlog::level::debug : spdlog::level::info;
}

// What follows spdlog's header (time and level come from the pattern).
std::string payload(Format format, const log::Record& r) {
  switch (format) {
    case Format::kText: {
      std::string s;
      if (!r.component.empty()) s = std::string(r.component) + ": ";
      s += r.message;
      std::string f = log::formatFields(r);
      if (!f.empty()) s += " " + f;
      return s;
    }
    case Format::kLogfmt: {
      std::string s = "v=" + std::to_string(r.verbosity);
      if (!r.component.empty()) s += " component=" + log::logfmtValue(r.component);
      s += " msg=" + log::logfmtValue(r.message);
      std::string f = log::formatFields(r);
      if (!f.empty()) s += " " + f;
      return s;
    }
    case Format::kJson: {
      std::string s = "\"v\":" + std::to_string(r.verbosity);
      if (!r.component.empty()) s += ",\"component\":" + log::jsonString(r.component);
      s += ",\"msg\":" + log::jsonString(r.message);
      if (r.fields != nullptr) {
        for (const log::Field& f : *r.fields)
          s += "," + log::jsonString(f.key) + ":" + log::jsonString(f.value);
      }
      if (r.suppressed > 0) s += ",\"suppressed\":" + std::to_string(r.suppressed);
      return s;
    }
  }
  return {};
}

std::string patternOf(Format format) {
  switch (format) {
    // klog: "I1207 08:30:00.123456 ..." (%L: the level's letter).
    case Format::kText:
      return "%L%m%d %H:%M:%S.%f %v";
    case Format::kLogfmt:
      return "ts=%Y-%m-%dT%H:%M:%S.%fZ level=%l %v";
    case Format::kJson:
      return "{\"ts\":\"%Y-%m-%dT%H:%M:%S.%fZ\",\"level\":\"%l\",%v}";
  }
  return "%v";
}

}  // namespace

Result<Format> parseFormat(const std::string& name) {
  if (name == "text") return Format::kText;
  if (name == "logfmt") return Format::kLogfmt;
  if (name == "json") return Format::kJson;
  return Error::invalid("--log-format " + name + ": expected text, logfmt or json");
}

Result<void> install(const LogOptions& options) {
  spdlog::sink_ptr sink;
  if (options.file.empty()) {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  } else {
    try {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.file);
    } catch (const spdlog::spdlog_ex& e) {  // spdlog reports open failures by throwing
      return Error::unavailable("--log-file " + options.file + ": " + e.what());
    }
  }
  auto logger = std::make_shared<spdlog::logger>("sluice", sink);
  logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
      patternOf(options.format), spdlog::pattern_time_type::utc));
  // The facade filters by verbosity; spdlog writes what reaches it.
  logger->set_level(spdlog::level::trace);
  // A crash right after an error must not lose it: flush every record
  // (logs are a few lines a second in steady state).
  logger->flush_on(spdlog::level::trace);
  log::setVerbosity(options.verbosity);
  const Format format = options.format;
  log::setSink([logger, format](const log::Record& r) {
    std::string text = payload(format, r);
    logger->log(spdlog::log_clock::time_point(r.time.time_since_epoch()), spdlog::source_loc{},
                levelOf(r), spdlog::string_view_t(text.data(), text.size()));
  });
  return okResult();
}

}  // namespace sluice::logging
