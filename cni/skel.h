// The plugin side of the CNI protocol, shared by sluice-cni and sluice-ipam:
// read CNI_* from the environment and the network configuration from stdin,
// validate what the spec requires for the command, dispatch to the plugin's
// handlers, and print the result or the error object ({cniVersion, code, msg,
// details}) on stdout with a non-zero exit.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "cni/cni_error.h"
#include "cni/json_field.h"
#include "cni/spec.h"

namespace sluice::cni {

struct CmdArgs {
  Command command = Command::kAdd;
  std::string containerId;
  std::string netns;
  std::string ifName;
  std::string args;  // CNI_ARGS, already checked to be K=V pairs
  std::string path;  // CNI_PATH
  std::vector<std::string> pathDirs;
  std::string stdinData;
  Json config;             // the parsed network configuration
  std::string cniVersion;  // config.cniVersion, one of kSupportedVersions
};

// A plugin's commands. ADD returns the result object already encoded in
// args.cniVersion; the others succeed with no output. VERSION is answered by
// the skeleton itself.
class PluginHandlers {
 public:
  virtual ~PluginHandlers() = default;
  virtual CniResult<Json> add(const CmdArgs& args) = 0;
  virtual CniResult<void> del(const CmdArgs& args) = 0;
  virtual CniResult<void> check(const CmdArgs& args) = 0;
  virtual CniResult<void> gc(const CmdArgs& args) = 0;
  virtual CniResult<void> status(const CmdArgs& args) = 0;
};

struct PluginOutput {
  int exitCode = 0;
  std::string stdoutData;
};

// One invocation with an explicit environment and stdin (what main() passes,
// and what unit tests drive directly).
PluginOutput runPlugin(PluginHandlers& handlers, const std::map<std::string, std::string>& env,
                       std::string_view stdinData);

// main() of a plugin binary: real environment, stdin and stdout.
int pluginMain(PluginHandlers& handlers);

}  // namespace sluice::cni
