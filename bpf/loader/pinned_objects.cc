#include "bpf/loader/pinned_objects.h"

#include <bpf/bpf.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <filesystem>

#include "bpf/loader/bpf_map.h"

namespace sluice::bpf {

namespace {
std::string errnoText(int err) { return std::strerror(err < 0 ? -err : err); }
}  // namespace

Result<void> preparePinDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error::internal("pin dir " + dir + ": " + ec.message());
  struct statfs st {};
  if (::statfs(dir.c_str(), &st) != 0) {
    return Error::internal("pin dir " + dir + ": statfs: " + errnoText(errno));
  }
  if (static_cast<uint32_t>(st.f_type) != BPF_FS_MAGIC) {
    return Error{ErrorCode::kFailedPrecondition,
                 "pin dir " + dir + " is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)"};
  }
  return okResult();
}

Result<void> checkPinned(bpf_map* map, const std::string& dir, bool recreateOnMismatch) {
  const std::string path = dir + "/" + bpf_map__name(map);
  if (::access(path.c_str(), F_OK) != 0) return okResult();
  FileDescriptor fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) return Error::internal("pinned map " + path + ": " + errnoText(errno));
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (int r = bpf_obj_get_info_by_fd(fd.get(), &info, &len); r < 0) {
    return Error::internal("pinned map " + path + ": info: " + errnoText(r));
  }
  std::string diff;
  auto cmp = [&](const char* what, uint32_t pinned, uint32_t wanted) {
    if (pinned != wanted) {
      diff += std::string(diff.empty() ? "" : ", ") + what + " " + std::to_string(pinned) +
              " (this build wants " + std::to_string(wanted) + ")";
    }
  };
  cmp("type", info.type, bpf_map__type(map));
  cmp("key size", info.key_size, bpf_map__key_size(map));
  cmp("value size", info.value_size, bpf_map__value_size(map));
  cmp("max_entries", info.max_entries, bpf_map__max_entries(map));
  cmp("flags", info.map_flags, bpf_map__map_flags(map));
  if (diff.empty()) return okResult();
  if (recreateOnMismatch) {
    if (::unlink(path.c_str()) != 0) {
      return Error::internal("pinned map " + path + ": unlink: " + errnoText(errno));
    }
    return okResult();
  }
  return Error{ErrorCode::kFailedPrecondition,
               "pinned map " + path + " differs: " + diff +
                   "; keep the old size in the options, or remove the pin dir to recreate the "
                   "maps (drops conntrack: established service connections break)"};
}

}  // namespace sluice::bpf
