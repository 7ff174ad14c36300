#include "control/agent/streaming/websocket.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

namespace sluice::agent::streaming {

namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";  // RFC 6455 1.3

enum Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string websocketAcceptKey(std::string_view clientKey) {
  std::string in = std::string(trim(clientKey)) + std::string(kGuid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  unsigned char out[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

std::optional<std::string> chooseSubprotocol(std::string_view offered, const std::vector<std::string>& supported) {
  std::vector<std::string_view> offers;
  while (!offered.empty()) {
    size_t comma = offered.find(',');
    offers.push_back(trim(offered.substr(0, comma)));
    offered = comma == std::string_view::npos ? std::string_view() : offered.substr(comma + 1);
  }
  for (const auto& s : supported) {
    if (std::find(offers.begin(), offers.end(), s) != offers.end()) return s;
  }
  return std::nullopt;
}

std::string websocketHandshakeResponse(std::string_view clientKey, std::string_view subprotocol) {
  std::string r = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  r += "Sec-WebSocket-Accept: " + websocketAcceptKey(clientKey) + "\r\n";
  if (!subprotocol.empty()) r += "Sec-WebSocket-Protocol: " + std::string(subprotocol) + "\r\n";
  r += "\r\n";
  return r;
}

Result<void> WebSocket::fill(size_t n) {
  if (pos_ > 0 && pos_ == buffer_.size()) {
    buffer_.clear();
    pos_ = 0;
  }
  char tmp[16 * 1024];
  while (buffer_.size() - pos_ < n) {
    auto got = stream_.read(tmp, sizeof(tmp));
    if (!got) return got.error();
    if (*got == 0) return Error::unavailable("websocket: connection closed");
    buffer_.append(tmp, *got);
  }
  return okResult();
}

Result<std::optional<WebSocket::Message>> WebSocket::read() {
  Message msg;
  bool inMessage = false;
  for (;;) {
    if (auto r = fill(2); !r) {
      if (!inMessage && buffer_.size() == pos_) return std::optional<Message>();  // clean EOF
      return r.error();
    }
    const auto b0 = static_cast<uint8_t>(buffer_[pos_]);
    const auto b1 = static_cast<uint8_t>(buffer_[pos_ + 1]);
    const bool fin = (b0 & 0x80) != 0;
    const uint8_t opcode = b0 & 0x0F;
    if ((b0 & 0x70) != 0) return Error::invalid("websocket: reserved bits set (no extension was negotiated)");
    if ((b1 & 0x80) == 0) return Error::invalid("websocket: client frame is not masked (RFC 6455 5.1)");
    uint64_t len = b1 & 0x7F;
    size_t header = 2;
    if (len == 126) {
      if (auto r = fill(4); !r) return r.error();
      len = (static_cast<uint8_t>(buffer_[pos_ + 2]) << 8) | static_cast<uint8_t>(buffer_[pos_ + 3]);
      header = 4;
    } else if (len == 127) {
      if (auto r = fill(10); !r) return r.error();
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | static_cast<uint8_t>(buffer_[pos_ + 2 + i]);
      header = 10;
    }
    if (len > kMaxMessage || msg.data.size() + len > kMaxMessage) {
      return Error::invalid("websocket: message of " + std::to_string(msg.data.size() + len) +
                            " bytes exceeds the " + std::to_string(kMaxMessage) + " byte limit");
    }
    const bool control = (opcode & 0x08) != 0;
    if (control && (len > 125 || !fin)) return Error::invalid("websocket: control frame too long or fragmented");
    if (auto r = fill(header + 4 + len); !r) return r.error();
    const char* mask = buffer_.data() + pos_ + header;
    std::string payload(buffer_.data() + pos_ + header + 4, len);
    for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(payload[i] ^ mask[i % 4]);
    pos_ += header + 4 + len;

    if (opcode == kPing) {
      if (auto r = writeFrame(kPong, payload); !r) return r.error();
      continue;
    }
    if (opcode == kPong) continue;
    if (opcode == kClose) {
      uint16_t code = 1000;
      if (payload.size() >= 2) code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]));
      (void)close(code);
      return std::optional<Message>();
    }
    if (opcode == kContinuation) {
      if (!inMessage) return Error::invalid("websocket: continuation frame without a message");
    } else if (opcode == kText || opcode == kBinary) {
      if (inMessage) return Error::invalid("websocket: new message inside a fragmented one");
      inMessage = true;
      msg.binary = opcode == kBinary;
    } else {
      return Error::invalid("websocket: unknown opcode " + std::to_string(opcode));
    }
    msg.data += payload;
    if (fin) return std::optional<Message>(std::move(msg));
  }
}

Result<void> WebSocket::writeFrame(uint8_t opcode, std::string_view payload) {
  std::string frame;
  frame.reserve(payload.size() + 10);
  frame += static_cast<char>(0x80 | opcode);
  if (payload.size() < 126) {
    frame += static_cast<char>(payload.size());
  } else if (payload.size() <= 0xFFFF) {
    frame += static_cast<char>(126);
    frame += static_cast<char>(payload.size() >> 8);
    frame += static_cast<char>(payload.size() & 0xFF);
  } else {
    frame += static_cast<char>(127);
    for (int i = 7; i >= 0; --i) frame += static_cast<char>((static_cast<uint64_t>(payload.size()) >> (8 * i)) & 0xFF);
  }
  frame.append(payload);
  return stream_.write(frame);  // one write: frames never interleave
}

Result<void> WebSocket::writeBinary(std::string_view data) { return writeFrame(kBinary, data); }
Result<void> WebSocket::writeText(std::string_view data) { return writeFrame(kText, data); }

Result<void> WebSocket::close(uint16_t code, std::string_view reason) {
  {
    std::lock_guard<std::mutex> lock(closeMu_);
    if (closeSent_) return okResult();
    closeSent_ = true;
  }
  std::string payload;
  payload += static_cast<char>(code >> 8);
  payload += static_cast<char>(code & 0xFF);
  payload.append(reason.substr(0, 123));
  return writeFrame(kClose, payload);
}

Result<size_t> WebSocketByteStream::read(char* buf, size_t len) {
  while (pos_ == pending_.size()) {
    auto m = ws_.read();
    if (!m) return m.error();
    if (!m->has_value()) return size_t{0};
    pending_ = std::move((*m)->data);
    pos_ = 0;
  }
  size_t n = std::min(len, pending_.size() - pos_);
  std::memcpy(buf, pending_.data() + pos_, n);
  pos_ += n;
  return n;
}

Result<void> WebSocketByteStream::write(std::string_view data) { return ws_.writeBinary(data); }

void WebSocketByteStream::close() {
  (void)ws_.close();
  ws_.stream().close();
}

}  // namespace sluice::agent::streaming
