// A private bpffs instance for one test: mounted on a fresh directory under
// /tmp, so pinned maps never collide with a running agent (/sys/fs/bpf) or
// with another test, and unmounted (dropping every pin in it) even when the
// test fails.
#pragma once

#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace sluice::testing {

class ScopedBpffs {
 public:
  ScopedBpffs() {
    char tmpl[] = "/tmp/sluice-bpffs-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      error_ = std::string("mkdtemp: ") + std::strerror(errno);
      return;
    }
    root_ = tmpl;
    if (::mount("bpffs", root_.c_str(), "bpf", 0, nullptr) != 0) {
      error_ = "mount -t bpf " + root_ + ": " + std::strerror(errno);
      ::rmdir(root_.c_str());
      root_.clear();
      return;
    }
    mounted_ = true;
  }
  ~ScopedBpffs() {
    if (mounted_) ::umount2(root_.c_str(), MNT_DETACH);
    if (!root_.empty()) ::rmdir(root_.c_str());
  }
  ScopedBpffs(const ScopedBpffs&) = delete;
  ScopedBpffs& operator=(const ScopedBpffs&) = delete;

  bool ok() const { return mounted_; }
  // Why ok() is false, for GTEST_SKIP.
  const std::string& error() const { return error_; }
  // The pin dir tests give EbpfMode: a subdirectory, as in production.
  std::string pinDir() const { return root_ + "/sluice"; }

 private:
  std::string root_;
  std::string error_;
  bool mounted_ = false;
};

}  // namespace sluice::testing
