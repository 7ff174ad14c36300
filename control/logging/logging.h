// The executables' log sink (`sluice`'s server, agent and up): the records
// of dataplane/log.h written through spdlog, in one of three formats —
//   text:   klog's header and "component: message key=value"
//   logfmt: ts=... level=... v=... component=... msg="..." key=value
//   json:   {"ts":"...","level":"info","v":2,"component":...,"msg":...,key:value}
// — to stderr or a file. Libraries never include spdlog; they log through
// the facade, and this sink is installed once at start-up.
#pragma once

#include <string>

#include "dataplane/result.h"

namespace sluice::logging {

enum class Format : uint8_t { kText, kLogfmt, kJson };

struct LogOptions {
  int verbosity = 0;  // -v N
  Format format = Format::kText;
  std::string file;  // empty: stderr
};

// "text" | "logfmt" | "json".
Result<Format> parseFormat(const std::string& name);

// Installs the sink and verbosity process-wide. Errors name the file that
// could not be opened.
Result<void> install(const LogOptions& options);

}  // namespace sluice::logging
