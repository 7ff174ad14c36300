// File-backed IP allocations for one network, host-local style: a directory
// (<dataDir>/<network>) holding one file per allocated address, named by the
// address and containing "<containerID>\n<ifname>\n", plus a cursor file per
// range so allocation continues round-robin instead of reusing a just-freed
// address at once (a stale peer may still hold it in its conntrack/ARP).
//
// Concurrency: every operation holds an exclusive flock() on <dir>/lock, so
// parallel plugin processes (runtimes ADD many pods at once) serialize, and
// the per-address file is created O_EXCL as a second guard. Waiting for the
// lock is bounded (kLockTimeout); running out is ErrorCode::kUnavailable, which
// the plugin reports as CNI code 11 (try again later).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "cni/ip_prefix.h"
#include "dataplane/result.h"

namespace sluice::cni {

// One pool: addresses [start, end] of subnet, minus the gateway.
struct IpRange {
  IpPrefix subnet;  // network form (host bits clear)
  IpAddress start;
  IpAddress end;
  IpAddress gateway;

  // Defaults: start = network+1, end = last usable (IPv4: broadcast-1; /31
  // and /32 use every address), gateway = network+1. Fails when start/end/
  // gateway are outside the subnet or start > end.
  static Result<IpRange> create(const IpPrefix& subnet, std::optional<IpAddress> start,
                                std::optional<IpAddress> end, std::optional<IpAddress> gateway);
  bool contains(const IpAddress& ip) const;
  // Addresses handed out from this range at most (excludes the gateway).
  uint64_t capacity() const;
};

struct Allocation {
  IpAddress ip;
  std::string containerId;
  std::string ifName;
};

class IpamStore {
 public:
  // How long an operation waits for another process holding the lock.
  static constexpr std::chrono::seconds kLockTimeout{10};

  // Opens (creating with parents) the allocation directory.
  static Result<IpamStore> open(std::string dir);

  // One address from each range for (containerId, ifName), all or none.
  // Returns the existing addresses when the pair already holds some (a
  // retried ADD). kResourceExhausted when a range is full.
  Result<std::vector<IpAddress>> allocate(const std::vector<IpRange>& ranges,
                                          const std::string& containerId,
                                          const std::string& ifName);
  // Frees every address of (containerId, ifName); none is success.
  Result<size_t> release(const std::string& containerId, const std::string& ifName);
  // Frees every address whose owner is not in `keep`; returns how many.
  Result<size_t> releaseAllExcept(const std::vector<std::pair<std::string, std::string>>& keep);
  Result<std::vector<Allocation>> list();
  // Whether `range` still has an address to give.
  Result<bool> hasFree(const IpRange& range);

  const std::string& dir() const { return dir_; }

 private:
  explicit IpamStore(std::string dir) : dir_(std::move(dir)) {}
  std::vector<Allocation> listLocked();
  Result<IpAddress> allocateOne(const IpRange& range, size_t rangeIndex,
                                const std::string& containerId, const std::string& ifName);

  std::string dir_;
};

}  // namespace sluice::cni
