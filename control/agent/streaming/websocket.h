// Server side of RFC 6455 WebSocket over a ByteStream, for the Kubernetes
// channel protocols (v4/v5.channel.k8s.io: kubectl exec >= 1.30) and the
// SPDY tunnel kubectl port-forward >= 1.31 uses (SPDY/3.1+portforward.k8s.io).
//
// Hand-written rather than Boost.Beast's websocket::stream because these
// protocols are full duplex over blocking threads — one thread reads while
// pumps for stdout, stderr and SPDY streams write — which Beast's stream
// allows only as asynchronous operations on one strand. Framing here is the
// small server subset: masked client frames in, unmasked frames out,
// fragmentation, ping/pong and the close handshake. No extensions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/agent/streaming/byte_stream.h"

namespace sluice::agent::streaming {

// Sec-WebSocket-Accept for a client's Sec-WebSocket-Key.
std::string websocketAcceptKey(std::string_view clientKey);

// The first of `supported` (server preference order) that the client offered
// in its comma-separated Sec-WebSocket-Protocol header.
std::optional<std::string> chooseSubprotocol(std::string_view offered, const std::vector<std::string>& supported);

// The 101 response completing the handshake.
std::string websocketHandshakeResponse(std::string_view clientKey, std::string_view subprotocol);

class WebSocket {
 public:
  // Largest message accepted from a client (a resize, stdin chunks, SPDY
  // frames: all far below this).
  static constexpr size_t kMaxMessage = 16 * 1024 * 1024;

  explicit WebSocket(ByteStream& stream) : stream_(stream) {}

  struct Message {
    bool binary = true;
    std::string data;
  };
  // The next data message; nullopt when the peer closed (close frame or EOF).
  // Answers pings and the close handshake itself. One reader thread only.
  Result<std::optional<Message>> read();
  // One binary (or text) message; any thread.
  Result<void> writeBinary(std::string_view data);
  Result<void> writeText(std::string_view data);
  // Sends a close frame (once) with `code` (1000 normal).
  Result<void> close(uint16_t code = 1000, std::string_view reason = {});

  ByteStream& stream() { return stream_; }

 private:
  Result<void> writeFrame(uint8_t opcode, std::string_view payload);
  Result<void> fill(size_t n);  // buffer_ holds at least n bytes, or EOF/error

  ByteStream& stream_;
  std::string buffer_;
  size_t pos_ = 0;
  bool closeSent_ = false;
  std::mutex closeMu_;
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
