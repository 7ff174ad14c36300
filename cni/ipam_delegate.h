// Calling the IPAM plugin named by `ipam.type` exactly as a runtime would:
// found in CNI_PATH, run with this invocation's CNI_* environment and the same
// network configuration on stdin. The only rewrite is cniVersion (and
// prevResult re-encoded to match) when the delegate does not speak the
// caller's version: Debian's containernetworking-plugins 1.1 stop at 1.0.0,
// and 1.0.0 and 1.1.0 results are the same shape.
#pragma once

#include <string>
#include <vector>

#include "cni/skel.h"
#include "cni/spec.h"

namespace sluice::cni {

class IpamDelegate {
 public:
  // Locates the plugin and asks it which versions it speaks (one VERSION exec).
  static CniResult<IpamDelegate> create(const CmdArgs& args, const std::string& type);

  // The abbreviated IPAM result: ips (no interface index), routes, dns.
  CniResult<AddResult> add() const;
  CniResult<void> del() const;
  // Skipped (success) when the delegate has no version with CHECK (< 0.4.0).
  CniResult<void> check() const;
  // Skipped when the delegate predates GC/STATUS (< 1.1.0): nothing to ask.
  CniResult<void> gc() const;
  CniResult<void> status() const;

  const std::string& path() const { return path_; }
  // The version the delegate is spoken to in; empty when none is shared.
  const std::string& version() const { return version_; }

 private:
  IpamDelegate(const CmdArgs& args, std::string type, std::string path, std::string version)
      : args_(&args), type_(std::move(type)), path_(std::move(path)),
        version_(std::move(version)) {}
  CniResult<Json> invoke(Command command) const;

  const CmdArgs* args_;  // outlives the delegate: both live for one command
  std::string type_;
  std::string path_;
  std::string version_;
};

}  // namespace sluice::cni
