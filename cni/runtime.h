// The runtime side of CNI, as libcni implements it for containerd/CRI-O: run
// a network configuration list's plugins in order for ADD (each gets the
// previous one's result as prevResult), in reverse for DEL, cache the final
// result so DEL and CHECK can pass it back, and drive GC and STATUS. The
// agent uses this to wire pods; the tests use it to call plugins exactly as a
// runtime would.
//
//   CniRuntime rt = *CniRuntime::create({.pluginDirs = {"/usr/lib/cni"},
//                                        .cacheDir = "/var/lib/sluice/cni-cache"});
//   auto list = NetworkConfigList::parse(conflistText);
//   auto result = rt.add(*list, {.containerId = uid, .netns = "/run/netns/pod-x"});
//   ... rt.del(*list, sameRuntimeConfig);
//
// A failed add() must still be followed by del(), as with libcni: plugins
// clean up their own partial work, but the runtime does not guess which
// plugins of a list ran.
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

struct NetworkConfigList {
  std::string name;
  std::string cniVersion;  // after negotiation over `cniVersions`
  bool disableCheck = false;
  bool disableGc = false;
  std::vector<Json> plugins;  // each plugin's object, as written

  // A .conflist ({name, cniVersion, plugins: [...]}) or a single-plugin .conf
  // ({name, cniVersion, type, ...}). Code 6 for bad JSON, 7 for bad fields.
  static CniResult<NetworkConfigList> parse(std::string_view text);
  static CniResult<NetworkConfigList> load(const std::string& path);
};

// One attachment's parameters.
struct RuntimeConfig {
  std::string containerId;
  std::string netns;
  std::string ifName = "eth0";
  std::vector<std::pair<std::string, std::string>> args;  // CNI_ARGS
  // Capability arguments ("portMappings", "bandwidth", ...): given to each
  // plugin whose config declares the capability, as runtimeConfig.<key>.
  Json capabilityArgs = Json::object();
};

struct RuntimeOptions {
  std::vector<std::string> pluginDirs;  // CNI_PATH
  std::string cacheDir;                 // final ADD results, for DEL/CHECK/GC
  // Exec plugins inside this network namespace (a simulated node); -1: ours.
  int execNetnsFd = -1;
  // Per plugin call; a plugin still running then is killed and the call
  // fails with code 11. 0: no limit.
  int pluginTimeoutMs = 0;
};

class CniRuntime {
 public:
  static Result<CniRuntime> create(RuntimeOptions options);

  // The final result of the chain (also cached).
  CniResult<AddResult> add(const NetworkConfigList& list, const RuntimeConfig& rt);
  // Reverse order, each plugin given the cached result. Removes the cache
  // entry when every plugin succeeded.
  CniResult<void> del(const NetworkConfigList& list, const RuntimeConfig& rt);
  // Needs a cached result; a no-op when the list sets disableCheck.
  CniResult<void> check(const NetworkConfigList& list, const RuntimeConfig& rt);
  // Synthesizes DEL for cached attachments of this network not in `valid`,
  // then sends GC (1.1.0+) to each plugin. A no-op when disableGC is set.
  CniResult<void> gc(const NetworkConfigList& list, const std::vector<Attachment>& valid);
  // STATUS to each plugin (1.1.0+); the first failure.
  CniResult<void> status(const NetworkConfigList& list);

  // The cached ADD result of an attachment, if any (e.g. after an agent restart).
  std::optional<AddResult> cachedResult(const NetworkConfigList& list, const RuntimeConfig& rt) const;

 private:
  explicit CniRuntime(RuntimeOptions options) : options_(std::move(options)) {}
  CniResult<Json> invoke(Command command, const Json& plugin, const NetworkConfigList& list,
                         const RuntimeConfig* rt, const Json* prevResult,
                         const Json* extra) const;
  std::string cachePath(const std::string& network, const std::string& containerId,
                        const std::string& ifName) const;
  std::optional<Json> readCache(const std::string& path) const;

  RuntimeOptions options_;
};

}  // namespace sluice::cni
