// SpdySession over a real socketpair, driven by the test client: stream
// acceptance and ids, reset, GOAWAY both ways, ignored flow-control frames,
// and concurrent writers whose frames must never interleave.
#include "control/agent/streaming/spdy_session.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <thread>

#include "tests/agent/streaming/spdy_test_client.h"

namespace sluice::agent::streaming {
namespace {

using testing::SpdyTestClient;

class SpdySessionTest : public ::testing::Test {
 protected:
  // Streams are handed to `onStream` on a thread of their own.
  void start(std::function<void(std::shared_ptr<SpdyStream>)> onStream) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    client_ = std::make_unique<SpdyTestClient>(sv[0]);
    conn_ = std::make_unique<FdByteStream>(sv[1]);
    session_ = std::make_unique<SpdySession>(*conn_);
    server_ = std::thread([this, onStream] {
      SpdySession::Handlers h;
      h.accept = [](const SpdyStream& s) -> Result<void> {
        if (!s.header("reject").empty()) return Error::invalid("rejected");
        return okResult();
      };
      h.onStream = [this, onStream](std::shared_ptr<SpdyStream> s) {
        std::lock_guard<std::mutex> lock(mu_);
        workers_.emplace_back([onStream, s] { onStream(s); });
      };
      result_ = session_->serve(h);
    });
  }
  Result<void> finish() {
    if (client_) client_->closeNow();
    client_.reset();
    if (server_.joinable()) server_.join();
    for (auto& t : workers_) t.join();
    workers_.clear();
    return result_;
  }
  void TearDown() override { (void)finish(); }

  static void upperEcho(std::shared_ptr<SpdyStream> s) {
    char buf[4096];
    for (;;) {
      auto n = s->read(buf, sizeof(buf));
      if (!n.ok() || *n == 0) break;
      std::string out(buf, *n);
      std::transform(out.begin(), out.end(), out.begin(),
                     [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      if (!s->write(out).ok()) break;
    }
    (void)s->closeWrite();
  }

  std::unique_ptr<SpdyTestClient> client_;
  std::unique_ptr<FdByteStream> conn_;
  std::unique_ptr<SpdySession> session_;
  std::thread server_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
  Result<void> result_;
};

// Each accepted SYN_STREAM gets a SYN_REPLY before any data, headers reach
// the handler, and FIN closes a direction each way.
TEST_F(SpdySessionTest, RepliesToStreamsAndCarriesDataBothWays) {
  std::string seenType;
  start([&](std::shared_ptr<SpdyStream> s) {
    if (s->id() == 1) seenType = s->header("streamtype");
    upperEcho(s);
  });
  auto& c = *client_;
  c.synStream(1, {{"streamtype", "stdout"}});
  c.synStream(3, {{"streamtype", "stdin"}});
  c.data(1, "abc");
  c.data(3, "xyz", true);
  c.data(1, "def", true);
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(1).fin && c.stream(3).fin; }));
  EXPECT_EQ(c.stream(1).data, "ABCDEF");
  EXPECT_EQ(c.stream(3).data, "XYZ");
  EXPECT_EQ(c.stream(1).framesAfterEnd, 0);
  EXPECT_TRUE(finish().ok());
  EXPECT_EQ(seenType, "stdout");
}

// spdystream's id rules: client ids odd and increasing, else RST
// PROTOCOL_ERROR; a rejected stream gets RST CANCEL and no reply.
TEST_F(SpdySessionTest, BadIdsAndRejectedStreamsAreReset) {
  start(upperEcho);
  auto& c = *client_;
  c.synStream(2, {});                   // even: a server id
  c.synStream(7, {});                   // fine
  c.synStream(5, {});                   // lower than 7
  c.synStream(9, {{"reject", "yes"}});  // refused by accept
  ASSERT_TRUE(c.waitUntil([&] {
    return c.stream(2).rst && c.stream(7).replied && c.stream(5).rst && c.stream(9).rst;
  }));
  EXPECT_EQ(*c.stream(2).rst, static_cast<uint32_t>(spdy::RstStatus::kProtocolError));
  EXPECT_EQ(*c.stream(5).rst, static_cast<uint32_t>(spdy::RstStatus::kProtocolError));
  EXPECT_EQ(*c.stream(9).rst, static_cast<uint32_t>(spdy::RstStatus::kCancel));
  EXPECT_FALSE(c.stream(9).replied);
  EXPECT_FALSE(c.stream(5).replied);
}

