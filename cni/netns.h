// Network namespaces: open by path, create and remove named ones (the
// /run/netns/<name> bind mounts `ip netns` makes), and run code inside one.
//
// setns() moves only the calling thread, so run() executes the function on a
// fresh thread that enters the namespace and then exits: the caller's thread
// never changes namespace and nothing has to be restored on an error path.
// Sockets (netlink included) keep the namespace they were created in, so a
// socket made inside run() can be used from any thread afterwards.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "dataplane/result.h"

namespace sluice::cni {

// Where `ip netns` keeps named namespaces.
inline constexpr std::string_view kNetnsRunDir = "/run/netns";

class Netns {
 public:
  // Opens a netns file (/run/netns/x, /proc/<pid>/ns/net). NotFound if missing,
  // InvalidArgument if it is not a network namespace (a regular file, a
  // directory, another namespace type).
  static Result<Netns> open(const std::string& path);
  // The calling thread's current namespace.
  static Result<Netns> current();
  // Creates /run/netns/<name> holding a new, empty namespace (only lo, down),
  // as `ip netns add` does. AlreadyExists if the name is taken.
  static Result<Netns> create(const std::string& name);
  // Unmounts and unlinks /run/netns/<name>; the namespace itself lives on
  // while a process or fd still holds it. NotFound if it was not there.
  static Result<void> remove(const std::string& name);
  static std::string pathOf(std::string_view name) {
    return std::string(kNetnsRunDir) + "/" + std::string(name);
  }

  Netns(Netns&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}
  Netns& operator=(Netns&& other) noexcept;
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  ~Netns();

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  // True when both handles name the same namespace (same nsfs inode).
  bool sameAs(const Netns& other) const;

  // Runs fn() on a thread inside this namespace and returns its result. fn
  // returns a Result<T>; a failed setns() becomes that Result's error.
  template <typename F>
  auto run(F&& fn) const -> std::invoke_result_t<F&> {
    std::optional<std::invoke_result_t<F&>> out;
    auto body = [&] {
      auto entered = enter(fd_, path_);
      if (!entered) {
        out.emplace(entered.error());
        return;
      }
      out.emplace(fn());
    };
    if (auto started = runOnThread(body); !started) return started.error();
    return std::move(*out);
  }

 private:
  Netns(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  static Result<void> enter(int fd, const std::string& path);
  // Runs body on a new thread and joins it; fails only if no thread can be
  // started (std::thread's exception becomes an Error here).
  static Result<void> runOnThread(const std::function<void()>& body);

  int fd_ = -1;
  std::string path_;
};

// Writes a /proc/sys key ("net/ipv4/ip_forward") in the calling thread's
// network namespace: /proc/sys/net resolves the namespace of the opener.
Result<void> writeSysctl(std::string_view key, std::string_view value);
Result<std::string> readSysctl(std::string_view key);

}  // namespace sluice::cni
