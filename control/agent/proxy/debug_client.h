// `sluice debug`: the client side of the agent's ProxyDebug API
// (debug.proto). Each command asks the agent over its unix socket and
// renders a table in the style of `cilium bpf lb list` / `cilium bpf ct
// list`. The renderers are pure, for tests.
#pragma once

#include <string>
#include <vector>

#include "control/agent/proxy/debug.pb.h"
#include "dataplane/result.h"

namespace sluice::agent {

inline constexpr const char* kDefaultDebugSocket = "/run/sluice/agent.sock";

std::string renderServices(const debug::ListServicesResponse& r);
std::string renderMaglev(const debug::GetMaglevResponse& r);
std::string renderConntrack(const debug::ListConntrackResponse& r);
std::string renderMode(const debug::GetModeResponse& r);

// The RPCs over unix:socketPath (5 s deadline each).
Result<debug::ListServicesResponse> fetchServices(const std::string& socketPath);
Result<debug::GetMaglevResponse> fetchMaglev(const std::string& socketPath,
                                             const std::string& service);
Result<debug::ListConntrackResponse> fetchConntrack(const std::string& socketPath);
Result<debug::GetModeResponse> fetchMode(const std::string& socketPath);

// `sluice debug [--socket S] lb list | maglev SERVICE | ct list | mode`: args are
// the words after the options. Returns the text to print.
Result<std::string> runDebugCommand(const std::string& socketPath,
                                    const std::vector<std::string>& args);

}  // namespace sluice::agent
