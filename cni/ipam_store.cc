#include "cni/ipam_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace sluice::cni {
namespace {

constexpr std::string_view kLockFile = "lock";
constexpr std::string_view kCursorPrefix = "last_reserved_ip.";
// Poll interval while another process holds the lock.
constexpr std::chrono::milliseconds kLockPoll{5};

std::string errnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

// Allocations say which container holds which address: owner-only, the
// directories this store creates 0700 and its files 0600.
constexpr mode_t kPrivateDir = 0700;
constexpr mode_t kPrivateFile = 0600;

// mkdir -p, and the store's own directory (the last component) made private
// even when an earlier version created it 0755.
Result<void> mkdirs(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    const std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), kPrivateDir) != 0 && errno != EEXIST) {
      return Error::internal(errnoText("mkdir " + prefix));
    }
  }
  if (::chmod(path.c_str(), kPrivateDir) != 0) return Error::internal(errnoText("chmod " + path));
  return {};
}

// Holds <dir>/lock exclusively for its lifetime.
class DirLock {
 public:
  static Result<DirLock> acquire(const std::string& dir) {
    const std::string path = dir + "/" + std::string(kLockFile);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, kPrivateFile);
    if (fd < 0) return Error::internal(errnoText("open " + path));
    const auto deadline = std::chrono::steady_clock::now() + IpamStore::kLockTimeout;
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR) {
        const auto e = Error::internal(errnoText("flock " + path));
        ::close(fd);
        return e;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        ::close(fd);
        return Error::unavailable("IPAM store " + dir + " is locked by another process");
      }
      std::this_thread::sleep_for(kLockPoll);
    }
    return DirLock(fd);
  }
  DirLock(DirLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  DirLock& operator=(DirLock&&) = delete;
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);  // closing drops the flock
  }

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_;
};

Result<std::string> readFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Error::notFound(path);
    return Error::internal(errnoText("open " + path));
  }
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

// Writes via a temp file + rename so a crash never leaves a torn cursor.
Result<void> writeFileAtomic(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, kPrivateFile);
  if (fd < 0) return Error::internal(errnoText("open " + tmp));
  const bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return Error::internal(errnoText("write " + path));
  }
  return {};
}

// "<id>\n<ifname>\n"; host-local's "\r\n" separators parse too.
std::pair<std::string, std::string> parseOwner(const std::string& text) {
  std::vector<std::string> lines;
  std::string cur;
  for (char c : text) {
    if (c == '\n') {
      lines.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) lines.push_back(cur);
  return {lines.size() > 0 ? lines[0] : "", lines.size() > 1 ? lines[1] : ""};
}

}  // namespace

Result<IpRange> IpRange::create(const IpPrefix& subnet, std::optional<IpAddress> start,
                                std::optional<IpAddress> end, std::optional<IpAddress> gateway) {
  IpRange r;
  r.subnet = subnet.network();
  const IpAddress network = r.subnet.address();
  const IpAddress last = r.subnet.last();
  const int hostBits = r.subnet.maxLength() - r.subnet.length();
  if (hostBits == 0) return Error::invalid("subnet " + r.subnet.toString() + " has no host addresses");
  // IPv4 reserves the network and broadcast addresses except on /31 (RFC 3021).
  const bool reserveEnds = r.subnet.address().isV4() && hostBits > 1;
  r.start = start.value_or(reserveEnds || r.subnet.address().isV6() ? nextAddress(network) : network);
  r.end = end.value_or(reserveEnds ? previousAddress(last) : last);
  r.gateway = gateway.value_or(nextAddress(network));
  const std::string s = r.subnet.toString();
  if (!r.subnet.contains(r.start)) return Error::invalid("rangeStart " + r.start.toString() + " is outside " + s);
  if (!r.subnet.contains(r.end)) return Error::invalid("rangeEnd " + r.end.toString() + " is outside " + s);
  if (!r.subnet.contains(r.gateway)) {
    return Error::invalid("gateway " + r.gateway.toString() + " is outside " + s);
  }
  if (r.end < r.start) {
    return Error::invalid("rangeStart " + r.start.toString() + " is after rangeEnd " + r.end.toString());
  }
  return r;
}

bool IpRange::contains(const IpAddress& ip) const {
  return ip.family() == start.family() && !(ip < start) && !(end < ip);
}

uint64_t IpRange::capacity() const {
  const uint64_t size = rangeSize(start, end);
  return contains(gateway) && size != UINT64_MAX ? size - 1 : size;
}

Result<IpamStore> IpamStore::open(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (auto r = mkdirs(dir); !r) return r.error();
  return IpamStore(std::move(dir));
}

