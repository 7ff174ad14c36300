#include "control/agent/runtime/private_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sluice::agent {
namespace {

constexpr mode_t kPrivateDir = 0700;
constexpr mode_t kPrivateFile = 0600;

Error errnoError(const std::string& what) {
  return Error{ErrorCode::kInternal, what + ": " + std::strerror(errno)};
}

}  // namespace

Result<void> makePrivateDirs(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    const std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), kPrivateDir) != 0 && errno != EEXIST) {
      return errnoError("mkdir " + prefix);
    }
  }
  // mkdir's mode is masked by the umask, and an existing directory keeps
  // whatever mode it had.
  if (::chmod(path.c_str(), kPrivateDir) != 0) return errnoError("chmod " + path);
  return {};
}

Result<void> writePrivateFile(const std::string& path, std::string_view data) {
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());  // a stale one from a crash may be looser than 0600
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kPrivateFile);
  if (fd < 0) return errnoError("create " + tmp);
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Error e = errnoError("write " + tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return e;
    }
    done += static_cast<size_t>(n);
  }
  // The umask cannot widen O_CREAT's mode, but it can narrow it: set it exactly.
  const bool chmodded = ::fchmod(fd, kPrivateFile) == 0;
  if (!chmodded || ::close(fd) != 0) {
    Error e = errnoError((chmodded ? "close " : "chmod ") + tmp);
    if (!chmodded) ::close(fd);
    ::unlink(tmp.c_str());
    return e;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Error e = errnoError("rename " + tmp);
    ::unlink(tmp.c_str());
    return e;
  }
  return {};
}

}  // namespace sluice::agent
