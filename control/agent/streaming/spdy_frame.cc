#include "control/agent/streaming/spdy_frame.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <string>

namespace sluice::agent::streaming::spdy {
namespace {

constexpr uint32_t kStreamIdMask = 0x7fffffff;
constexpr size_t kFrameHeaderBytes = 8;
// Output granularity of inflate/deflate calls; header blocks are tiny.
constexpr size_t kZlibChunk = 4096;

void putU32(std::string& out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b, 4);
}

uint32_t getU32(std::string_view s, size_t at) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(s[at + i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

void putControlHeader(std::string& out, FrameType type, uint8_t flags, uint32_t length) {
  putU32(out, 0x80000000u | uint32_t{kVersion} << 16 | static_cast<uint16_t>(type));
  putU32(out, uint32_t{flags} << 24 | length);
}

std::string hex(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof(b), "0x%x", v);
  return b;
}

}  // namespace

std::string_view toString(FrameType type) {
  switch (type) {
    case FrameType::kData:
      return "DATA";
    case FrameType::kSynStream:
      return "SYN_STREAM";
    case FrameType::kSynReply:
      return "SYN_REPLY";
    case FrameType::kRstStream:
      return "RST_STREAM";
    case FrameType::kSettings:
      return "SETTINGS";
    case FrameType::kPing:
      return "PING";
    case FrameType::kGoAway:
      return "GOAWAY";
    case FrameType::kHeaders:
      return "HEADERS";
    case FrameType::kWindowUpdate:
      return "WINDOW_UPDATE";
    case FrameType::kUnknown:
      break;
  }
  return "unknown";
}

std::string headerValue(const HeaderBlock& headers, std::string_view name) {
  for (const auto& [n, v] : headers) {
    if (n == name) return v.substr(0, v.find('\0'));
  }
  return {};
}

// ---- Encoder ----

FrameEncoder::FrameEncoder() = default;

FrameEncoder::~FrameEncoder() {
  if (started_) deflateEnd(&zs_);
}

Result<std::string> FrameEncoder::compressHeaders(const HeaderBlock& headers) {
  // zlib state (~300 KiB for deflate) is set up on the first header block.
  if (!started_) {
    started_ = true;
    // Level and window as spdystream's Go writer (BestCompression, 32 KiB
    // window); any settings interoperate, the dictionary is what must match.
    if (deflateInit2(&zs_, Z_BEST_COMPRESSION, Z_DEFLATED, 15, 8, Z_DEFAULT_STRATEGY) == Z_OK) {
      auto dict = headerDictionary();
      ready_ = deflateSetDictionary(&zs_, reinterpret_cast<const Bytef*>(dict.data()),
                                    static_cast<uInt>(dict.size())) == Z_OK;
    }
  }
  if (!ready_) return Error::internal("SPDY header compressor: zlib initialisation failed");
  std::string raw;
  putU32(raw, static_cast<uint32_t>(headers.size()));
  for (const auto& [name, value] : headers) {
    if (name.empty()) return Error::invalid("SPDY header block: empty header name");
    std::string lower(name);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    putU32(raw, static_cast<uint32_t>(lower.size()));
    raw += lower;
    putU32(raw, static_cast<uint32_t>(value.size()));
    raw += value;
  }
  // Checked before deflate() runs: a block that failed after compressing
  // would leave the peer's inflate state out of step with ours.
  if (raw.size() > kMaxHeaderBlockBytes) {
    return Error::invalid("SPDY header block: " + std::to_string(raw.size()) + " bytes, limit " +
                          std::to_string(kMaxHeaderBlockBytes));
  }
  std::string out;
  zs_.next_in = reinterpret_cast<Bytef*>(raw.data());
  zs_.avail_in = static_cast<uInt>(raw.size());
  do {
    const size_t have = out.size();
    out.resize(have + kZlibChunk);
    zs_.next_out = reinterpret_cast<Bytef*>(out.data() + have);
    zs_.avail_out = kZlibChunk;
    // Z_SYNC_FLUSH: the block ends on a byte boundary (00 00 ff ff), so the
    // peer inflates all of it from this frame alone, as Go's Flush() does.
    int rc = deflate(&zs_, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      ready_ = false;
      return Error::internal("SPDY header compressor: deflate failed (" + std::to_string(rc) + ")");
    }
    out.resize(have + kZlibChunk - zs_.avail_out);
  } while (zs_.avail_out == 0);
  return out;
}

Result<std::string> FrameEncoder::encode(const Frame& f) {
  std::string out;
  // WINDOW_UPDATE may name stream 0: SPDY/3.1's session-wide window.
  const bool needsStream = f.type != FrameType::kSettings && f.type != FrameType::kPing &&
                           f.type != FrameType::kGoAway && f.type != FrameType::kUnknown &&
                           f.type != FrameType::kWindowUpdate;
  if (needsStream && (f.streamId == 0 || f.streamId > kStreamIdMask)) {
    return Error::invalid(std::string("SPDY ") + std::string(toString(f.type)) + ": stream id " +
                          std::to_string(f.streamId) + " not in 1..2^31-1");
  }
  switch (f.type) {
    case FrameType::kData: {
      if (f.data.size() > kMaxFrameLength) {
        return Error::invalid("SPDY DATA: " + std::to_string(f.data.size()) + " bytes, limit " +
                              std::to_string(kMaxFrameLength));
      }
      putU32(out, f.streamId);
      putU32(out, uint32_t{f.flags} << 24 | static_cast<uint32_t>(f.data.size()));
      out += f.data;
      return out;
    }
    case FrameType::kSynStream:
    case FrameType::kSynReply:
    case FrameType::kHeaders: {
      auto block = compressHeaders(f.headers);
      if (!block.ok()) return block.error();
      const size_t fixed = f.type == FrameType::kSynStream ? 10 : 4;
      putControlHeader(out, f.type, f.flags, static_cast<uint32_t>(fixed + block->size()));
      putU32(out, f.streamId);
      if (f.type == FrameType::kSynStream) {
        putU32(out, f.associatedId & kStreamIdMask);
        out += static_cast<char>((f.priority & 0x7) << 5);
        out += static_cast<char>(f.slot);
      }
      out += *block;
      return out;
    }
    // Flags as given: the helpers below pass 0, the only value the spec
    // defines for these; a decoded frame re-encodes byte for byte.
    case FrameType::kRstStream:
      putControlHeader(out, f.type, f.flags, 8);
      putU32(out, f.streamId);
      putU32(out, f.status);
      return out;
    case FrameType::kSettings:
      putControlHeader(out, f.type, f.flags, static_cast<uint32_t>(4 + 8 * f.settings.size()));
      putU32(out, static_cast<uint32_t>(f.settings.size()));
      for (const auto& s : f.settings) {
        putU32(out, uint32_t{s.flags} << 24 | (s.id & 0xffffff));
        putU32(out, s.value);
      }
      return out;
    case FrameType::kPing:
      putControlHeader(out, f.type, f.flags, 4);
      putU32(out, f.pingId);
      return out;
    case FrameType::kGoAway:
      putControlHeader(out, f.type, f.flags, 8);
      putU32(out, f.lastGoodStreamId & kStreamIdMask);
      putU32(out, f.status);
      return out;
    case FrameType::kWindowUpdate:
      putControlHeader(out, f.type, f.flags, 8);
      putU32(out, f.streamId & kStreamIdMask);
      putU32(out, f.deltaWindow & kStreamIdMask);
      return out;
    case FrameType::kUnknown:
      break;
  }
  return Error::invalid("SPDY: cannot encode a frame of unknown type");
}

Result<std::string> FrameEncoder::data(uint32_t streamId, std::string_view data, bool fin) {
  Frame f;
  f.type = FrameType::kData;
  f.streamId = streamId;
  f.flags = fin ? kFlagFin : 0;
  f.data.assign(data);
  return encode(f);
}

Result<std::string> FrameEncoder::synReply(uint32_t streamId, const HeaderBlock& headers,
                                           bool fin) {
  Frame f;
  f.type = FrameType::kSynReply;
  f.streamId = streamId;
  f.flags = fin ? kFlagFin : 0;
  f.headers = headers;
  return encode(f);
}

Result<std::string> FrameEncoder::rstStream(uint32_t streamId, RstStatus status) {
  Frame f;
  f.type = FrameType::kRstStream;
  f.streamId = streamId;
  f.status = static_cast<uint32_t>(status);
  return encode(f);
}

Result<std::string> FrameEncoder::ping(uint32_t id) {
  Frame f;
  f.type = FrameType::kPing;
  f.pingId = id;
  return encode(f);
}

Result<std::string> FrameEncoder::goAway(uint32_t lastGoodStreamId, GoAwayStatus status) {
  Frame f;
  f.type = FrameType::kGoAway;
  f.lastGoodStreamId = lastGoodStreamId;
  f.status = static_cast<uint32_t>(status);
  return encode(f);
}

// ---- Decoder ----

FrameDecoder::FrameDecoder() = default;

FrameDecoder::~FrameDecoder() {
  if (started_) inflateEnd(&zs_);
}

void FrameDecoder::feed(const char* data, size_t len) {
  // Drop consumed bytes once they dominate, so the buffer stays bounded by
  // one frame plus one read.
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(data, len);
}

Result<std::optional<Frame>> FrameDecoder::next() {
  if (poisoned_) return *poisoned_;
  std::string_view avail(buf_.data() + pos_, buf_.size() - pos_);
  if (avail.size() < kFrameHeaderBytes) return std::optional<Frame>{};
  const uint32_t w0 = getU32(avail, 0);
  const uint32_t w1 = getU32(avail, 4);
  const uint8_t flags = static_cast<uint8_t>(w1 >> 24);
  const uint32_t length = w1 & 0xffffff;
  if (avail.size() < kFrameHeaderBytes + length) return std::optional<Frame>{};

  const uint64_t at = offset_;
  std::string_view payload = avail.substr(kFrameHeaderBytes, length);
  pos_ += kFrameHeaderBytes + length;
  offset_ += kFrameHeaderBytes + length;

  const bool control = (w0 & 0x80000000u) != 0;
  const uint16_t type = control ? static_cast<uint16_t>(w0 & 0xffff) : 0;
  auto fail = [&](const std::string& why) -> Error {
    std::string name = control ? std::string(toString(static_cast<FrameType>(type))) : "DATA";
    if (name == "unknown") name = "control type " + std::to_string(type);
    Error e = Error::invalid("SPDY " + name + " frame at offset " + std::to_string(at) +
                             " (length " + std::to_string(length) + "): " + why);
    poisoned_ = e;
    return e;
  };

  if (!control) {
    Frame f;
    f.type = FrameType::kData;
    f.flags = flags;
    f.streamId = w0 & kStreamIdMask;
    if (f.streamId == 0) return fail("stream id 0");
    f.data.assign(payload);
    return std::optional<Frame>(std::move(f));
  }
  const uint16_t version = static_cast<uint16_t>((w0 >> 16) & 0x7fff);
  if (version != kVersion) {
    return fail("version " + std::to_string(version) + ", only SPDY/3 is spoken");
  }
  auto parsed = parseControl(version, type, flags, payload);
  if (!parsed.ok()) return fail(parsed.error().message);
  return std::optional<Frame>(std::move(parsed.value()));
}

Result<Frame> FrameDecoder::parseControl(uint16_t, uint16_t type, uint8_t flags,
                                         std::string_view p) {
  Frame f;
  f.type = static_cast<FrameType>(type);
  f.flags = flags;
  auto needExactly = [&](size_t n) -> Result<void> {
    if (p.size() != n) {
      return Error::invalid("payload must be " + std::to_string(n) + " bytes");
    }
    return okResult();
  };
  auto needStream = [&]() -> Result<void> {
    if (f.streamId == 0) return Error::invalid("stream id 0");
    return okResult();
  };
  switch (f.type) {
    case FrameType::kSynStream: {
      if (p.size() < 10) return Error::invalid("payload shorter than 10 bytes");
      f.streamId = getU32(p, 0) & kStreamIdMask;
      f.associatedId = getU32(p, 4) & kStreamIdMask;
      f.priority = static_cast<uint8_t>(static_cast<unsigned char>(p[8]) >> 5);
      f.slot = static_cast<uint8_t>(p[9]);
      // Inflate before any other check: the block advanced the peer's
      // deflate state, so ours must follow or every later block breaks.
      auto headers = decompressHeaders(p.substr(10));
      if (!headers.ok()) return headers.error();
      f.headers = std::move(headers.value());
      if (auto r = needStream(); !r.ok()) return r.error();
      return f;
    }
    case FrameType::kSynReply:
    case FrameType::kHeaders: {
      if (p.size() < 4) return Error::invalid("payload shorter than 4 bytes");
      f.streamId = getU32(p, 0) & kStreamIdMask;
      auto headers = decompressHeaders(p.substr(4));
      if (!headers.ok()) return headers.error();
      f.headers = std::move(headers.value());
      if (auto r = needStream(); !r.ok()) return r.error();
      return f;
    }
    case FrameType::kRstStream: {
      if (auto r = needExactly(8); !r.ok()) return r.error();
      f.streamId = getU32(p, 0) & kStreamIdMask;
      f.status = getU32(p, 4);
      if (auto r = needStream(); !r.ok()) return r.error();
      if (f.status == 0) return Error::invalid("status 0");
      return f;
    }
    case FrameType::kSettings: {
      if (p.size() < 4) return Error::invalid("payload shorter than 4 bytes");
      const uint32_t n = getU32(p, 0);
      if (n > (p.size() - 4) / 8 || p.size() != 4 + size_t{n} * 8) {
        return Error::invalid(std::to_string(n) + " entries do not fill the payload");
      }
      for (uint32_t i = 0; i < n; ++i) {
        const uint32_t idWord = getU32(p, 4 + size_t{i} * 8);
        f.settings.push_back(
            {static_cast<uint8_t>(idWord >> 24), idWord & 0xffffff, getU32(p, 8 + size_t{i} * 8)});
      }
      return f;
    }
    case FrameType::kPing:
      if (auto r = needExactly(4); !r.ok()) return r.error();
      f.pingId = getU32(p, 0);
      return f;
    case FrameType::kGoAway:
      if (auto r = needExactly(8); !r.ok()) return r.error();
      f.lastGoodStreamId = getU32(p, 0) & kStreamIdMask;
      f.status = getU32(p, 4);
      return f;
    case FrameType::kWindowUpdate:
      if (auto r = needExactly(8); !r.ok()) return r.error();
      f.streamId = getU32(p, 0) & kStreamIdMask;
      f.deltaWindow = getU32(p, 4) & kStreamIdMask;
      return f;
    default:
      // Spec 2.2.1: a control frame of an unrecognised type is ignored.
      f.type = FrameType::kUnknown;
      f.rawType = type;
      return f;
  }
}

Result<HeaderBlock> FrameDecoder::decompressHeaders(std::string_view compressed) {
  if (!started_) {
    started_ = true;
    ready_ = inflateInit(&zs_) == Z_OK;
  }
  if (!ready_) return Error::internal("header block: zlib initialisation failed");
  if (compressed.empty()) return Error::invalid("header block: empty");
  std::string raw;
  zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  zs_.avail_in = static_cast<uInt>(compressed.size());
  for (;;) {
    const size_t have = raw.size();
    raw.resize(have + kZlibChunk);
    zs_.next_out = reinterpret_cast<Bytef*>(raw.data() + have);
    zs_.avail_out = kZlibChunk;
    int rc = inflate(&zs_, Z_SYNC_FLUSH);
    if (rc == Z_NEED_DICT) {
      // The zlib header named a dictionary (FDICT): it must be SPDY/3's.
      auto dict = headerDictionary();
      if (inflateSetDictionary(&zs_, reinterpret_cast<const Bytef*>(dict.data()),
                               static_cast<uInt>(dict.size())) != Z_OK) {
        return Error::invalid("header block: zlib dictionary id " + hex(zs_.adler) +
                              " is not the SPDY/3 dictionary's");
      }
      rc = Z_OK;
    }
    raw.resize(have + kZlibChunk - zs_.avail_out);
    if (rc == Z_STREAM_END) {
      return Error::invalid("header block: zlib stream ended (the peer must keep one stream)");
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return Error::invalid(std::string("header block: zlib: ") +
                            (zs_.msg ? zs_.msg : "error " + std::to_string(rc)));
    }
    if (raw.size() > kMaxHeaderBlockBytes) {
      return Error::invalid("header block: inflates past " + std::to_string(kMaxHeaderBlockBytes) +
                            " bytes");
    }
    if (zs_.avail_in == 0 && zs_.avail_out != 0) break;
    if (rc == Z_BUF_ERROR && zs_.avail_out != 0) {
      return Error::invalid("header block: zlib made no progress");
    }
  }

  // Name/value block, every length bounded by what is left.
  std::string_view r(raw);
  size_t at = 0;
  auto u32 = [&](const char* what) -> Result<uint32_t> {
    if (r.size() - at < 4) {
      return Error::invalid("header block: truncated at " + std::string(what) + " (byte " +
                            std::to_string(at) + " of " + std::to_string(r.size()) + ")");
    }
    uint32_t v = getU32(r, at);
    at += 4;
    return v;
  };
  auto bytes = [&](uint32_t n, const char* what) -> Result<std::string_view> {
    if (n > r.size() - at) {
      return Error::invalid("header block: " + std::string(what) + " length " + std::to_string(n) +
                            " exceeds the " + std::to_string(r.size() - at) + " bytes left");
    }
    std::string_view v = r.substr(at, n);
    at += n;
    return v;
  };
  auto count = u32("header count");
  if (!count.ok()) return count.error();
  if (*count > kMaxHeaderCount) {
    return Error::invalid("header block: " + std::to_string(*count) + " headers, limit " +
                          std::to_string(kMaxHeaderCount));
  }
  HeaderBlock headers;
  std::set<std::string_view> seen;
  for (uint32_t i = 0; i < *count; ++i) {
    auto nameLen = u32("name length");
    if (!nameLen.ok()) return nameLen.error();
    auto name = bytes(*nameLen, "name");
    if (!name.ok()) return name.error();
    if (name->empty())
      return Error::invalid("header block: header " + std::to_string(i) + ": empty name");
    for (char c : *name) {
      if (c >= 'A' && c <= 'Z') {
        return Error::invalid("header block: name '" + std::string(*name) + "' is not lower-case");
      }
    }
    if (!seen.insert(*name).second) {
      return Error::invalid("header block: name '" + std::string(*name) + "' appears twice");
    }
    auto valueLen = u32("value length");
    if (!valueLen.ok()) return valueLen.error();
    auto value = bytes(*valueLen, "value");
    if (!value.ok()) return value.error();
    headers.emplace_back(std::string(*name), std::string(*value));
  }
  if (at != r.size()) {
    return Error::invalid("header block: " + std::to_string(r.size() - at) +
                          " bytes after the last header");
  }
  return headers;
}

}  // namespace sluice::agent::streaming::spdy
