// A small SPDY/3 client for the session and port-forward tests: what
// kubectl's spdystream does on the wire (odd stream ids, SYN_STREAM with
// lower-case headers, data with FIN, RST_STREAM, PING), over one end of a
// real socketpair. It records what the server sent, per stream.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "control/agent/streaming/spdy_frame.h"

namespace sluice::agent::streaming::testing {

// What the server sent on one stream.
struct StreamView {
  bool replied = false;
  bool fin = false;
  std::optional<uint32_t> rst;  // RST_STREAM status
  std::string data;
  int framesAfterEnd = 0;  // frames after FIN/RST: a protocol bug
};

class SpdyTestClient {
 public:
  // Longest wait for one frame: a hang guard, not a timing assertion (every
  // exchange here is local and takes milliseconds).
  static constexpr int kHangGuardMs = 30000;

  explicit SpdyTestClient(int fd) : fd_(fd) {}
  ~SpdyTestClient() {
    if (fd_ >= 0) ::close(fd_);
  }

  void send(const Result<std::string>& wire) {
    ASSERT_TRUE(wire.ok()) << wire.error().message;
    sendRaw(*wire);
  }
  void sendRaw(std::string_view w) {
    while (!w.empty()) {
      ssize_t n = ::send(fd_, w.data(), w.size(), MSG_NOSIGNAL);
      ASSERT_GT(n, 0) << "client write failed";
      w.remove_prefix(static_cast<size_t>(n));
    }
  }
  void synStream(uint32_t id, spdy::HeaderBlock headers, uint8_t flags = 0) {
    spdy::Frame f;
    f.type = spdy::FrameType::kSynStream;
    f.streamId = id;
    f.flags = flags;
    f.headers = std::move(headers);
    send(enc_.encode(f));
  }
  void data(uint32_t id, std::string_view d, bool fin = false) {
    // Frames of at most 32 KiB, as Go's io.Copy writes them.
    do {
      std::string_view chunk = d.substr(0, 32 * 1024);
      d.remove_prefix(chunk.size());
      send(enc_.data(id, chunk, fin && d.empty()));
    } while (!d.empty());
  }
  void rst(uint32_t id, spdy::RstStatus status = spdy::RstStatus::kCancel) {
    send(enc_.rstStream(id, status));
  }
  void ping(uint32_t id) { send(enc_.ping(id)); }
  void shutdownWrite() { ::shutdown(fd_, SHUT_WR); }
  void closeNow() {
    ::close(fd_);
    fd_ = -1;
  }

  // Reads frames, recording them, until `done()` holds. False on EOF, a
  // decode error or the hang guard (with a test failure for the latter two).
  bool waitUntil(const std::function<bool()>& done) {
    while (!done()) {
      if (!readOne()) return false;
    }
    return true;
  }
  // Reads until the server closes the connection.
  void readToEof() {
    while (readOne()) {
    }
  }

  StreamView& stream(uint32_t id) { return streams_[id]; }
  const std::vector<uint32_t>& pings() const { return pings_; }
  const std::vector<spdy::Frame>& goAways() const { return goAways_; }
  bool eof() const { return eof_; }

 private:
  bool readOne() {
    for (;;) {
      auto f = dec_.next();
      if (!f.ok()) {
        ADD_FAILURE() << "server sent a malformed frame: " << f.error().message;
        return false;
      }
      if (f->has_value()) {
        record(**f);
        return true;
      }
      if (eof_) return false;
      pollfd p{fd_, POLLIN, 0};
      int r = ::poll(&p, 1, kHangGuardMs);
      if (r == 0) {
        ADD_FAILURE() << "no frame from the server within the hang guard";
        return false;
      }
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        eof_ = true;
        continue;  // decode what is buffered, then report EOF
      }
      dec_.feed(buf, static_cast<size_t>(n));
    }
  }

  void record(spdy::Frame& f) {
    using spdy::FrameType;
    switch (f.type) {
      case FrameType::kSynReply: {
        auto& s = streams_[f.streamId];
        EXPECT_FALSE(s.replied) << "second SYN_REPLY on stream " << f.streamId;
        s.replied = true;
        if (f.flags & spdy::kFlagFin) s.fin = true;
        break;
      }
      case FrameType::kData: {
        auto& s = streams_[f.streamId];
        EXPECT_TRUE(s.replied) << "data before SYN_REPLY on stream " << f.streamId;
        if (s.fin || s.rst) ++s.framesAfterEnd;
        s.data += f.data;
        if (f.flags & spdy::kFlagFin) s.fin = true;
        break;
      }
      case FrameType::kRstStream:
        streams_[f.streamId].rst = f.status;
        break;
      case FrameType::kPing:
        pings_.push_back(f.pingId);
        break;
      case FrameType::kGoAway:
        goAways_.push_back(f);
        break;
      default:
        break;
    }
  }

  int fd_;
  spdy::FrameEncoder enc_;
  spdy::FrameDecoder dec_;
  bool eof_ = false;
  std::map<uint32_t, StreamView> streams_;
  std::vector<uint32_t> pings_;
  std::vector<spdy::Frame> goAways_;
};

}  // namespace sluice::agent::streaming::testing
