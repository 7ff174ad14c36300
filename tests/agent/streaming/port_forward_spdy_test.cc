// kubectl port-forward over SPDY against real TCP servers on 127.0.0.1
// (ephemeral ports), the client side played by spdy_test_client.h over a real
// socketpair, with kubectl's stream sequence: error stream (half-closed at
// once), then data stream, per forwarded connection.
#include "control/agent/streaming/port_forward_spdy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include "tests/agent/streaming/spdy_test_client.h"

namespace sluice::agent::streaming {
namespace {

using spdy::HeaderBlock;
using testing::SpdyTestClient;

// A TCP server on 127.0.0.1, one thread per connection.
class TcpServer {
 public:
  enum class Mode {
    kEcho,    // echoes until EOF, then closes
    kCount,   // reads to EOF, answers "got N bytes", closes (needs half-close)
    kBanner,  // writes a banner and closes without reading
  };

  explicit TcpServer(Mode mode) : mode_(mode) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    EXPECT_EQ(::listen(fd_, 64), 0);
    acceptor_ = std::thread([this] { acceptLoop(); });
  }
  ~TcpServer() {
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    acceptor_.join();
    for (auto& t : handlers_) t.join();
    ::close(fd_);
  }
  uint16_t port() const { return port_; }
  // Blocks until `n` connections saw EOF from the forwarder (hang guard 30 s).
  bool waitForEofs(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return eofs_ >= n; });
  }

 private:
  void acceptLoop() {
    for (;;) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      std::lock_guard<std::mutex> lock(mu_);
      handlers_.emplace_back([this, c] { serve(c); });
    }
  }
  void serve(int c) {
    char buf[65536];
    size_t total = 0;
    if (mode_ == Mode::kBanner) {
      const char kBanner[] = "hello from pod\n";
      (void)!::send(c, kBanner, sizeof(kBanner) - 1, MSG_NOSIGNAL);
      ::close(c);
      return;
    }
    for (;;) {
      ssize_t n = ::recv(c, buf, sizeof(buf), 0);
      if (n <= 0) break;
      total += static_cast<size_t>(n);
      if (mode_ == Mode::kEcho) (void)!::send(c, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++eofs_;
      cv_.notify_all();
    }
    if (mode_ == Mode::kCount) {
      std::string reply = "got " + std::to_string(total) + " bytes";
      (void)!::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
    }
    ::close(c);
  }

  Mode mode_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread acceptor_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> handlers_;
  int eofs_ = 0;
};

// A 127.0.0.1 port nothing listens on: bound, then closed.
uint16_t refusedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

Result<int> dialLoopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::internal(std::string("socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    int e = errno;
    ::close(fd);
    return Error::unavailable("dial tcp 127.0.0.1:" + std::to_string(port) +
                              ": connect: " + std::strerror(e));
  }
  return fd;
}

HeaderBlock headers(const char* type, uint16_t port, std::optional<int> requestId) {
  HeaderBlock h = {{"streamtype", type}, {"port", std::to_string(port)}};
  if (requestId) h.emplace_back("requestid", std::to_string(*requestId));
  return h;
}

// Pod ports as the client names them; the dialer maps them onto the servers.
constexpr uint16_t kEchoPort = 80;
constexpr uint16_t kCountPort = 81;
constexpr uint16_t kBannerPort = 82;
constexpr uint16_t kRefusedPort = 83;

