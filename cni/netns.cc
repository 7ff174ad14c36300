#include "cni/netns.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>

namespace sluice::cni {
namespace {

std::string errnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

// iproute2 makes the run dir a shared mount so namespaces mounted there show
// up in mount namespaces created later; sluice mounts the same way so `ip
// netns` and sluice see one set.
Result<void> prepareRunDir() {
  const std::string dir(kNetnsRunDir);
  if (::mkdir("/run", 0755) != 0 && errno != EEXIST) return Error::internal(errnoText("mkdir /run"));
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return Error::internal(errnoText("mkdir " + dir));
  }
  if (::mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) == 0) return {};
  if (errno != EINVAL) return Error::internal(errnoText("mount --make-rshared " + dir));
  // Not a mount point yet: bind it onto itself, then share it.
  if (::mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) != 0) {
    return Error::internal(errnoText("mount --bind " + dir));
  }
  if (::mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) != 0) {
    return Error::internal(errnoText("mount --make-rshared " + dir));
  }
  return {};
}

}  // namespace

Result<Netns> Netns::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Error::notFound("netns " + path + ": no such file");
    return Error::internal(errnoText("open netns " + path));
  }
  // Any file opens; only a network namespace's nsfs inode says CLONE_NEWNET
  // (Linux 4.11+). Checked here, a wrong path is the caller's bad argument
  // instead of a setns() EINVAL much later.
  const int type = ::ioctl(fd, NS_GET_NSTYPE);
  if (type != CLONE_NEWNET) {
    ::close(fd);
    return Error::invalid(path + " is not a network namespace");
  }
  return Netns(fd, path);
}

Result<Netns> Netns::current() { return open("/proc/thread-self/ns/net"); }

Result<Netns> Netns::create(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    return Error::invalid("netns name '" + name + "' is not a plain file name");
  }
  if (auto r = prepareRunDir(); !r) return r.error();
  const std::string path = pathOf(name);
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) {
    if (errno == EEXIST) return Error::exists("netns " + path + " already exists");
    return Error::internal(errnoText("create " + path));
  }
  ::close(fd);
  // unshare() on a throwaway thread: the new namespace is pinned by the bind
  // mount before the thread (its only member) exits.
  Result<void> made = okResult();
  auto started = runOnThread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      made = Error::internal(errnoText("unshare(CLONE_NEWNET)"));
      return;
    }
    if (::mount("/proc/thread-self/ns/net", path.c_str(), "none", MS_BIND, nullptr) != 0) {
      made = Error::internal(errnoText("bind mount netns on " + path));
    }
  });
  if (!started) made = started;
  if (!made) {
    ::unlink(path.c_str());
    return made.error();
  }
  return open(path);
}

Result<void> Netns::remove(const std::string& name) {
  const std::string path = pathOf(name);
  const bool unmounted = ::umount2(path.c_str(), MNT_DETACH) == 0;
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT && !unmounted) return Error::notFound("netns " + path + ": no such file");
    if (errno != ENOENT) return Error::internal(errnoText("unlink " + path));
  }
  return {};
}

Netns& Netns::operator=(Netns&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

Netns::~Netns() {
  if (fd_ >= 0) ::close(fd_);
}

bool Netns::sameAs(const Netns& other) const {
  struct stat a {};
  struct stat b {};
  if (::fstat(fd_, &a) != 0 || ::fstat(other.fd_, &b) != 0) return false;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

Result<void> Netns::enter(int fd, const std::string& path) {
  if (::setns(fd, CLONE_NEWNET) != 0) return Error::internal(errnoText("setns " + path));
  return {};
}

Result<void> Netns::runOnThread(const std::function<void()>& body) {
  try {
    std::thread worker(body);
    worker.join();
  } catch (const std::system_error& e) {
    return Error::unavailable(std::string("start thread: ") + e.what());
  }
  return {};
}

Result<void> writeSysctl(std::string_view key, std::string_view value) {
  const std::string path = "/proc/sys/" + std::string(key);
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Error::internal(errnoText("open " + path));
  const ssize_t n = ::write(fd, value.data(), value.size());
  const int saved = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    errno = saved;
    return Error::internal(errnoText("write " + path));
  }
  return {};
}

Result<std::string> readSysctl(std::string_view key) {
  const std::string path = "/proc/sys/" + std::string(key);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error::internal(errnoText("open " + path));
  char buf[256];
  const ssize_t n = ::read(fd, buf, sizeof(buf));
  ::close(fd);
  if (n < 0) return Error::internal(errnoText("read " + path));
  std::string out(buf, static_cast<size_t>(n));
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace sluice::cni
