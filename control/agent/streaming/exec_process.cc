#include "control/agent/streaming/exec_process.h"

#include <nlohmann/json.hpp>

namespace sluice::agent::streaming {

std::string execExitStatusJson(int exitCode) {
  using Json = nlohmann::json;
  if (exitCode == 0) return Json{{"metadata", Json::object()}, {"status", "Success"}}.dump();
  // kubectl's exec (remotecommand) turns reason NonZeroExitCode with an
  // ExitCode cause into an exec.CodeExitError carrying that code.
  return Json{{"metadata", Json::object()},
              {"status", "Failure"},
              {"message", "command terminated with non-zero exit code: exit status " +
                              std::to_string(exitCode)},
              {"reason", "NonZeroExitCode"},
              {"details", {{"causes", Json::array({{{"reason", "ExitCode"},
                                                    {"message", std::to_string(exitCode)}}})}}}}
      .dump();
}

std::string execErrorStatusJson(const std::string& message) {
  using Json = nlohmann::json;
  return Json{{"metadata", Json::object()},
              {"status", "Failure"},
              {"message", message},
              {"reason", "InternalError"},
              {"code", 500}}
      .dump();
}

}  // namespace sluice::agent::streaming
