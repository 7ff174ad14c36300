// SPDY/3 codec: exact bytes for the fixed frames (spec layout), header blocks
// checked against plain zlib in this file, hand-built deflate input decoded,
// spdystream's corrupted-zlib fixtures, and a table of malformed frames.
#include "control/agent/streaming/spdy_frame.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <vector>

namespace sluice::agent::streaming::spdy {
namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int x : b) s += static_cast<char>(x);
  return s;
}

void putU32(std::string& s, uint32_t v) {
  s += static_cast<char>(v >> 24);
  s += static_cast<char>(v >> 16);
  s += static_cast<char>(v >> 8);
  s += static_cast<char>(v);
}

std::string controlHeader(uint16_t version, uint16_t type, uint8_t flags, uint32_t length) {
  std::string s;
  putU32(s, 0x80000000u | uint32_t{version} << 16 | type);
  putU32(s, uint32_t{flags} << 24 | length);
  return s;
}

// Uncompressed name/value block, built from the spec's layout.
std::string rawBlock(const std::vector<std::pair<std::string, std::string>>& h) {
  std::string s;
  putU32(s, static_cast<uint32_t>(h.size()));
  for (const auto& [n, v] : h) {
    putU32(s, static_cast<uint32_t>(n.size()));
    s += n;
    putU32(s, static_cast<uint32_t>(v.size()));
    s += v;
  }
  return s;
}

// A zlib stream carrying `raw` in one non-final stored deflate block
// (RFC 1951 3.2.4), with the header naming the SPDY/3 dictionary
// (RFC 1950: CMF 0x78, FLG 0xf9 = FLEVEL 3 | FDICT, DICTID e3c6a7c2).
// No compressor involved: these are the bytes a peer's sync flush of an
// incompressible block looks like.
std::string storedZlib(const std::string& raw, bool withHeader = true) {
  std::string s;
  if (withHeader) s += bytes({0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2});
  s += '\0';  // BFINAL 0, BTYPE 00, padded
  const uint16_t len = static_cast<uint16_t>(raw.size());
  s += static_cast<char>(len & 0xff);
  s += static_cast<char>(len >> 8);
  s += static_cast<char>(~len & 0xff);
  s += static_cast<char>((~len >> 8) & 0xff);
  return s + raw;
}

// Independent inflater: plain zlib, primed the way the SPDY spec says.
class PlainInflater {
 public:
  PlainInflater() { EXPECT_EQ(inflateInit(&zs_), Z_OK); }
  ~PlainInflater() { inflateEnd(&zs_); }
  std::string inflateBlock(const std::string& in) {
    std::string out(1 << 16, '\0');
    zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs_.avail_in = static_cast<uInt>(in.size());
    zs_.next_out = reinterpret_cast<Bytef*>(out.data());
    zs_.avail_out = static_cast<uInt>(out.size());
    int rc = inflate(&zs_, Z_SYNC_FLUSH);
    if (rc == Z_NEED_DICT) {
      auto d = headerDictionary();
      EXPECT_EQ(inflateSetDictionary(&zs_, reinterpret_cast<const Bytef*>(d.data()),
                                     static_cast<uInt>(d.size())),
                Z_OK);
      rc = inflate(&zs_, Z_SYNC_FLUSH);
    }
    EXPECT_EQ(rc, Z_OK);
    EXPECT_EQ(zs_.avail_in, 0u) << "a sync-flushed block is consumed whole";
    out.resize(out.size() - zs_.avail_out);
    return out;
  }

 private:
  z_stream zs_{};
};

Frame decodeOne(const std::string& wire) {
  FrameDecoder d;
  d.feed(wire.data(), wire.size());
  auto f = d.next();
  EXPECT_TRUE(f.ok()) << (f.ok() ? "" : f.error().message);
  EXPECT_TRUE(f.ok() && f->has_value());
  EXPECT_EQ(d.buffered(), 0u);
  return f.ok() && f->has_value() ? **f : Frame{};
}

// The dictionary is the spec's: its Adler-32 is the DICTID every SPDY/3
// header block starts with (78 xx e3 c6 a7 c2 on the wire).
TEST(SpdyFrameTest, DictionaryIsTheSpecDictionary) {
  auto d = headerDictionary();
  ASSERT_EQ(d.size(), 1423u);
  EXPECT_EQ(adler32(1, reinterpret_cast<const Bytef*>(d.data()), static_cast<uInt>(d.size())),
            0xe3c6a7c2u);
  EXPECT_EQ(d.substr(0, 11), std::string_view("\0\0\0\7options", 11));
  EXPECT_EQ(d.substr(d.size() - 7), ",enq=0.");
}

