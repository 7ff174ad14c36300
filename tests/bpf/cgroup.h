// A cgroup v2 directory of its own for one test: a child of the first
// cgroup2 mount of this machine, or of one mounted for the test at a
// temporary directory (unmounted after) where none is mounted. Named after
// the PID and a counter; removed on destruction, members moved back to the
// root first. Socket hooks attach here and touch no other process.
#pragma once

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace sluice::testing {

class ScopedCgroup {
 public:
  ScopedCgroup() {
    std::ifstream mounts("/proc/self/mounts");
    std::string line;
    while (std::getline(mounts, line)) {
      std::istringstream fields(line);
      std::string dev, dir, type;
      fields >> dev >> dir >> type;
      if (type == "cgroup2") {
        mountPoint_ = dir;
        break;
      }
    }
    if (mountPoint_.empty()) {
      char tmpl[] = "/tmp/sluice-cgroup2-XXXXXX";
      if (::mkdtemp(tmpl) == nullptr) {
        error_ = std::string("no cgroup2 mount, and mkdtemp failed: ") + std::strerror(errno);
        return;
      }
      if (::mount("none", tmpl, "cgroup2", 0, nullptr) != 0) {
        error_ = std::string("no cgroup2 mount, and mount -t cgroup2 none ") + tmpl + ": " +
                 std::strerror(errno);
        ::rmdir(tmpl);
        return;
      }
      tempMount_ = tmpl;
      mountPoint_ = tmpl;
    }
    static std::atomic<int> counter{0};
    const std::string path = mountPoint_ + "/sluice-test-" + std::to_string(::getpid()) + "-" +
                             std::to_string(counter++);
    if (::mkdir(path.c_str(), 0755) != 0) {
      error_ = "mkdir " + path + ": " + std::strerror(errno);
      return;
    }
    path_ = path;
  }

  ~ScopedCgroup() {
    if (!path_.empty()) {
      // Members left behind (a child that outlived its test) go back to
      // the root: a cgroup with processes cannot be removed.
      std::ifstream procs(procsFile());
      std::string pid;
      while (std::getline(procs, pid)) {
        if (!pid.empty()) writeFile(mountPoint_ + "/cgroup.procs", pid + "\n");
      }
      // Exited members leave asynchronously; retry briefly.
      for (int i = 0; i < 100 && ::rmdir(path_.c_str()) != 0 && errno == EBUSY; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    if (!tempMount_.empty()) {
      ::umount2(tempMount_.c_str(), MNT_DETACH);
      ::rmdir(tempMount_.c_str());
    }
  }

  ScopedCgroup(const ScopedCgroup&) = delete;
  ScopedCgroup& operator=(const ScopedCgroup&) = delete;

  bool ok() const { return !path_.empty(); }
  // Why ok() is false, for GTEST_SKIP or a failure message.
  const std::string& error() const { return error_; }
  const std::string& path() const { return path_; }
  // Writing "0" here moves the writing process into the cgroup.
  std::string procsFile() const { return path_ + "/cgroup.procs"; }

 private:
  static void writeFile(const std::string& path, const std::string& text) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    (void)!::write(fd, text.data(), text.size());
    ::close(fd);
  }

  std::string mountPoint_;
  std::string tempMount_;  // set when this object mounted cgroup2 itself
  std::string path_;
  std::string error_;
};

}  // namespace sluice::testing
