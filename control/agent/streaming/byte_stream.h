// ByteStream: the connection a streaming protocol (SPDY, the WebSocket
// channel protocols) runs over once the HTTP upgrade is done. Kubernetes
// carries exec, attach and port-forward this way: kubectl <-> API server <->
// the node agent, the API server splicing bytes both ways.
//
// Threading: one thread may block in read() while others write(); write() is
// serialized internally so frames from different streams never interleave.
// close() from any thread unblocks a pending read().
#pragma once

#include <cstddef>
#include <mutex>
#include <string_view>

#include "dataplane/result.h"

namespace sluice::agent::streaming {

class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Blocks until at least one byte arrived; 0 means the peer closed its side.
  virtual Result<size_t> read(char* buf, size_t len) = 0;
  // Writes every byte (or fails); atomic with respect to other write() calls.
  virtual Result<void> write(std::string_view data) = 0;
  // Shuts the connection in both directions; idempotent, any thread.
  virtual void close() = 0;
};

// A connected stream socket (TCP, or one end of a socketpair a TLS pump
// serves); owns the descriptor.
class FdByteStream final : public ByteStream {
 public:
  explicit FdByteStream(int fd) : fd_(fd) {}
  ~FdByteStream() override;
  FdByteStream(const FdByteStream&) = delete;
  FdByteStream& operator=(const FdByteStream&) = delete;

  Result<size_t> read(char* buf, size_t len) override;
  Result<void> write(std::string_view data) override;
  void close() override;
  int fd() const { return fd_; }

 private:
  int fd_;
  std::mutex writeMu_;
  std::mutex closeMu_;
  bool closed_ = false;
};

}  // namespace sluice::agent::streaming
