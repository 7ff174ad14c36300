#include "dataplane/dpdk/state_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "dataplane/dpdk/affinity.h"
#include "dataplane/dpdk/backend_registry.h"

namespace sluice::dpdk {
namespace {

constexpr uint64_t kMagic = 0x6574617473647073ULL;  // "spdstate": sluice-dpdk state
// Bump when anything stored changes meaning; each region checks its own
// layout again on adopt. Version 2: FlowSide (32 B) holds the service id
// and the flow's translation deltas.
constexpr uint32_t kVersion = 2;

struct Header {
  uint64_t magic;
  uint32_t version;
  uint32_t formatted;  // 1 once every region was written: only then adoptable
  StateLayout layout;
  uint32_t flowSideBytes;
  uint32_t reserved0;
  uint64_t reserved[3];
};
static_assert(sizeof(Header) == 64);

constexpr size_t alignUp(size_t n) { return (n + 4095) / 4096 * 4096; }

}  // namespace

struct StateFile::Offsets {
  std::vector<size_t> conntrack, sides;
  size_t backends = 0, affinity = 0, total = 0;
};

Result<std::unique_ptr<StateFile>> StateFile::open(const std::string& path,
                                                   const StateLayout& layout) {
  if (layout.workers == 0 || layout.conntrackCapacity == 0) {
    return Error::invalid("state file: a layout needs workers and a conntrack capacity");
  }
  std::unique_ptr<StateFile> f(new StateFile());
  f->path_ = path;
  f->layout_ = layout;
  auto o = std::make_unique<Offsets>();
  // Each region page-aligned (so each is kRegionAlignment-aligned too).
  size_t at = 4096;
  for (uint32_t w = 0; w < layout.workers; ++w) {
    o->conntrack.push_back(at);
    at = alignUp(at + Conntrack::regionBytes(layout.conntrackCapacity));
    o->sides.push_back(at);
    at = alignUp(at + size_t{layout.conntrackCapacity} * sizeof(FlowSide));
  }
  o->backends = at;
  at = alignUp(at + BackendRegistry::regionBytes(layout.maxBackends));
  o->affinity = at;
  at = alignUp(at + AffinityTable::regionBytes(layout.affinityBuckets));
  o->total = at;
  f->offsets_ = std::move(o);
  f->size_ = f->offsets_->total;

  f->fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (f->fd_ < 0) return Error::internal("state file " + path + ": " + std::strerror(errno));
  if (::flock(f->fd_, LOCK_EX | LOCK_NB) != 0) {
    return Error{
        ErrorCode::kFailedPrecondition,
        "state file " + path + " is held by another sluice-dpdk (" + std::strerror(errno) + ")"};
  }
  struct stat st {};
  ::fstat(f->fd_, &st);
  Header h{};
  bool same = false;
  if (static_cast<size_t>(st.st_size) == f->size_ && ::pread(f->fd_, &h, sizeof h, 0) == sizeof h) {
    same = h.magic == kMagic && h.version == kVersion && h.formatted == 1 && h.layout == layout &&
           h.flowSideBytes == sizeof(FlowSide);
  }
  if (!same) {
    // Another layout, or a start that died before formatting: begin empty
    // (the truncate zeroes every page).
    if (::ftruncate(f->fd_, 0) != 0 || ::ftruncate(f->fd_, static_cast<off_t>(f->size_)) != 0) {
      return Error::internal("state file " + path + ": ftruncate: " + std::strerror(errno));
    }
  }
  void* p = ::mmap(nullptr, f->size_, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd_, 0);
  if (p == MAP_FAILED)
    return Error::internal("state file " + path + ": mmap: " + std::strerror(errno));
  f->base_ = static_cast<std::byte*>(p);
  // Huge pages for the flow tables where the host allows them on shared
  // memory (/sys/kernel/mm/transparent_hugepage/shmem_enabled: advise or
  // always); a no-op elsewhere.
  ::madvise(p, f->size_, MADV_HUGEPAGE);
  f->adopted_ = same;
  if (!same) {
    const Header fresh{kMagic, kVersion, 0, layout, sizeof(FlowSide), 0, {}};
    std::memcpy(f->base_, &fresh, sizeof fresh);
  }
  return f;
}

StateFile::~StateFile() {
  if (base_ != nullptr) ::munmap(base_, size_);
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

void StateFile::markFormatted() {
  auto* h = reinterpret_cast<Header*>(base_);
  h->formatted = 1;
}

std::span<std::byte> StateFile::conntrack(uint32_t worker) const {
  return {base_ + offsets_->conntrack[worker], Conntrack::regionBytes(layout_.conntrackCapacity)};
}

std::span<FlowSide> StateFile::flowSides(uint32_t worker) const {
  return {reinterpret_cast<FlowSide*>(base_ + offsets_->sides[worker]), layout_.conntrackCapacity};
}

std::span<std::byte> StateFile::backends() const {
  return {base_ + offsets_->backends, BackendRegistry::regionBytes(layout_.maxBackends)};
}

std::span<std::byte> StateFile::affinity() const {
  return {base_ + offsets_->affinity, AffinityTable::regionBytes(layout_.affinityBuckets)};
}

}  // namespace sluice::dpdk
