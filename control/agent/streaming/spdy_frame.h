// SPDY/3.1 framing, as kubectl's client (moby/spdystream over
// k8s.io/apimachinery httpstream/spdy) speaks it for port-forward and for
// exec/attach before the WebSocket protocols.
//
// Wire format (draft-mbelshe-httpbis-spdy-00 / spdy-protocol-draft3-1), all
// integers big-endian:
//   control frame: 1 bit C=1 | 15 bits version (3) | 16 bits type |
//                  8 bits flags | 24 bits length | length bytes of payload
//   data frame:    1 bit C=0 | 31 bits stream id | 8 bits flags |
//                  24 bits length | length bytes of data
// Name/value header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are
//   u32 count, then per pair u32 name length, name, u32 value length, value
// (several values of one name joined by NUL), compressed with zlib primed
// with the SPDY/3 dictionary, ONE deflate stream per direction for the whole
// connection, each block ended with Z_SYNC_FLUSH. So encoding and writing must
// happen in the same order under one lock (see SpdySession).
#pragma once

#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dataplane/result.h"

namespace sluice::agent::streaming::spdy {

inline constexpr uint16_t kVersion = 3;
// 24-bit length field: the largest payload any frame can carry.
inline constexpr uint32_t kMaxFrameLength = (1u << 24) - 1;
// Limits on what a peer may make us allocate for one header block (the spec
// sets none; kubectl sends 3-6 short headers per stream).
inline constexpr size_t kMaxHeaderBlockBytes = 256 * 1024;
inline constexpr uint32_t kMaxHeaderCount = 1024;

enum class FrameType : uint16_t {
  kData = 0,  // not a control type: marks a data frame
  kSynStream = 1,
  kSynReply = 2,
  kRstStream = 3,
  kSettings = 4,
  kPing = 6,
  kGoAway = 7,
  kHeaders = 8,
  kWindowUpdate = 9,
  kUnknown = 0xffff,  // a control type we do not know: ignored, as the spec says
};
std::string_view toString(FrameType type);

inline constexpr uint8_t kFlagFin = 0x01;             // data, SYN_STREAM, SYN_REPLY, HEADERS
inline constexpr uint8_t kFlagUnidirectional = 0x02;  // SYN_STREAM

// RST_STREAM status codes (spec 2.6.3).
enum class RstStatus : uint32_t {
  kProtocolError = 1,
  kInvalidStream = 2,
  kRefusedStream = 3,
  kUnsupportedVersion = 4,
  kCancel = 5,
  kInternalError = 6,
  kFlowControlError = 7,
  kStreamInUse = 8,
  kStreamAlreadyClosed = 9,
  kFrameTooLarge = 11,
};

// GOAWAY status codes (spec 2.6.6).
enum class GoAwayStatus : uint32_t { kOk = 0, kProtocolError = 1, kInternalError = 2 };

// Header names are lower-case on the wire; a name given several values
// carries them NUL-joined in one value, kept that way here.
using HeaderBlock = std::vector<std::pair<std::string, std::string>>;
// The first value of `name` (lower-case), "" when absent: http.Header.Get.
std::string headerValue(const HeaderBlock& headers, std::string_view name);

struct Setting {
  uint8_t flags = 0;
  uint32_t id = 0;  // 24 bits
  uint32_t value = 0;
};

// One decoded frame; which fields mean something depends on `type`.
struct Frame {
  FrameType type = FrameType::kData;
  uint8_t flags = 0;
  uint32_t streamId = 0;          // data, SYN_*, RST_STREAM, HEADERS, WINDOW_UPDATE
  uint32_t associatedId = 0;      // SYN_STREAM
  uint8_t priority = 0;           // SYN_STREAM, 3 bits
  uint8_t slot = 0;               // SYN_STREAM
  HeaderBlock headers;            // SYN_STREAM, SYN_REPLY, HEADERS
  std::string data;               // data frames
  uint32_t status = 0;            // RST_STREAM, GOAWAY
  uint32_t pingId = 0;            // PING
  uint32_t lastGoodStreamId = 0;  // GOAWAY
  uint32_t deltaWindow = 0;       // WINDOW_UPDATE
  std::vector<Setting> settings;  // SETTINGS
  uint16_t rawType = 0;           // the wire type of a kUnknown frame
};

// Encodes frames for one direction of one connection; owns that direction's
// deflate context. Not thread-safe: the caller serializes encode + write.
class FrameEncoder {
 public:
  FrameEncoder();
  ~FrameEncoder();
  FrameEncoder(const FrameEncoder&) = delete;
  FrameEncoder& operator=(const FrameEncoder&) = delete;

  // The whole frame, ready for one write. Fails on ids/lengths that do not
  // fit the format (stream id 0 or >= 2^31, data or header block > 2^24-1).
  Result<std::string> encode(const Frame& frame);

  Result<std::string> data(uint32_t streamId, std::string_view data, bool fin);
  Result<std::string> synReply(uint32_t streamId, const HeaderBlock& headers, bool fin);
  Result<std::string> rstStream(uint32_t streamId, RstStatus status);
  Result<std::string> ping(uint32_t id);
  Result<std::string> goAway(uint32_t lastGoodStreamId, GoAwayStatus status);

 private:
  Result<std::string> compressHeaders(const HeaderBlock& headers);

  z_stream zs_{};
  bool started_ = false;  // deflateInit2 ran (lazily, on the first header block)
  bool ready_ = false;
};

// Decodes the other direction incrementally: feed() whatever bytes arrived,
// then call next() until it yields nothing. Owns that direction's inflate
// context. After an error the decoder is poisoned (the compression state is
// lost) and every later next() fails the same way.
class FrameDecoder {
 public:
  FrameDecoder();
  ~FrameDecoder();
  FrameDecoder(const FrameDecoder&) = delete;
  FrameDecoder& operator=(const FrameDecoder&) = delete;

  void feed(const char* data, size_t len);
  // A complete frame, std::nullopt when more bytes are needed, or an Error
  // naming the frame type, its offset in the connection and its length.
  Result<std::optional<Frame>> next();
  // Bytes fed but not yet consumed by a complete frame.
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  Result<Frame> parseControl(uint16_t version, uint16_t type, uint8_t flags,
                             std::string_view payload);
  Result<HeaderBlock> decompressHeaders(std::string_view compressed);

  std::string buf_;
  size_t pos_ = 0;
  uint64_t offset_ = 0;  // connection offset of buf_[pos_], for error messages
  z_stream zs_{};
  bool started_ = false;  // inflateInit ran (lazily, on the first header block)
  bool ready_ = false;
  std::optional<Error> poisoned_;
};

// The SPDY/3 header compression dictionary (spec 2.6.10.1), 1423 bytes.
std::string_view headerDictionary();

}  // namespace sluice::agent::streaming::spdy
