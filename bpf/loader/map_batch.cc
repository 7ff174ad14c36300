#include "bpf/loader/map_batch.h"

#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace sluice::bpf {

PendingWrites::Target* PendingWrites::find(std::pair<int, uint64_t> target, const MapRef& map,
                                           uint32_t keySize, uint32_t valueSize) {
  auto it = targets_.find(target);
  if (it == targets_.end()) {
    FileDescriptor fd(::fcntl(map.fd(), F_DUPFD_CLOEXEC, 0));
    if (!fd.valid()) return nullptr;
    Target t;
    t.map = MapRef(fd.get(), map.name(), map.counters());
    t.fd = std::move(fd);
    t.keySize = keySize;
    it = targets_.emplace(target, std::move(t)).first;
  }
  Target& t = it->second;
  if (t.keySize != keySize || (valueSize != 0 && t.valueSize != 0 && t.valueSize != valueSize)) {
    errno = 0;  // failure() then names the size mismatch
    return nullptr;
  }
  if (valueSize != 0) t.valueSize = valueSize;
  return &t;
}

Error PendingWrites::failure(const MapRef& map) {
  return Error::internal("bpf map " + map.name() + ": batched write: " +
                         (errno != 0 ? std::string(std::strerror(errno))
                                     : std::string("key or value size differs between writes")));
}

size_t PendingWrites::size() const {
  size_t n = 0;
  for (const auto& [k, t] : targets_) n += t.updateSeq.size() + t.deletes.size();
  return n;
}

Result<void> PendingWrites::flush() {
  auto targets = std::move(targets_);
  targets_.clear();
  for (auto& [id, t] : targets) {
    const uint32_t n = static_cast<uint32_t>(t.updateSeq.size());
    if (!t.deletes.empty()) {
      // A delete followed by an update of the same key is void.
      for (uint32_t i = 0; i < n; ++i) {
        auto d = t.deletes.find(
            std::string(reinterpret_cast<const char*>(t.keys.data()) + size_t{i} * t.keySize,
                        t.keySize));
        if (d != t.deletes.end() && d->second < t.updateSeq[i]) t.deletes.erase(d);
      }
    }
    if (n == 0) continue;
    if (auto r = t.map.updateBatch(t.keys.data(), t.values.data(), n, t.keySize, t.valueSize);
        !r) {
      return r;
    }
  }
  std::vector<uint8_t> keys;
  for (auto it = targets.rbegin(); it != targets.rend(); ++it) {
    Target& t = it->second;
    if (t.deletes.empty()) continue;
    keys.clear();
    for (const auto& [k, seq] : t.deletes) keys.insert(keys.end(), k.begin(), k.end());
    const uint32_t n = static_cast<uint32_t>(t.deletes.size());
    if (auto r = t.map.eraseBatch(keys.data(), n, t.keySize); !r) return r;
  }
  return okResult();
}

}  // namespace sluice::bpf
