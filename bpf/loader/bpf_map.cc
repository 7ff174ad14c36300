#include "bpf/loader/bpf_map.h"

#include <bpf/bpf.h>
#include <unistd.h>

namespace sluice::bpf {

FileDescriptor& FileDescriptor::operator=(FileDescriptor&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

FileDescriptor::~FileDescriptor() {
  if (fd_ >= 0) ::close(fd_);
}

// libbpf 1.x returns -errno directly from these wrappers.
int MapRef::updateRaw(const void* key, const void* value) {
  return bpf_map_update_elem(fd_, key, value, BPF_ANY);
}
int MapRef::eraseRaw(const void* key) { return bpf_map_delete_elem(fd_, key); }
int MapRef::lookupRaw(const void* key, void* value) const {
  return bpf_map_lookup_elem(fd_, key, value);
}
int MapRef::nextKeyRaw(const void* key, void* next) const {
  return bpf_map_get_next_key(fd_, key, next);
}

Error MapRef::failure(std::string_view op, int err) const {
  Error e = Error::internal("bpf map " + name_ + ": " + std::string(op) + ": " +
                            std::strerror(-err));
  if (err == -E2BIG || err == -ENOMEM || err == -ENOSPC) e.code = ErrorCode::kResourceExhausted;
  return e;
}

}  // namespace sluice::bpf
