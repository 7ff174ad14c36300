// The server side of a SPDY/3.1 connection as kubectl's client expects it
// (moby/spdystream behind k8s.io/apimachinery's httpstream/spdy): the client
// opens streams (odd ids) with SYN_STREAM carrying its headers; the server
// answers each accepted one with SYN_REPLY (no headers), or rejects it with
// RST_STREAM(CANCEL) before any reply, as kubelet does. Data frames flow both
// ways, FIN half-closes a direction, RST_STREAM tears a stream down.
//
// Flow control: spdystream neither sends WINDOW_UPDATE/SETTINGS nor honours
// them, so neither do we (both are read and ignored). Backpressure instead:
// a stream buffers at most kMaxBufferedBytes of unread data, beyond which the
// reader loop waits for that stream's reader, exactly the head-of-line
// blocking spdystream itself has.
// PING: client pings (odd ids, apimachinery's keep-alive) are echoed.
// GOAWAY from the client: no new streams are accepted; the session ends when
// the client closes the connection.
//
// Threading: serve() runs the reader loop on the calling thread; streams are
// read and written from any threads. Every frame goes out in one
// ByteStream::write under writeMu_, which also orders the shared header
// compression context with the wire.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "control/agent/streaming/byte_stream.h"
#include "control/agent/streaming/spdy_frame.h"
#include "dataplane/result.h"

namespace sluice::agent::streaming {

class SpdySession;

// One client-opened stream. Shared between the session and its users; it
// refers back to its session, so every user must be done with it before the
// SpdySession is destroyed (port_forward_spdy and exec_spdy join their
// threads first).
class SpdyStream {
 public:
  // Largest data frame we send: Go's io.Copy buffer, what kubectl sends too.
  static constexpr size_t kMaxDataFrame = 32 * 1024;
  // Unread bytes one stream may hold before the reader loop waits.
  static constexpr size_t kMaxBufferedBytes = 4 * 1024 * 1024;

  uint32_t id() const { return id_; }
  const spdy::HeaderBlock& headers() const { return headers_; }
  // First value of a (lower-case) header, "" when absent.
  std::string header(std::string_view name) const { return spdy::headerValue(headers_, name); }

  // Blocks until data arrived; 0 once the client sent FIN or RST_STREAM, or
  // the connection ended.
  Result<size_t> read(char* buf, size_t len);
  // Sends data frames of at most kMaxDataFrame bytes. Fails after our FIN,
  // after the client's RST_STREAM, or when the connection is gone.
  Result<void> write(std::string_view data);
  // Half-closes our direction with an empty FIN data frame; idempotent.
  Result<void> closeWrite();
  // Tears the stream down both ways with RST_STREAM(status); idempotent, and
  // a no-op when both directions already ended.
  void reset(spdy::RstStatus status = spdy::RstStatus::kCancel);
  // The client reset the stream (rather than half-closing it with FIN).
  bool resetByPeer() const;
  // Runs `fn` once when the client resets the stream or the connection ends
  // (at once if that already happened): how a pump blocked elsewhere (in
  // recv() on a pod socket) learns it must stop. Runs on the reader thread
  // or the caller's; must not block.
  void setOnTeardown(std::function<void()> fn);
  // Stops our reading without telling the client: pending and later data is
  // dropped and read() returns 0 (a grace period ran out).
  void stopReading();

  SpdyStream(SpdySession* session, uint32_t id, spdy::HeaderBlock headers)
      : session_(session), id_(id), headers_(std::move(headers)) {}

 private:
  friend class SpdySession;

  SpdySession* session_;
  const uint32_t id_;
  const spdy::HeaderBlock headers_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // data arrived / space freed / state changed
  std::deque<std::string> queue_;
  size_t queuedBytes_ = 0;
  size_t frontOffset_ = 0;     // bytes of queue_.front() already read
  bool remoteClosed_ = false;  // FIN or RST received, or connection gone
  bool localClosed_ = false;   // FIN or RST sent
  bool reset_ = false;         // RST sent or received: no more writes
  bool peerReset_ = false;
  bool tornDown_ = false;
  std::function<void()> onTeardown_;
};

class SpdySession {
 public:
  struct Handlers {
    // Called on the reader thread before the SYN_REPLY: an error rejects the
    // stream with RST_STREAM(CANCEL) (kubelet's check of required headers).
    // Must not block. Absent: every stream is accepted.
    std::function<Result<void>(const SpdyStream&)> accept;
    // Called on the reader thread after the SYN_REPLY went out; must not
    // block (hand the stream to another thread).
    std::function<void(std::shared_ptr<SpdyStream>)> onStream;
  };

  explicit SpdySession(ByteStream& conn) : conn_(conn) {}
  ~SpdySession();
  SpdySession(const SpdySession&) = delete;
  SpdySession& operator=(const SpdySession&) = delete;

  // Runs the reader loop until the client closes the connection (ok) or a
  // read or protocol error (the error; for a malformed frame a GOAWAY with
  // PROTOCOL_ERROR is sent first). Either way every stream then reads EOF
  // and fails writes.
  Result<void> serve(const Handlers& handlers);
  // Sends GOAWAY(OK) and shuts the connection, which also ends serve().
  void close();

  // Counters, for tests and `sluice debug`.
  uint64_t pingsEchoed() const;

 private:
  friend class SpdyStream;

  Result<void> writeFrame(const std::function<Result<std::string>(spdy::FrameEncoder&)>& build);
  Result<void> dispatch(spdy::Frame& frame, const Handlers& handlers);
  void onSynStream(spdy::Frame& frame, const Handlers& handlers);
  std::shared_ptr<SpdyStream> findStream(uint32_t id);
  // Drops the stream from the table once both directions ended.
  void maybeForget(const SpdyStream& stream);
  void endAllStreams();
  // Marks the stream torn down and runs its teardown callback (no locks held).
  static void tearDown(SpdyStream& stream);

  ByteStream& conn_;
  std::mutex writeMu_;  // encoder_ + conn_.write, in wire order
  spdy::FrameEncoder encoder_;
  bool writeFailed_ = false;

  mutable std::mutex mu_;
  std::map<uint32_t, std::shared_ptr<SpdyStream>> streams_;
  uint32_t lastClientStreamId_ = 0;
  bool goneAway_ = false;             // GOAWAY received or sent: no new streams
  bool ended_ = false;                // serve() returned
  std::atomic<bool> closing_{false};  // close() called: the reader stops waiting on full streams
  uint64_t pingsEchoed_ = 0;
};

}  // namespace sluice::agent::streaming