// Fixed-size frames against bytes written out from the spec's layout.
TEST(SpdyFrameTest, FixedFramesEncodeToSpecBytes) {
  FrameEncoder e;
  EXPECT_EQ(*e.ping(1), bytes({0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04,  //
                               0x00, 0x00, 0x00, 0x01}));
  EXPECT_EQ(*e.rstStream(3, RstStatus::kCancel),
            bytes({0x80, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08,  //
                   0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x05}));
  EXPECT_EQ(*e.goAway(7, GoAwayStatus::kProtocolError),
            bytes({0x80, 0x03, 0x00, 0x07, 0x00, 0x00, 0x00, 0x08,  //
                   0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x01}));
  EXPECT_EQ(*e.data(1, "hello", /*fin=*/true),
            bytes({0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o'}));
  EXPECT_EQ(*e.data(5, "", /*fin=*/true), bytes({0x00, 0x00, 0x00, 0x05, 0x01, 0x00, 0x00, 0x00}));
  Frame s;
  s.type = FrameType::kSettings;
  s.settings = {{0x01, 4, 100}};  // persist MAX_CONCURRENT_STREAMS = 100
  EXPECT_EQ(*e.encode(s), bytes({0x80, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x0c,  //
                                 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x04,  //
                                 0x00, 0x00, 0x00, 0x64}));
  Frame w;
  w.type = FrameType::kWindowUpdate;
  w.streamId = 3;
  w.deltaWindow = 65536;
  EXPECT_EQ(*e.encode(w), bytes({0x80, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x08,  //
                                 0x00, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00}));
}

// SYN_REPLY as kubelet sends it (no headers), and a SYN_STREAM after it in
// the same compression context, both inflated by plain zlib here.
TEST(SpdyFrameTest, HeaderBlocksInflateWithPlainZlibAndDictionary) {
  FrameEncoder e;
  PlainInflater z;
  auto reply = e.synReply(1, {}, false);
  ASSERT_TRUE(reply.ok());
  // Control header: version 3, type 2, flags 0, length 4 + block.
  EXPECT_EQ(reply->substr(0, 4), bytes({0x80, 0x03, 0x00, 0x02}));
  EXPECT_EQ(static_cast<unsigned char>((*reply)[4]), 0u);
  const uint32_t len = static_cast<uint32_t>(static_cast<unsigned char>((*reply)[5])) << 16 |
                       static_cast<unsigned char>((*reply)[6]) << 8 |
                       static_cast<unsigned char>((*reply)[7]);
  ASSERT_EQ(len, reply->size() - 8);
  EXPECT_EQ(reply->substr(8, 4), bytes({0, 0, 0, 1}));  // stream id
  const std::string block1 = reply->substr(12);
  // zlib header: deflate, 32K window, FDICT, DICTID of the SPDY/3 dictionary.
  ASSERT_GE(block1.size(), 6u);
  EXPECT_EQ(static_cast<unsigned char>(block1[0]), 0x78);
  EXPECT_EQ(
      (static_cast<unsigned char>(block1[0]) * 256 + static_cast<unsigned char>(block1[1])) % 31,
      0);
  EXPECT_NE(static_cast<unsigned char>(block1[1]) & 0x20, 0) << "FDICT set";
  EXPECT_EQ(block1.substr(2, 4), bytes({0xe3, 0xc6, 0xa7, 0xc2}));
  // Z_SYNC_FLUSH ends each block with an empty stored block.
  EXPECT_EQ(block1.substr(block1.size() - 4), bytes({0x00, 0x00, 0xff, 0xff}));
  EXPECT_EQ(z.inflateBlock(block1), rawBlock({}));

  Frame syn;
  syn.type = FrameType::kSynStream;
  syn.streamId = 3;
  syn.priority = 2;
  syn.headers = {{"Port", "8080"}, {"requestid", "0"}, {"streamtype", "data"}};
  auto wire = e.encode(syn);
  ASSERT_TRUE(wire.ok());
  EXPECT_EQ(wire->substr(0, 4), bytes({0x80, 0x03, 0x00, 0x01}));
  EXPECT_EQ(wire->substr(8, 10), bytes({0, 0, 0, 3, 0, 0, 0, 0, 0x40, 0}));
  const std::string block2 = wire->substr(18);
  EXPECT_NE(block2.substr(0, 2), block1.substr(0, 2)) << "one zlib header per connection";
  EXPECT_EQ(z.inflateBlock(block2),
            rawBlock({{"port", "8080"}, {"requestid", "0"}, {"streamtype", "data"}}))
      << "names go out lower-case";
}

// A SYN_STREAM written byte by byte from the spec, the header block in a
// stored deflate block: what any conforming peer may send.
TEST(SpdyFrameTest, DecodesHandBuiltSynStream) {
  const std::string block =
      storedZlib(rawBlock({{"port", "8080"}, {"requestid", "7"}, {"streamtype", "error"}}));
  std::string wire = controlHeader(3, 1, 0, static_cast<uint32_t>(10 + block.size()));
  putU32(wire, 5);              // stream id
  putU32(wire, 0);              // associated
  wire += bytes({0x60, 0x00});  // priority 3, slot 0
  wire += block;
  Frame f = decodeOne(wire);
  EXPECT_EQ(f.type, FrameType::kSynStream);
  EXPECT_EQ(f.streamId, 5u);
  EXPECT_EQ(f.priority, 3);
  EXPECT_EQ(headerValue(f.headers, "port"), "8080");
  EXPECT_EQ(headerValue(f.headers, "requestid"), "7");
  EXPECT_EQ(headerValue(f.headers, "streamtype"), "error");
}

// Every frame type survives encode -> decode, fed one byte at a time, with
// three header blocks sharing one compression context.
TEST(SpdyFrameTest, RoundTripsByteByByte) {
  FrameEncoder e;
  std::vector<Frame> frames;
  auto add = [&](Frame f) { frames.push_back(std::move(f)); };
  Frame f;
  f.type = FrameType::kSynStream;
  f.streamId = 1;
  f.headers = {{"streamtype", "error"}, {"port", "80"}, {"multi", std::string("a\0b", 3)}};
  add(f);
  f = {};
  f.type = FrameType::kSynReply;
  f.streamId = 1;
  f.flags = kFlagFin;
  f.headers = {{"x", ""}};
  add(f);
  f = {};
  f.type = FrameType::kHeaders;
  f.streamId = 1;
  f.headers = {{"streamtype", "error"}, {"port", "80"}};
  add(f);
  f = {};
  f.type = FrameType::kData;
  f.streamId = 0x7fffffff;
  f.data = std::string(70000, 'z');
  add(f);
  f = {};
  f.type = FrameType::kPing;
  f.pingId = 0xfffffffe;
  add(f);
  f = {};
  f.type = FrameType::kRstStream;
  f.streamId = 9;
  f.status = 7;
  add(f);
  f = {};
  f.type = FrameType::kSettings;
  f.settings = {{0, 7, 65536}, {2, 4, 1000}};
  add(f);
  f = {};
  f.type = FrameType::kGoAway;
  f.lastGoodStreamId = 11;
  add(f);
  f = {};
  f.type = FrameType::kWindowUpdate;
  f.streamId = 3;
  f.deltaWindow = 5;
  add(f);

  std::string wire;
  for (const auto& fr : frames) {
    auto w = e.encode(fr);
    ASSERT_TRUE(w.ok()) << w.error().message;
    wire += *w;
  }
  FrameDecoder d;
  std::vector<Frame> got;
  for (char c : wire) {
    d.feed(&c, 1);
    for (;;) {
      auto n = d.next();
      ASSERT_TRUE(n.ok()) << n.error().message;
      if (!n->has_value()) break;
      got.push_back(std::move(**n));
    }
  }
  ASSERT_EQ(got.size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    SCOPED_TRACE(std::string(toString(frames[i].type)));
    EXPECT_EQ(got[i].type, frames[i].type);
    EXPECT_EQ(got[i].flags, frames[i].flags);
    EXPECT_EQ(got[i].streamId, frames[i].streamId);
    EXPECT_EQ(got[i].headers, frames[i].headers);
    EXPECT_EQ(got[i].data, frames[i].data);
    EXPECT_EQ(got[i].status, frames[i].status);
    EXPECT_EQ(got[i].pingId, frames[i].pingId);
    EXPECT_EQ(got[i].lastGoodStreamId, frames[i].lastGoodStreamId);
    EXPECT_EQ(got[i].deltaWindow, frames[i].deltaWindow);
    ASSERT_EQ(got[i].settings.size(), frames[i].settings.size());
    for (size_t k = 0; k < got[i].settings.size(); ++k) {
      EXPECT_EQ(got[i].settings[k].flags, frames[i].settings[k].flags);
      EXPECT_EQ(got[i].settings[k].id, frames[i].settings[k].id);
      EXPECT_EQ(got[i].settings[k].value, frames[i].settings[k].value);
    }
  }
  EXPECT_EQ(headerValue(got[0].headers, "multi"), "a") << "first of NUL-joined values";
}

// Spec 2.2.1: an unknown control type (CREDENTIAL = 10 here) is skipped.
TEST(SpdyFrameTest, UnknownControlTypeIsSkipped) {
  FrameEncoder e;
  std::string wire = controlHeader(3, 10, 0, 3) + "abc" + *e.ping(3);
  FrameDecoder d;
  d.feed(wire.data(), wire.size());
  auto a = d.next();
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ((*a)->type, FrameType::kUnknown);
  EXPECT_EQ((*a)->rawType, 10);
  auto b = d.next();
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->pingId, 3u);
}

// moby/spdystream's TestReadMalformedZlibHeader fixtures (SPDY/2 frames with
// the zlib header's first byte corrupted): refused for the version, and
// with the version patched to 3, for the zlib header.
TEST(SpdyFrameTest, RejectsSpdystreamMalformedZlibFixtures) {
  // base64 "gAIAAQAAABgAAAACAAAAAAAAF/nfolGyYmAAAAAA//8="
  const std::string syn = bytes({0x80, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00,
                                 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x17, 0xf9, 0xdf, 0xa2,
                                 0x51, 0xb2, 0x62, 0x60, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff});
  // base64 "gAIAAgAAABQAAAACAAAX+d+iUbJiYAAAAAD//w=="
  const std::string reply =
      bytes({0x80, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
             0x17, 0xf9, 0xdf, 0xa2, 0x51, 0xb2, 0x62, 0x60, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff});
  for (std::string wire : {syn, reply}) {
    FrameDecoder d;
    d.feed(wire.data(), wire.size());
    auto r = d.next();
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("version 2"), std::string::npos) << r.error().message;

    wire[1] = 0x03;
    FrameDecoder d3;
    d3.feed(wire.data(), wire.size());
    r = d3.next();
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("zlib"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("at offset 0"), std::string::npos) << r.error().message;
  }
}

struct MalformedCase {
  const char* scenario;
  std::string wire;
  const char* expect;  // substring of the error
};

std::string synStreamWith(const std::string& block, uint32_t streamId = 1) {
  std::string w = controlHeader(3, 1, 0, static_cast<uint32_t>(10 + block.size()));
  putU32(w, streamId);
  putU32(w, 0);
  w += bytes({0, 0});
  return w + block;
}

TEST(SpdyFrameTest, MalformedFramesAreErrorsNamingTheFrame) {
  std::string settingsShort = controlHeader(3, 4, 0, 12);
  putU32(settingsShort, 2);
  putU32(settingsShort, 4);
  putU32(settingsShort, 100);
  std::string settingsHuge = controlHeader(3, 4, 0, 12);
  putU32(settingsHuge, 0x20000001);
  putU32(settingsHuge, 4);
  putU32(settingsHuge, 100);
  std::string rst0 = controlHeader(3, 3, 0, 8);
  putU32(rst0, 0);
  putU32(rst0, 5);
  std::string rstStatus0 = controlHeader(3, 3, 0, 8);
  putU32(rstStatus0, 1);
  putU32(rstStatus0, 0);
  std::string badNameLen;
  putU32(badNameLen, 1);
  putU32(badNameLen, 1000);  // name longer than the block
  badNameLen += "port";
  std::string wrongDict = bytes({0x78, 0xf9, 0x01, 0x02, 0x03, 0x04});
  FrameEncoder okEnc;

  const std::vector<MalformedCase> cases = {
      {"data frame on stream 0", bytes({0, 0, 0, 0, 0, 0, 0, 1, 'x'}), "DATA frame at offset 0"},
      {"SPDY/2 PING", controlHeader(2, 6, 0, 4) + bytes({0, 0, 0, 1}), "version 2"},
      {"RST_STREAM with 4-byte payload", controlHeader(3, 3, 0, 4) + bytes({0, 0, 0, 1}),
       "RST_STREAM frame at offset 0 (length 4): payload must be 8 bytes"},
      {"RST_STREAM for stream 0", rst0, "RST_STREAM frame at offset 0 (length 8): stream id 0"},
      {"RST_STREAM with status 0", rstStatus0, "status 0"},
      {"PING with 8-byte payload", controlHeader(3, 6, 0, 8) + std::string(8, '\0'),
       "PING frame at offset 0 (length 8): payload must be 4 bytes"},
      {"GOAWAY without status", controlHeader(3, 7, 0, 4) + std::string(4, '\0'),
       "GOAWAY frame at offset 0 (length 4)"},
      {"WINDOW_UPDATE too long", controlHeader(3, 9, 0, 12) + std::string(12, '\0'),
       "WINDOW_UPDATE frame"},
      {"SETTINGS counting 2 entries, carrying 1", settingsShort,
       "SETTINGS frame at offset 0 (length 12): 2 entries"},
      {"SETTINGS count that would overflow", settingsHuge, "entries do not fill"},
      {"SYN_STREAM shorter than its fixed part", controlHeader(3, 1, 0, 6) + std::string(6, '\0'),
       "SYN_STREAM frame at offset 0 (length 6): payload shorter than 10 bytes"},
      {"SYN_STREAM without header block", synStreamWith(""), "header block: empty"},
      {"SYN_STREAM with garbage for zlib", synStreamWith("not zlib at all"), "zlib"},
      {"SYN_STREAM naming another dictionary", synStreamWith(wrongDict), "dictionary"},
      {"SYN_STREAM on stream 0", synStreamWith(storedZlib(rawBlock({})), 0), "stream id 0"},
      {"header name in upper case", synStreamWith(storedZlib(rawBlock({{"Port", "80"}}))),
       "'Port' is not lower-case"},
      {"header name twice", synStreamWith(storedZlib(rawBlock({{"port", "80"}, {"port", "81"}}))),
       "appears twice"},
      {"empty header name", synStreamWith(storedZlib(rawBlock({{"", "80"}}))), "empty name"},
      {"name length past the block", synStreamWith(storedZlib(badNameLen)),
       "name length 1000 exceeds"},
      {"bytes after the last header", synStreamWith(storedZlib(rawBlock({}) + "xx")),
       "2 bytes after the last header"},
      {"header count above the limit", synStreamWith(storedZlib(bytes({0x00, 0x10, 0x00, 0x00}))),
       "limit 1024"},
      {"truncated header block", synStreamWith(storedZlib(bytes({0, 0, 0, 1, 0, 0}))),
       "truncated at name length"},
      {"bad frame after a good one: offset counts", *okEnc.ping(1) + controlHeader(3, 6, 0, 0),
       "PING frame at offset 12 (length 0)"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.scenario);
    FrameDecoder d;
    d.feed(c.wire.data(), c.wire.size());
    Result<std::optional<Frame>> r = std::optional<Frame>{};
    while (r.ok()) {
      r = d.next();
      if (r.ok() && !r->has_value()) break;
    }
    ASSERT_FALSE(r.ok()) << "accepted";
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find(c.expect), std::string::npos) << r.error().message;
    // Poisoned: the compression state is unknown from here on.
    auto again = d.next();
    EXPECT_FALSE(again.ok());
  }
}

