// Whole-buffer writes to a descriptor for the streaming protocols' pumps
// (process stdin pipes and ptys, pod sockets).
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

namespace sluice::agent::streaming {

// Writes all of `data` to a pipe or terminal; false once it cannot (the
// reader went away: EPIPE, as the agent ignores SIGPIPE).
inline bool writeAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// The same for a socket, never raising SIGPIPE.
inline bool sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace sluice::agent::streaming
