#include "bpf/loader/bpf_map.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <algorithm>

#include "bpf/loader/libbpf_opts.h"

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

Result<void> MapRef::updateBatch(const void* keys, const void* values, uint32_t n,
                                 uint32_t keySize, uint32_t valueSize) {
  const auto* k = static_cast<const uint8_t*>(keys);
  const auto* v = static_cast<const uint8_t*>(values);
  uint32_t done = 0;
  while (done < n) {
    uint32_t count = std::min(kBatchEntries, n - done);
    auto opts = libbpfOpts<bpf_map_batch_opts>();
    opts.elem_flags = BPF_ANY;
    const int r = bpf_map_update_batch(fd_, k + size_t{done} * keySize,
                                       v + size_t{done} * valueSize, &count, &opts);
    if (r < 0 && notSupported(r)) {
      // No batch op for this map type: one entry per syscall.
      for (; done < n; ++done) {
        if (int e = updateRaw(k + size_t{done} * keySize, v + size_t{done} * valueSize); e < 0) {
          return failure("update", e);
        }
        if (counters_) ++counters_->writes;
      }
      break;
    }
    // count: entries the kernel processed, also on an error.
    if (counters_) counters_->writes += count;
    done += count;
    if (r < 0) return failure("update batch", r);
  }
  return okResult();
}

Result<void> MapRef::eraseBatch(const void* keys, uint32_t n, uint32_t keySize) {
  const auto* k = static_cast<const uint8_t*>(keys);
  uint32_t done = 0;
  while (done < n) {
    uint32_t count = std::min(kBatchEntries, n - done);
    auto opts = libbpfOpts<bpf_map_batch_opts>();
    const int r = bpf_map_delete_batch(fd_, k + size_t{done} * keySize, &count, &opts);
    if (r < 0 && notSupported(r)) {
      for (; done < n; ++done) {
        const int e = eraseRaw(k + size_t{done} * keySize);
        if (e < 0 && e != -ENOENT) return failure("delete", e);
        if (e == 0 && counters_) ++counters_->deletes;
      }
      break;
    }
    if (counters_) counters_->deletes += count;
    done += count;
    if (r == -ENOENT) {
      ++done;  // the batch stops at an absent key: the goal state, skip it
    } else if (r < 0) {
      return failure("delete batch", r);
    }
  }
  return okResult();
}

int MapRef::dumpBatchRaw(uint32_t keySize, uint32_t valueSize, std::vector<uint8_t>& keys,
                         std::vector<uint8_t>& values) const {
  keys.clear();
  values.clear();
  // The position between calls is an opaque token: a bucket index (__u32)
  // for hash maps, a key for arrays; room for either.
  std::vector<uint8_t> in(std::max<size_t>(keySize, 8)), out(in.size());
  size_t read = 0;
  for (bool first = true;; first = false) {
    keys.resize((read + kBatchEntries) * keySize);
    values.resize((read + kBatchEntries) * valueSize);
    uint32_t count = kBatchEntries;
    auto opts = libbpfOpts<bpf_map_batch_opts>();
    const int r = bpf_map_lookup_batch(fd_, first ? nullptr : in.data(), out.data(),
                                       keys.data() + read * keySize,
                                       values.data() + read * valueSize, &count, &opts);
    if (r < 0 && r != -ENOENT) {
      keys.clear();
      values.clear();
      return r;
    }
    read += count;
    if (r == -ENOENT) break;  // past the last bucket; count holds the final entries
    in = out;
  }
  keys.resize(read * keySize);
  values.resize(read * valueSize);
  return 0;
}

Error MapRef::failure(std::string_view op, int err) const {
  Error e = Error::internal("bpf map " + name_ + ": " + std::string(op) + ": " +
                            std::strerror(-err));
  if (err == -E2BIG || err == -ENOMEM || err == -ENOSPC) e.code = ErrorCode::kResourceExhausted;
  return e;
}

}  // namespace sluice::bpf
