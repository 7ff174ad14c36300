#include "control/agent/streaming/byte_stream.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace sluice::agent::streaming {

FdByteStream::~FdByteStream() {
  if (fd_ >= 0) ::close(fd_);
}

Result<size_t> FdByteStream::read(char* buf, size_t len) {
  for (;;) {
    ssize_t n = ::recv(fd_, buf, len, 0);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == ECONNRESET || errno == EPIPE) return size_t{0};
    return Error::unavailable(std::string("read: ") + std::strerror(errno));
  }
}

Result<void> FdByteStream::write(std::string_view data) {
  std::lock_guard<std::mutex> lock(writeMu_);
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::unavailable(std::string("write: ") + std::strerror(errno));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return okResult();
}

void FdByteStream::close() {
  std::lock_guard<std::mutex> lock(closeMu_);
  if (closed_) return;
  closed_ = true;
  // shutdown, not close: a reader blocked in recv() wakes with 0, and the
  // descriptor number stays ours until the destructor.
  ::shutdown(fd_, SHUT_RDWR);
}

}  // namespace sluice::agent::streaming