// RST_STREAM from the client wakes a blocked reader with EOF, marks the
// stream reset, runs the teardown callback, and fails later writes.
TEST_F(SpdySessionTest, ClientResetWakesReaderAndRunsTeardown) {
  std::atomic<bool> tornDown{false};
  std::atomic<bool> sawReset{false};
  std::atomic<bool> writeFailed{false};
  start([&](std::shared_ptr<SpdyStream> s) {
    s->setOnTeardown([&] { tornDown = true; });
    char buf[16];
    auto n = s->read(buf, sizeof(buf));
    EXPECT_TRUE(n.ok() && *n == 0);
    sawReset = s->resetByPeer();
    writeFailed = !s->write("late").ok();
  });
  auto& c = *client_;
  c.synStream(1, {});
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(1).replied; }));
  c.rst(1);
  c.ping(1);  // a round trip after the reset: the server has handled it
  ASSERT_TRUE(c.waitUntil([&] { return !c.pings().empty(); }));
  EXPECT_EQ(c.stream(1).data, "");
  EXPECT_TRUE(finish().ok());  // joins the stream's thread
  EXPECT_TRUE(tornDown);
  EXPECT_TRUE(sawReset);
  EXPECT_TRUE(writeFailed);
}

// After the client's GOAWAY no new stream is accepted (REFUSED_STREAM).
TEST_F(SpdySessionTest, GoAwayFromClientRefusesNewStreams) {
  start(upperEcho);
  auto& c = *client_;
  spdy::FrameEncoder e;
  c.send(e.goAway(0, spdy::GoAwayStatus::kOk));
  c.synStream(1, {});
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(1).rst.has_value(); }));
  EXPECT_EQ(*c.stream(1).rst, static_cast<uint32_t>(spdy::RstStatus::kRefusedStream));
  EXPECT_FALSE(c.stream(1).replied);
}

// SETTINGS and WINDOW_UPDATE are read and ignored (spdystream has no flow
// control): the session stays up and sends nothing for them.
TEST_F(SpdySessionTest, SettingsAndWindowUpdateAreIgnored) {
  start(upperEcho);
  auto& c = *client_;
  spdy::FrameEncoder e;
  spdy::Frame s;
  s.type = spdy::FrameType::kSettings;
  s.settings = {{0, 7, 1}};  // INITIAL_WINDOW_SIZE 1: would stall a flow-controlled peer
  c.send(e.encode(s));
  spdy::Frame w;
  w.type = spdy::FrameType::kWindowUpdate;
  w.streamId = 1;
  w.deltaWindow = 10;
  c.send(e.encode(w));
  c.synStream(1, {});
  c.data(1, std::string(100000, 'q'), true);
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(1).fin; }));
  EXPECT_EQ(c.stream(1).data, std::string(100000, 'Q'));
}

// Eight streams written from eight threads at once: every frame must
// arrive whole (the client's decoder fails on interleaved bytes) and each
// stream's bytes in order.
TEST_F(SpdySessionTest, ConcurrentWritersNeverInterleaveFrames) {
  constexpr int kStreams = 8;
  constexpr size_t kBytes = 512 * 1024;
  auto pattern = [](uint32_t id, size_t i) {
    return static_cast<char>('A' + (id + i / 1000) % 26);
  };
  start([&](std::shared_ptr<SpdyStream> s) {
    std::string all(kBytes, '\0');
    for (size_t i = 0; i < kBytes; ++i) all[i] = pattern(s->id(), i);
    for (size_t off = 0; off < kBytes; off += 10000) {
      ASSERT_TRUE(s->write(std::string_view(all).substr(off, 10000)).ok());
    }
    ASSERT_TRUE(s->closeWrite().ok());
  });
  auto& c = *client_;
  for (int i = 0; i < kStreams; ++i) c.synStream(static_cast<uint32_t>(2 * i + 1), {});
  ASSERT_TRUE(c.waitUntil([&] {
    for (int i = 0; i < kStreams; ++i) {
      if (!c.stream(static_cast<uint32_t>(2 * i + 1)).fin) return false;
    }
    return true;
  }));
  for (int i = 0; i < kStreams; ++i) {
    const uint32_t id = static_cast<uint32_t>(2 * i + 1);
    const std::string& got = c.stream(id).data;
    ASSERT_EQ(got.size(), kBytes);
    size_t bad = 0;
    for (size_t k = 0; k < kBytes; ++k) bad += got[k] != pattern(id, k);
    EXPECT_EQ(bad, 0u) << "stream " << id;
  }
}

// Our close(): GOAWAY(OK) naming the last stream, then the connection ends
// and serve() returns ok.
TEST_F(SpdySessionTest, CloseSendsGoAwayAndEndsServe) {
  start(upperEcho);
  auto& c = *client_;
  c.synStream(5, {});
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(5).replied; }));
  session_->close();
  c.readToEof();
  ASSERT_EQ(c.goAways().size(), 1u);
  EXPECT_EQ(c.goAways()[0].status, 0u);
  EXPECT_EQ(c.goAways()[0].lastGoodStreamId, 5u);
  EXPECT_TRUE(finish().ok());
}

}  // namespace
}  // namespace sluice::agent::streaming
