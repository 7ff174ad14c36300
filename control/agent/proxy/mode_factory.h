// The agent's mode factory: the one place that names the proxy modes
// (DESIGN.md). Each mode's folder provides a ModeDriver (its flags, how to
// create its Datapath, how to clean up after it); adding a mode is one line
// in modeDrivers(). Nothing else under control/ knows which modes exist.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dataplane/datapath.h"
#include "dataplane/result.h"

namespace sluice::agent {

// Every mode this agent is built with, in --mode help order.
const std::vector<ModeDriver>& modeDrivers();
// The driver of `name`, or kInvalidArgument naming the modes there are.
Result<const ModeDriver*> findMode(const std::string& name);

// Flag values by mode ("ebpf" -> {"pin-dir" -> "/sys/fs/bpf/x"}), as the
// command line's `--<mode>-<flag>` options filled them.
using AllModeFlags = std::map<std::string, ModeFlagValues>;

Result<std::unique_ptr<Datapath>> createDatapath(const std::string& mode, const NodeConfig& node,
                                                 const AllModeFlags& flags);
// Removes what `mode` with these settings left on the node.
Result<void> cleanupDatapath(const std::string& mode, const NodeConfig& node,
                             const AllModeFlags& flags);

}  // namespace sluice::agent