std::vector<Allocation> IpamStore::listLocked() {
  std::vector<Allocation> out;
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    auto ip = IpAddress::parse(e->d_name);
    if (!ip) continue;  // lock, cursors, temp files
    auto text = readFile(dir_ + "/" + e->d_name);
    if (!text) continue;
    auto [id, ifName] = parseOwner(*text);
    out.push_back({*ip, std::move(id), std::move(ifName)});
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.ip < b.ip; });
  return out;
}

Result<std::vector<Allocation>> IpamStore::list() {
  auto lock = DirLock::acquire(dir_);
  if (!lock) return lock.error();
  return listLocked();
}

Result<IpAddress> IpamStore::allocateOne(const IpRange& range, size_t rangeIndex,
                                         const std::string& containerId,
                                         const std::string& ifName) {
  const std::string cursorPath = dir_ + "/" + std::string(kCursorPrefix) + std::to_string(rangeIndex);
  IpAddress candidate = range.start;
  if (auto cursor = readFile(cursorPath)) {
    auto last = IpAddress::parse(cursor->substr(0, cursor->find('\n')));
    if (last && range.contains(*last) && *last != range.end) candidate = nextAddress(*last);
  }
  const std::string owner = containerId + "\n" + ifName + "\n";
  // Each step either finds a free address or passes one that has a file, so
  // the walk ends within (allocated + 1) steps; the bound only matters when full.
  const uint64_t steps = rangeSize(range.start, range.end);
  for (uint64_t i = 0; i < steps; ++i) {
    const IpAddress ip = candidate;
    candidate = ip == range.end ? range.start : nextAddress(ip);
    if (ip == range.gateway) continue;
    const std::string path = dir_ + "/" + ip.toString();
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kPrivateFile);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      return Error::internal(errnoText("create " + path));
    }
    const bool ok = ::write(fd, owner.data(), owner.size()) == static_cast<ssize_t>(owner.size()) &&
                    ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) {
      ::unlink(path.c_str());
      return Error::internal(errnoText("write " + path));
    }
    // A lost cursor only costs round-robin order, not correctness.
    (void)writeFileAtomic(cursorPath, ip.toString() + "\n");
    return ip;
  }
  return Error::exhausted("no free address in range " + range.start.toString() + "-" +
                          range.end.toString() + " of " + range.subnet.toString());
}

Result<std::vector<IpAddress>> IpamStore::allocate(const std::vector<IpRange>& ranges,
                                                   const std::string& containerId,
                                                   const std::string& ifName) {
  auto lock = DirLock::acquire(dir_);
  if (!lock) return lock.error();
  const auto existing = listLocked();
  std::vector<IpAddress> out;
  std::vector<IpAddress> fresh;
  for (size_t i = 0; i < ranges.size(); ++i) {
    auto held = std::find_if(existing.begin(), existing.end(), [&](const Allocation& a) {
      return a.containerId == containerId && a.ifName == ifName && ranges[i].subnet.contains(a.ip);
    });
    if (held != existing.end()) {
      out.push_back(held->ip);
      continue;
    }
    auto ip = allocateOne(ranges[i], i, containerId, ifName);
    if (!ip) {
      for (const auto& undo : fresh) ::unlink((dir_ + "/" + undo.toString()).c_str());
      return ip.error();
    }
    fresh.push_back(*ip);
    out.push_back(*ip);
  }
  return out;
}

Result<size_t> IpamStore::release(const std::string& containerId, const std::string& ifName) {
  auto lock = DirLock::acquire(dir_);
  if (!lock) return lock.error();
  size_t n = 0;
  for (const auto& a : listLocked()) {
    if (a.containerId != containerId || a.ifName != ifName) continue;
    const std::string path = dir_ + "/" + a.ip.toString();
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Error::internal(errnoText("unlink " + path));
    }
    ++n;
  }
  return n;
}

Result<size_t> IpamStore::releaseAllExcept(
    const std::vector<std::pair<std::string, std::string>>& keep) {
  auto lock = DirLock::acquire(dir_);
  if (!lock) return lock.error();
  size_t n = 0;
  for (const auto& a : listLocked()) {
    const bool kept = std::find(keep.begin(), keep.end(), std::pair(a.containerId, a.ifName)) !=
                      keep.end();
    if (kept) continue;
    const std::string path = dir_ + "/" + a.ip.toString();
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Error::internal(errnoText("unlink " + path));
    }
    ++n;
  }
  return n;
}

Result<bool> IpamStore::hasFree(const IpRange& range) {
  auto lock = DirLock::acquire(dir_);
  if (!lock) return lock.error();
  uint64_t used = 0;
  for (const auto& a : listLocked()) {
    if (range.contains(a.ip) && a.ip != range.gateway) ++used;
  }
  return used < range.capacity();
}

}  // namespace sluice::cni
