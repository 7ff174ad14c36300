// Typed access to a BPF map's fd for the loader: update / erase / lookup /
// dump over the plain structs of bpf/abi/, errors as Result with the map's
// name and errno, and counters of entries written and deleted (exported by
// EbpfMode::stats() as map.writes / map.deletes: how much an apply touched).
//
// MapRef does not own the fd: the skeleton (or a FileDescriptor) does.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dataplane/result.h"

namespace sluice::bpf {

struct MapOpCounters {
  uint64_t writes = 0;   // entries created or overwritten
  uint64_t deletes = 0;  // entries deleted
};

// Byte-wise order and equality for the abi structs, whose padding the loader
// always zeroes (the kernel hashes every key byte, so zeroed padding is part
// of the contract anyway).
struct BytesLess {
  template <typename T>
  bool operator()(const T& a, const T& b) const {
    return std::memcmp(&a, &b, sizeof(T)) < 0;
  }
};
template <typename T>
bool bytesEqual(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// Owns one file descriptor (an inner Maglev map, an fd from bpf_obj_get).
class FileDescriptor {
 public:
  FileDescriptor() = default;
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(FileDescriptor&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  FileDescriptor& operator=(FileDescriptor&& o) noexcept;
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

class MapRef {
 public:
  MapRef() = default;
  MapRef(int fd, std::string name, MapOpCounters* counters)
      : fd_(fd), name_(std::move(name)), counters_(counters) {}

  int fd() const { return fd_; }
  const std::string& name() const { return name_; }
  MapOpCounters* counters() const { return counters_; }

  template <typename K, typename V>
  Result<void> update(const K& key, const V& value) {
    if (int r = updateRaw(&key, &value); r < 0) return failure("update", r);
    if (counters_) ++counters_->writes;
    return okResult();
  }

  // Deleting an absent entry succeeds: the goal state is reached.
  template <typename K>
  Result<void> erase(const K& key) {
    int r = eraseRaw(&key);
    if (r < 0 && r != -ENOENT) return failure("delete", r);
    if (r == 0 && counters_) ++counters_->deletes;
    return okResult();
  }

  template <typename K, typename V>
  std::optional<V> lookup(const K& key) const {
    V value{};
    if (lookupRaw(&key, &value) < 0) return std::nullopt;
    return value;
  }

  // n entries packed back to back (keys[i * keySize], values[i * valueSize])
  // in BPF_MAP_UPDATE_BATCH chunks of kBatchEntries: O(n / 8192) syscalls
  // instead of n. Map types without batch ops (ENOTSUPP) take one syscall
  // per entry. On an error, entries before the failing one are written.
  Result<void> updateBatch(const void* keys, const void* values, uint32_t n, uint32_t keySize,
                           uint32_t valueSize);
  // As erase() for n keys (BPF_MAP_DELETE_BATCH): absent keys are skipped.
  Result<void> eraseBatch(const void* keys, uint32_t n, uint32_t keySize);

  // Every entry, in the kernel's iteration order. Entries deleted while
  // iterating may be skipped: callers dump when nothing else writes (the
  // datapath writes sl_ct and sl_affinity only, which are not dumped here).
  // BPF_MAP_LOOKUP_BATCH where the map type has it (one syscall per 8192
  // entries: a 1M-entry map is read in ~130 syscalls, not 2M); else
  // get_next_key + lookup per entry.
  template <typename K, typename V>
  Result<std::vector<std::pair<K, V>>> dump() const {
    std::vector<std::pair<K, V>> out;
    std::vector<uint8_t> keys, values;
    const int r = dumpBatchRaw(sizeof(K), sizeof(V), keys, values);
    if (r == 0) {
      const size_t n = keys.size() / sizeof(K);
      out.resize(n);
      for (size_t i = 0; i < n; ++i) {
        std::memcpy(&out[i].first, keys.data() + i * sizeof(K), sizeof(K));
        std::memcpy(&out[i].second, values.data() + i * sizeof(V), sizeof(V));
      }
      return out;
    }
    if (!notSupported(r)) return failure("lookup batch", r);
    K key{};
    K next{};
    const void* prev = nullptr;
    for (;;) {
      int r = nextKeyRaw(prev, &next);
      if (r == -ENOENT) break;
      if (r < 0) return failure("iterate", r);
      V value{};
      if (lookupRaw(&next, &value) == 0) out.emplace_back(next, value);
      key = next;
      prev = &key;
    }
    return out;
  }

  // Entries per batch syscall: the kernel copies a whole chunk in and out
  // of its own buffers, so this bounds that copy (8192 x 64 bytes = 512 KiB).
  static constexpr uint32_t kBatchEntries = 8192;

 private:
  // Every entry through BPF_MAP_LOOKUP_BATCH, keys and values packed back
  // to back; 0, or -errno (notSupported(): the map type has no batch ops).
  int dumpBatchRaw(uint32_t keySize, uint32_t valueSize, std::vector<uint8_t>& keys,
                   std::vector<uint8_t>& values) const;
  // The kernel answers ENOTSUPP (524, not in userspace errno.h) for a map
  // type without the batch op; EOPNOTSUPP where a type refuses it itself.
  static bool notSupported(int err) { return err == -524 || err == -EOPNOTSUPP; }
  int updateRaw(const void* key, const void* value);
  int eraseRaw(const void* key);
  int lookupRaw(const void* key, void* value) const;
  int nextKeyRaw(const void* key, void* next) const;
  Error failure(std::string_view op, int err) const;

  int fd_ = -1;
  std::string name_;
  MapOpCounters* counters_ = nullptr;
};

}  // namespace sluice::bpf