class PortForwardSpdyTest : public ::testing::Test {
 protected:
  void start(PortForwardOptions options = {}) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    client_ = std::make_unique<SpdyTestClient>(sv[0]);
    serverConn_ = std::make_unique<FdByteStream>(sv[1]);
    const uint16_t refused = refusedPort();
    PortDialer dialer = [this, refused](uint16_t port) -> Result<int> {
      ++dials_;
      switch (port) {
        case kEchoPort:
          return dialLoopback(echo_.port());
        case kCountPort:
          return dialLoopback(count_.port());
        case kBannerPort:
          return dialLoopback(banner_.port());
        case kRefusedPort:
          return dialLoopback(refused);
        default:
          return Error::notFound("no such port");
      }
    };
    server_ = std::thread([this, dialer, options] {
      auto r = servePortForwardSpdy(*serverConn_, dialer, options);
      std::lock_guard<std::mutex> lock(resultMu_);
      result_ = r;
      done_ = true;
    });
  }
  // The client goes away; the server must return.
  Result<void> finish() {
    if (client_) client_->closeNow();
    client_.reset();
    if (server_.joinable()) server_.join();
    std::lock_guard<std::mutex> lock(resultMu_);
    return result_;
  }
  void TearDown() override { (void)finish(); }

  // kubectl's handleConnection up to the data stream's reply.
  void openPair(uint32_t errorId, uint32_t dataId, uint16_t port, std::optional<int> requestId) {
    auto& c = *client_;
    c.synStream(errorId, headers("error", port, requestId));
    ASSERT_TRUE(c.waitUntil([&] { return c.stream(errorId).replied; }));
    c.data(errorId, "", /*fin=*/true);  // "we're not writing to this stream"
    c.synStream(dataId, headers("data", port, requestId));
    ASSERT_TRUE(c.waitUntil([&] { return c.stream(dataId).replied; }));
  }

  TcpServer echo_{TcpServer::Mode::kEcho};
  TcpServer count_{TcpServer::Mode::kCount};
  TcpServer banner_{TcpServer::Mode::kBanner};
  std::unique_ptr<SpdyTestClient> client_;
  std::unique_ptr<FdByteStream> serverConn_;
  std::thread server_;
  std::mutex resultMu_;
  Result<void> result_;
  bool done_ = false;
  std::atomic<int> dials_{0};
};

// The common case: bytes both ways through a real TCP server; the client's
// FIN reaches the pod as EOF, the pod's close comes back as FIN, and the
// error stream ends empty (kubectl prints nothing).
TEST_F(PortForwardSpdyTest, EchoesBothWaysAndEndsWithEmptyErrorStream) {
  start();
  auto& c = *client_;
  openPair(1, 3, kEchoPort, 0);
  c.data(3, "hello pod");
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(3).data.size() >= 9; }));
  EXPECT_EQ(c.stream(3).data, "hello pod");
  c.data(3, " and bye", /*fin=*/true);
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(3).fin && c.stream(1).fin; }));
  EXPECT_EQ(c.stream(3).data, "hello pod and bye");
  EXPECT_EQ(c.stream(1).data, "");
  EXPECT_FALSE(c.stream(3).rst);
  EXPECT_EQ(c.stream(3).framesAfterEnd, 0);
  EXPECT_EQ(c.stream(1).framesAfterEnd, 0);
  EXPECT_TRUE(echo_.waitForEofs(1));
  EXPECT_TRUE(finish().ok());
}

// A pod that answers only after EOF (an HTTP/1.0-style request, `nc -N`):
// the client's FIN half-closes the pod socket and the answer still arrives.
// 1 MiB up also exercises many frames and the per-stream buffer.
TEST_F(PortForwardSpdyTest, HalfCloseLetsThePodAnswerAfterEof) {
  start();
  auto& c = *client_;
  openPair(1, 3, kCountPort, 0);
  c.data(3, std::string(1 << 20, 'x'), /*fin=*/true);
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(3).fin && c.stream(1).fin; }));
  EXPECT_EQ(c.stream(3).data, "got 1048576 bytes");
  EXPECT_EQ(c.stream(1).data, "");
}

// The pod closes first: its banner then FIN; kubectl then resets the data
// stream and waits for the error stream's FIN, which must come.
TEST_F(PortForwardSpdyTest, PodClosingFirstThenClientResetEndsTheErrorStream) {
  // A grace far beyond the hang guard: only the reset can end the stream.
  PortForwardOptions o;
  o.halfCloseGrace = std::chrono::hours(1);
  start(o);
  auto& c = *client_;
  openPair(1, 3, kBannerPort, 0);
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(3).fin; }));
  EXPECT_EQ(c.stream(3).data, "hello from pod\n");
  c.rst(3);
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(1).fin; }));
  EXPECT_EQ(c.stream(1).data, "");
}

