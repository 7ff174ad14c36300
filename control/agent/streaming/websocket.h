// Server side of RFC 6455 WebSocket for the Kubernetes channel protocols
// (v4/v5.channel.k8s.io: kubectl exec >= 1.30) and the SPDY tunnel kubectl
// port-forward >= 1.31 uses (SPDY/3.1+portforward.k8s.io), on
// Boost.Beast's websocket::stream: the opening handshake, framing,
// masking, fragmentation, ping/pong, the close handshake and the message
// size limit are Beast's.
//
// The protocols above are full duplex over blocking threads — one thread
// reads while pumps for stdout, stderr and SPDY streams write — and Beast's
// stream is not thread-safe: it allows one asynchronous read and one
// asynchronous write (or close) outstanding, initiated from one strand. So
// each WebSocket runs its stream on an io_context with one thread of its
// own, and the blocking calls below post an operation there and wait for
// it: read() from one thread at a time, writes and close() serialized.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/agent/streaming/byte_stream.h"
#include "control/server/http_server.h"

namespace sluice::agent::streaming {

// The first of `supported` (server preference order) that the client offered
// in its comma-separated Sec-WebSocket-Protocol header.
std::optional<std::string> chooseSubprotocol(std::string_view offered,
                                             const std::vector<std::string>& supported);

class WebSocket {
 public:
  // Largest message accepted from a client (a resize, stdin chunks, SPDY
  // frames: all far below this).
  static constexpr size_t kMaxMessage = 16 * 1024 * 1024;

  // Completes the opening handshake on `stream`'s connection: answers the
  // upgrade `request` (as the HTTP server parsed it) with 101 and
  // `subprotocol` (empty: none). `stream` must outlive the WebSocket; its
  // close() ends every pending call. Errors: a request Beast rejects (no
  // key, wrong version: answered 400), or a broken connection.
  static Result<std::unique_ptr<WebSocket>> accept(FdByteStream& stream,
                                                   const server::HttpRequest& request,
                                                   const std::string& subprotocol);
  ~WebSocket();
  WebSocket(const WebSocket&) = delete;
  WebSocket& operator=(const WebSocket&) = delete;

  struct Message {
    bool binary = true;
    std::string data;
  };
  // The next data message; nullopt when the peer closed (close frame or EOF).
  // Pings and the peer's close are answered while reading. One reader thread.
  Result<std::optional<Message>> read();
  // One binary (or text) message; any thread.
  Result<void> writeBinary(std::string_view data);
  Result<void> writeText(std::string_view data);
  // Sends a close frame (once) with `code` (1000 normal). Waits at most
  // kCloseWait for the peer's reply (a reader thread may be the one to
  // receive it); the caller then closes stream().
  Result<void> close(uint16_t code = 1000, std::string_view reason = {});

  ByteStream& stream() { return stream_; }

 private:
  struct Impl;
  WebSocket(FdByteStream& stream, std::unique_ptr<Impl> impl);
  Result<void> write(std::string_view data, bool binary);

  FdByteStream& stream_;
  std::unique_ptr<Impl> impl_;
};

// The byte stream carried in a WebSocket's binary messages (message
// boundaries do not matter): kubectl >= 1.31 tunnels its SPDY session this way.
class WebSocketByteStream final : public ByteStream {
 public:
  explicit WebSocketByteStream(WebSocket& ws) : ws_(ws) {}
  Result<size_t> read(char* buf, size_t len) override;
  Result<void> write(std::string_view data) override;
  void close() override;

 private:
  WebSocket& ws_;
  std::string pending_;
  size_t pos_ = 0;
};

}  // namespace sluice::agent::streaming
