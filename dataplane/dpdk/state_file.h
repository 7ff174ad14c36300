// StateFile: what survives a restart of sluice-dpdk, in one shared-memory
// file (default /dev/shm/sluice-dpdk-<instance>.state): each worker's
// conntrack region and flow sides, the backend registry, the affinity
// table. The running process maps it MAP_SHARED and holds an exclusive
// flock(2), so a second process for the same instance fails fast instead
// of corrupting the flows; the lock goes with the process, the file stays.
//
// Restart: open() of a file whose header names the same layout (workers,
// capacities, binary layout version) re-attaches it (adopted() is true)
// and the tables are adopted from their regions; any other file is
// truncated and formatted anew. The service tables are not in here: the
// agent sends them again (the epoch tells it to).
//
// Threading: owned by the process's start-up; the regions are then used by
// their tables' threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "dataplane/dpdk/pipeline.h"
#include "dataplane/result.h"

namespace sluice::dpdk {

struct StateLayout {
  uint32_t workers = 1;
  uint32_t conntrackCapacity = 0;  // per worker
  uint32_t maxBackends = 0;        // a power of two
  uint32_t affinityBuckets = 0;    // a power of two
  friend bool operator==(const StateLayout&, const StateLayout&) = default;
};

class StateFile {
 public:
  static Result<std::unique_ptr<StateFile>> open(const std::string& path,
                                                 const StateLayout& layout);
  ~StateFile();
  StateFile(const StateFile&) = delete;
  StateFile& operator=(const StateFile&) = delete;

  // The file held state of this layout from an earlier process.
  bool adopted() const { return adopted_; }
  // After every region was formatted (createIn): the file is complete, and
  // a later process may adopt it.
  void markFormatted();

  std::span<std::byte> conntrack(uint32_t worker) const;
  std::span<FlowSide> flowSides(uint32_t worker) const;
  std::span<std::byte> backends() const;
  std::span<std::byte> affinity() const;
  size_t bytes() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  StateFile() = default;
  struct Offsets;

  std::string path_;
  int fd_ = -1;
  std::byte* base_ = nullptr;
  size_t size_ = 0;
  bool adopted_ = false;
  StateLayout layout_;
  std::unique_ptr<Offsets> offsets_;
};

}  // namespace sluice::dpdk
