// Support for the CNI tests: namespaces and directories that clean up after
// themselves even when an assertion fails, running the real plugin binaries
// the way a runtime does (env + stdin, from inside a simulated node), and
// TCP probes between namespaces.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cni/json_field.h"
#include "cni/netns.h"
#include "dataplane/ip_address.h"

namespace sluice::cni::testing {

// A name unique to this test process: "<prefix><pid>" plus a counter.
std::string uniqueName(std::string_view prefix);

// A named network namespace removed (with everything in it) on destruction.
class ScopedNetns {
 public:
  explicit ScopedNetns(std::string_view prefix);
  ~ScopedNetns();
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;

  bool ok() const { return netns_.has_value(); }
  const std::string& error() const { return error_; }
  const std::string& name() const { return name_; }
  std::string path() const { return Netns::pathOf(name_); }
  const Netns& netns() const { return *netns_; }
  // Removes it now (to test plugins against a vanished netns).
  void remove();

 private:
  std::string name_;
  std::optional<Netns> netns_;
  std::string error_;
};

// A temporary directory, removed recursively on destruction.
class ScopedDir {
 public:
  ScopedDir();
  ~ScopedDir();
  ScopedDir(const ScopedDir&) = delete;
  ScopedDir& operator=(const ScopedDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Directory holding sluice-cni and sluice-ipam (SLUICE_CNI_BIN_DIR from meson).
std::string binDir();
// Debian's containernetworking-plugins.
inline constexpr std::string_view kReferencePluginDir = "/usr/lib/cni";
// CNI_PATH with both.
std::string cniPath();

struct PluginRun {
  int exitCode = -1;
  std::string stdoutData;
  std::string stderrData;
  Json output;  // parsed stdout; null when empty or not JSON
};

// Execs `plugin` (a file in binDir() or an absolute path) with exactly `env`
// (plus PATH) and `stdinData`, inside `nodeNetns` when given.
PluginRun runPlugin(const std::string& plugin, const std::map<std::string, std::string>& env,
                    const std::string& stdinData, const Netns* nodeNetns);

// The CNI_* environment for one call.
std::map<std::string, std::string> cniEnv(std::string_view command, std::string_view containerId,
                                          std::string_view netnsPath,
                                          std::string_view ifName = "eth0");

// Interface names in a namespace.
std::vector<std::string> linkNames(const Netns& netns);
// Files in a directory (not recursive); empty if it does not exist.
std::vector<std::string> listDir(const std::string& path);
// Addresses allocated in an IPAM directory (file names that parse as IPs).
std::vector<std::string> allocatedIps(const std::string& dir);

// A TCP listener created inside `netns` on addr:port (port 0 = any).
struct Listener {
  int fd = -1;
  uint16_t port = 0;
  std::string error;
  ~Listener();
};
void listenTcp(const Netns& netns, const IpAddress& addr, uint16_t port, Listener& out);

// Connects from inside `netns` to addr:port within `timeoutMs`, sends
// `message`, and returns the source address the listener saw plus what it
// received; an error string otherwise.
struct Exchange {
  bool ok = false;
  std::string error;
  std::string peer;      // source IP the server saw
  std::string received;  // what the server read
};
Exchange tcpExchange(const Netns& client, const IpAddress& addr, uint16_t port, Listener& server,
                     const std::string& message, int timeoutMs = 3000);

}  // namespace sluice::cni::testing