// A frame split anywhere waits for its remaining bytes.
TEST(SpdyFrameTest, PartialFrameWaitsForMoreBytes) {
  FrameEncoder e;
  const std::string wire = *e.data(3, "abcdef", false);
  FrameDecoder d;
  d.feed(wire.data(), 7);
  auto r = d.next();
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  EXPECT_EQ(d.buffered(), 7u);
  d.feed(wire.data() + 7, wire.size() - 7);
  r = d.next();
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->data, "abcdef");
}

TEST(SpdyFrameTest, EncoderRefusesWhatTheFormatCannotCarry) {
  FrameEncoder e;
  EXPECT_FALSE(e.data(0, "x", false).ok());
  EXPECT_FALSE(e.data(0x80000000u, "x", false).ok());
  EXPECT_FALSE(e.data(1, std::string(kMaxFrameLength + 1, 'x'), false).ok());
  Frame big;
  big.type = FrameType::kSynReply;
  big.streamId = 1;
  big.headers = {{"x", std::string(kMaxHeaderBlockBytes, 'y')}};
  auto r = e.encode(big);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("header block"), std::string::npos);
  // The refused block never reached deflate: the context still works.
  PlainInflater z;
  auto ok = e.synReply(1, {{"a", "b"}}, false);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(z.inflateBlock(ok->substr(12)), rawBlock({{"a", "b"}}));
}

}  // namespace
}  // namespace sluice::agent::streaming::spdy