// Older kubectl does not reset: after the pod's FIN the server still ends
// the error stream, after its grace period.
TEST_F(PortForwardSpdyTest, PodClosingFirstWithoutClientResetEndsAfterGrace) {
  PortForwardOptions o;
  o.halfCloseGrace = std::chrono::milliseconds(50);
  start(o);
  auto& c = *client_;
  openPair(1, 3, kBannerPort, 0);
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(3).fin && c.stream(1).fin; }));
  EXPECT_EQ(c.stream(3).data, "hello from pod\n");
  EXPECT_EQ(c.stream(1).data, "");
}

// Nothing listens on the pod port: the message goes to the error stream in
// kubelet's words, then both streams end.
TEST_F(PortForwardSpdyTest, RefusedPortReportsOnTheErrorStream) {
  PortForwardOptions o;
  o.podName = "web-7f9c";
  o.podUid = "uid-1";
  start(o);
  auto& c = *client_;
  openPair(1, 3, kRefusedPort, 0);
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(1).fin && c.stream(3).fin; }));
  const std::string& msg = c.stream(1).data;
  EXPECT_EQ(msg.rfind("error forwarding port 83 to pod web-7f9c, uid uid-1: ", 0), 0u) << msg;
  std::string lower = msg;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  EXPECT_NE(lower.find("connection refused"), std::string::npos) << msg;
  EXPECT_EQ(c.stream(3).data, "");
}

// Ten forwarded connections at once over one session, half of them opening
// the data stream before the error stream; payloads interleaved.
TEST_F(PortForwardSpdyTest, ManyConnectionsShareOneSession) {
  start();
  auto& c = *client_;
  constexpr int kPairs = 10;
  // Ids increase in the order streams are opened (spdystream's rule).
  auto errorId = [](int i) { return static_cast<uint32_t>(4 * i + (i % 2 ? 3 : 1)); };
  auto dataId = [](int i) { return static_cast<uint32_t>(4 * i + (i % 2 ? 1 : 3)); };
  for (int i = 0; i < kPairs; ++i) {
    if (i % 2) {
      c.synStream(dataId(i), headers("data", kEchoPort, 100 + i));
      c.synStream(errorId(i), headers("error", kEchoPort, 100 + i));
    } else {
      c.synStream(errorId(i), headers("error", kEchoPort, 100 + i));
      c.synStream(dataId(i), headers("data", kEchoPort, 100 + i));
    }
  }
  ASSERT_TRUE(c.waitUntil([&] {
    for (int i = 0; i < kPairs; ++i) {
      if (!c.stream(errorId(i)).replied || !c.stream(dataId(i)).replied) return false;
    }
    return true;
  }));
  auto payload = [](int i) { return std::string(20000 + i, static_cast<char>('a' + i)); };
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < kPairs; ++i) c.data(dataId(i), payload(i), /*fin=*/round == 1);
  }
  ASSERT_TRUE(c.waitUntil([&] {
    for (int i = 0; i < kPairs; ++i) {
      if (!c.stream(dataId(i)).fin || !c.stream(errorId(i)).fin) return false;
    }
    return true;
  }));
  for (int i = 0; i < kPairs; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(c.stream(dataId(i)).data, payload(i) + payload(i));
    EXPECT_EQ(c.stream(errorId(i)).data, "");
  }
  EXPECT_EQ(dials_.load(), kPairs);
}

// Clients before the requestid header: streams pair by id (error n, data n+2).
TEST_F(PortForwardSpdyTest, PairsStreamsWithoutRequestIdByStreamId) {
  start();
  auto& c = *client_;
  openPair(1, 3, kEchoPort, std::nullopt);
  c.data(3, "old kubectl", /*fin=*/true);
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(3).fin && c.stream(1).fin; }));
  EXPECT_EQ(c.stream(3).data, "old kubectl");
}

