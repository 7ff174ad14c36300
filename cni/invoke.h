// Executing CNI plugins the way a runtime does: find the executable named by
// `type` in CNI_PATH, run it with the CNI_* environment and the config on
// stdin, read its stdout, and turn a non-zero exit into the CniError it
// printed. Used by sluice-cni to delegate IPAM and by runtime.h (the agent,
// the tests) to run whole configuration lists.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cni/cni_error.h"
#include "cni/json_field.h"
#include "cni/spec.h"
#include "dataplane/result.h"

namespace sluice::cni {

// CNI_PATH split on ':' (empty entries dropped).
std::vector<std::string> splitCniPath(std::string_view path);
// The first executable regular file `dirs[i]/type`. `type` must be a plain
// name: a '/' in it would let a config run any binary on the node.
Result<std::string> findPlugin(std::string_view type, const std::vector<std::string>& dirs);

struct ExecRequest {
  std::string path;              // the plugin executable
  std::vector<std::string> env;  // the child's whole environment, "K=V"
  std::string stdinData;
  // Run the plugin inside this network namespace (a simulated node); -1 runs
  // it in the caller's.
  int netnsFd = -1;
  // Kill the plugin (SIGKILL) if it has not finished after this long; 0 waits
  // forever. Runtimes bound every call (containerd: the pod's setup timeout).
  int timeoutMs = 0;
};

struct ExecOutput {
  int exitCode = 0;  // 128+signal when killed by a signal
  std::string stdoutData;
  std::string stderrData;
};

// fork + execve with stdin/stdout/stderr pipes, reading and writing until the
// child exits. Errors: the exec itself failing (kInternal) and the timeout
// (kUnavailable); a plugin's own failure is its exit code.
Result<ExecOutput> execPlugin(const ExecRequest& request);

// The parameters of one invocation (spec 1.1.0 "Parameters").
struct Invocation {
  Command command = Command::kAdd;
  std::string containerId;
  std::string netns;
  std::string ifName;
  std::string args;  // CNI_ARGS as passed
  std::string path;  // CNI_PATH as passed
};

// `base` (typically this process's environ) with every CNI_* variable
// replaced by the invocation's; unset parameters are left out.
std::vector<std::string> buildEnv(const std::vector<std::string>& base, const Invocation& inv);
std::vector<std::string> currentEnviron();

// Runs `pluginPath` and interprets the result: exit 0 gives the parsed stdout
// (null when empty, as for DEL/CHECK/GC/STATUS); non-zero gives the plugin's
// error object, or code 103 with its stderr when it printed none; a timeout
// is code 11 (try again). `who` prefixes messages ("ipam plugin host-local").
CniResult<Json> invokePlugin(const std::string& pluginPath, const Invocation& inv,
                             const std::vector<std::string>& baseEnv, const std::string& stdinData,
                             std::string_view who, int netnsFd = -1, int timeoutMs = 0);

// The plugin's VERSION answer: its supportedVersions list.
CniResult<std::vector<std::string>> queryVersions(const std::string& pluginPath,
                                                  const std::vector<std::string>& baseEnv,
                                                  std::string_view who, int netnsFd = -1);

// The version to speak to a delegate that supports `theirs` when our caller
// asked for `wanted`: `wanted` itself if they have it, else the newest of
// theirs that is older and that sluice can decode, else nullopt.
std::optional<std::string> negotiateVersion(std::string_view wanted,
                                            const std::vector<std::string>& theirs);

}  // namespace sluice::cni
