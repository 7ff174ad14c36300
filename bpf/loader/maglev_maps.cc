#include "bpf/loader/maglev_maps.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <numeric>

#include "bpf/loader/libbpf_opts.h"

namespace sluice::bpf {

namespace {

std::string errnoText(int err) { return std::strerror(err < 0 ? -err : err); }

// Batched: a 65537-slot table is one syscall per 8k slots, not 65537.
constexpr uint32_t kBatch = 8192;

}  // namespace

Result<FileDescriptor> createMaglevTable(uint32_t size) {
  auto opts = bpf::libbpfOpts<bpf_map_create_opts>();
  opts.map_flags = BPF_F_INNER_MAP;
  FileDescriptor fd(bpf_map_create(BPF_MAP_TYPE_ARRAY, "sl_maglev_tbl", sizeof(uint32_t),
                                   sizeof(uint32_t), size, &opts));
  if (!fd.valid()) {
    return Error::exhausted("create Maglev table of " + std::to_string(size) +
                            " slots: " + errnoText(errno));
  }
  return fd;
}

Result<void> writeAllSlots(int fd, const std::vector<uint32_t>& ids) {
  std::vector<uint32_t> keys(std::min<size_t>(ids.size(), kBatch));
  for (uint32_t start = 0; start < ids.size(); start += kBatch) {
    uint32_t n = std::min<uint32_t>(kBatch, static_cast<uint32_t>(ids.size()) - start);
    std::iota(keys.begin(), keys.begin() + n, start);
    uint32_t count = n;
    auto opts = bpf::libbpfOpts<bpf_map_batch_opts>();
    if (int r = bpf_map_update_batch(fd, keys.data(), ids.data() + start, &count, &opts); r < 0) {
      return Error::internal("write Maglev table: " + errnoText(r));
    }
  }
  return okResult();
}

Result<std::vector<uint32_t>> readAllSlots(int fd, uint32_t size) {
  std::vector<uint32_t> ids(size, 0);
  std::vector<uint32_t> keys(kBatch), values(kBatch);
  uint32_t cursor = 0;
  for (bool first = true;; first = false) {
    uint32_t count = kBatch;
    auto opts = bpf::libbpfOpts<bpf_map_batch_opts>();
    int r = bpf_map_lookup_batch(fd, first ? nullptr : &cursor, &cursor, keys.data(),
                                 values.data(), &count, &opts);
    if (r < 0 && r != -ENOENT) return Error::internal("read Maglev table: " + errnoText(r));
    for (uint32_t i = 0; i < count; ++i) {
      if (keys[i] < size) ids[keys[i]] = values[i];
    }
    if (r == -ENOENT) break;  // past the last slot
  }
  return ids;
}

Result<OpenedTable> openMaglevTable(uint32_t setId, uint32_t mapId) {
  const std::string where = "Maglev table of backend set " + std::to_string(setId);
  FileDescriptor fd(bpf_map_get_fd_by_id(mapId));
  if (!fd.valid()) return Error::internal(where + ": " + errnoText(errno));
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (int r = bpf_obj_get_info_by_fd(fd.get(), &info, &len); r < 0) {
    return Error::internal(where + ": " + errnoText(r));
  }
  auto ids = readAllSlots(fd.get(), info.max_entries);
  if (!ids) return ids.error().wrap(where);
  return OpenedTable{std::move(fd), std::move(*ids)};
}

}  // namespace sluice::bpf