// kubelet's header checks: a bad stream is reset (CANCEL) without a reply,
// and the session carries on.
TEST_F(PortForwardSpdyTest, StreamsWithBadHeadersAreResetWithoutReply) {
  start();
  auto& c = *client_;
  c.synStream(1, {{"streamtype", "data"}, {"requestid", "0"}});  // no port
  c.synStream(3, headers("data", 0, 0));                         // port 0
  c.synStream(5, {{"streamtype", "data"}, {"port", "http"}});    // not a number
  c.synStream(7, {{"streamtype", "data"}, {"port", "70000"}});   // out of range
  c.synStream(9, {{"port", "80"}, {"requestid", "0"}});          // no type
  c.synStream(11, headers("bogus", kEchoPort, 0));               // unknown type
  ASSERT_TRUE(c.waitUntil([&] {
    for (uint32_t id : {1u, 3u, 5u, 7u, 9u, 11u}) {
      if (!c.stream(id).rst) return false;
    }
    return true;
  }));
  for (uint32_t id : {1u, 3u, 5u, 7u, 9u, 11u}) {
    SCOPED_TRACE(id);
    EXPECT_EQ(*c.stream(id).rst, static_cast<uint32_t>(spdy::RstStatus::kCancel));
    EXPECT_FALSE(c.stream(id).replied);
  }
  openPair(13, 15, kEchoPort, 1);
  c.data(15, "still fine", true);
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(15).fin; }));
  EXPECT_EQ(c.stream(15).data, "still fine");
  EXPECT_EQ(dials_.load(), 1);
}

// apimachinery's keep-alive pings (odd ids, from the client) come back.
TEST_F(PortForwardSpdyTest, ClientPingsAreEchoed) {
  start();
  auto& c = *client_;
  c.ping(1);
  c.ping(2);  // even: a server id, not echoed
  c.ping(3);
  ASSERT_TRUE(c.waitUntil([&] { return c.pings().size() >= 2; }));
  EXPECT_EQ(c.pings(), (std::vector<uint32_t>{1, 3}));
}

// Ctrl-C on kubectl: the connection goes away mid-forward. The server
// returns ok and the pod connection is closed (the pod sees EOF).
TEST_F(PortForwardSpdyTest, ClientDisconnectEndsServeAndClosesPodConnections) {
  start();
  auto& c = *client_;
  openPair(1, 3, kEchoPort, 0);
  openPair(5, 7, kEchoPort, 1);
  c.data(3, "ping");
  c.data(7, "pong");
  ASSERT_TRUE(
      c.waitUntil([&] { return c.stream(3).data == "ping" && c.stream(7).data == "pong"; }));
  auto r = finish();
  EXPECT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(echo_.waitForEofs(2));
}

// A stream whose partner never comes: kubelet's timeout message, then FIN.
TEST_F(PortForwardSpdyTest, UnpairedStreamTimesOutWithAMessage) {
  PortForwardOptions o;
  o.streamCreationTimeout = std::chrono::milliseconds(100);
  start(o);
  auto& c = *client_;
  c.synStream(1, headers("error", kEchoPort, 5));
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(1).fin; }));
  EXPECT_EQ(c.stream(1).data, "request 5: timed out waiting for streams");
  EXPECT_EQ(dials_.load(), 0);
}

// A second data stream for a request already paired... before pairing: the
// error stream gets kubelet's message and the duplicate is reset.
TEST_F(PortForwardSpdyTest, DuplicateStreamTypeIsReported) {
  PortForwardOptions o;
  o.streamCreationTimeout = std::chrono::milliseconds(100);
  start(o);
  auto& c = *client_;
  c.synStream(1, headers("error", kEchoPort, 9));
  c.synStream(3, headers("error", kEchoPort, 9));
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(3).rst.has_value(); }));
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(1).fin; }));
  EXPECT_EQ(c.stream(1).data.rfind(
                "error processing stream for request 9: error stream already assigned", 0),
            0u)
      << c.stream(1).data;
}

// Garbage on the connection: GOAWAY(PROTOCOL_ERROR), and the error names the
// frame.
TEST_F(PortForwardSpdyTest, MalformedFrameEndsTheSessionWithGoAway) {
  start();
  auto& c = *client_;
  const char bad[] = {'\x80', '\x03', '\x00', '\x06', '\x00', '\x00', '\x00', '\x08', 0,
                      0,      0,      1,      0,      0,      0,      2};  // PING with 8 bytes
  c.sendRaw(std::string_view(bad, sizeof(bad)));
  ASSERT_TRUE(c.waitUntil([&] { return !c.goAways().empty(); }));
  EXPECT_EQ(c.goAways()[0].status, static_cast<uint32_t>(spdy::GoAwayStatus::kProtocolError));
  auto r = finish();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("PING frame at offset 0"), std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace sluice::agent::streaming
