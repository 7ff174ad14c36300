// The agent's WebSocket server side and the channel.k8s.io exec protocol,
// over a real socketpair, with a client written here (masked frames as
// RFC 6455 requires of clients) and real processes started by startExec()
// in this test process's own namespaces.
#include "control/agent/streaming/websocket.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <thread>

#include "control/agent/runtime/pod_streams.h"
#include "control/agent/streaming/channel_exec.h"

namespace sluice::agent::streaming {
namespace {

// A masked client frame.
std::string clientFrame(uint8_t opcode, std::string_view payload, bool fin = true) {
  std::string f;
  f += static_cast<char>((fin ? 0x80 : 0) | opcode);
  if (payload.size() < 126) {
    f += static_cast<char>(0x80 | payload.size());
  } else {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(payload.size() >> 8);
    f += static_cast<char>(payload.size() & 0xFF);
  }
  const char mask[4] = {0x12, 0x34, 0x56, 0x78};
  f.append(mask, 4);
  for (size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ mask[i % 4]);
  return f;
}

// Reads one unmasked server frame: (opcode, payload).
std::pair<int, std::string> serverFrame(int fd) {
  auto readN = [&](size_t n) {
    std::string s(n, '\0');
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::read(fd, s.data() + got, n - got);
      if (r <= 0) return std::string();
      got += static_cast<size_t>(r);
    }
    return s;
  };
  std::string h = readN(2);
  if (h.size() != 2) return {-1, ""};
  EXPECT_EQ(static_cast<uint8_t>(h[1]) & 0x80, 0) << "server frames are never masked";
  uint64_t len = static_cast<uint8_t>(h[1]) & 0x7F;
  if (len == 126) {
    std::string l = readN(2);
    len = (static_cast<uint8_t>(l[0]) << 8) | static_cast<uint8_t>(l[1]);
  } else if (len == 127) {
    std::string l = readN(8);
    len = 0;
    for (char c : l) len = (len << 8) | static_cast<uint8_t>(c);
  }
  return {static_cast<uint8_t>(h[0]) & 0x0F, readN(len)};
}

struct Pair {
  Pair() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    server = std::make_unique<FdByteStream>(sv[0]);
    client = sv[1];
  }
  ~Pair() { ::close(client); }
  void send(const std::string& bytes) { ASSERT_EQ(::write(client, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size())); }
  std::unique_ptr<FdByteStream> server;
  int client;
};

TEST(WebSocketTest, AcceptKeyMatchesTheRfcExample) {
  // RFC 6455 section 1.3.
  EXPECT_EQ(websocketAcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketTest, SubprotocolIsTheServersFirstChoiceAmongOffers) {
  const std::vector<std::string> served = {"v5.channel.k8s.io", "v4.channel.k8s.io"};
  EXPECT_EQ(chooseSubprotocol("v4.channel.k8s.io, v5.channel.k8s.io", served), "v5.channel.k8s.io");
  EXPECT_EQ(chooseSubprotocol("channel.k8s.io,v4.channel.k8s.io", served), "v4.channel.k8s.io");
  EXPECT_FALSE(chooseSubprotocol("v3.channel.k8s.io", served).has_value());
  EXPECT_FALSE(chooseSubprotocol("", served).has_value());
}

TEST(WebSocketTest, ReadsFragmentedMaskedMessagesAndAnswersPings) {
  Pair p;
  WebSocket ws(*p.server);
  p.send(clientFrame(0x2, "hel", false) + clientFrame(0x9, "are you there") + clientFrame(0x0, "lo", true));
  auto m = ws.read();
  ASSERT_TRUE(m.ok()) << m.error().message;
  ASSERT_TRUE(m->has_value());
  EXPECT_EQ((*m)->data, "hello");
  EXPECT_TRUE((*m)->binary);
  auto pong = serverFrame(p.client);
  EXPECT_EQ(pong.first, 0xA);
  EXPECT_EQ(pong.second, "are you there");
  // A 300-byte message uses the 16-bit length form.
  std::string big(300, 'x');
  p.send(clientFrame(0x2, big));
  m = ws.read();
  ASSERT_TRUE(m.ok() && m->has_value());
  EXPECT_EQ((*m)->data, big);
  ASSERT_TRUE(ws.writeBinary(big).ok());
  EXPECT_EQ(serverFrame(p.client).second, big);
}

TEST(WebSocketTest, CloseFrameEndsTheStreamAndIsAnswered) {
  Pair p;
  WebSocket ws(*p.server);
  p.send(clientFrame(0x8, std::string("\x03\xe8", 2)));
  auto m = ws.read();
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->has_value());
  auto reply = serverFrame(p.client);
  EXPECT_EQ(reply.first, 0x8);
}

TEST(WebSocketTest, RejectsUnmaskedClientFramesAndReservedBits) {
  {
    Pair p;
    WebSocket ws(*p.server);
    p.send(std::string("\x82\x02hi", 4));  // unmasked
    auto m = ws.read();
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().message.find("not masked"), std::string::npos) << m.error().message;
  }
  {
    Pair p;
    WebSocket ws(*p.server);
    std::string f = clientFrame(0x2, "hi");
    f[0] = static_cast<char>(f[0] | 0x40);  // RSV1 without an extension
    p.send(f);
    auto m = ws.read();
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().message.find("reserved"), std::string::npos) << m.error().message;
  }
}

TEST(WebSocketTest, RejectsMessagesOverTheLimitBeforeReadingThem) {
  Pair p;
  WebSocket ws(*p.server);
  std::string f;
  f += static_cast<char>(0x82);
  f += static_cast<char>(0x80 | 127);
  uint64_t len = WebSocket::kMaxMessage + 1;
  for (int i = 7; i >= 0; --i) f += static_cast<char>((len >> (8 * i)) & 0xFF);
  f += "mask";
  p.send(f);
  auto m = ws.read();
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("limit"), std::string::npos) << m.error().message;
}

TEST(ChannelExecTest, ParsesResizeMessages) {
  auto r = parseResize(R"({"Width":120,"Height":40})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->first, 120);
  EXPECT_EQ(r->second, 40);
  EXPECT_FALSE(parseResize("{\"Width\":-1,\"Height\":3}").has_value());
  EXPECT_FALSE(parseResize("not json").has_value());
  EXPECT_FALSE(parseResize("{\"Width\":70000,\"Height\":3}").has_value());
}

// Runs one exec session (server thread) and collects channel output until
// the server closes.
struct ExecRun {
  std::map<int, std::string> channels;
  bool closed = false;
};

ExecRun runExec(const ExecOptions& opts, const std::string& protocol, const std::vector<std::string>& clientMessages) {
  Pair p;
  ExecRun run;
  std::thread server([&] {
    WebSocket ws(*p.server);
    serveExecChannels(ws, protocol, opts, [](const ExecOptions& o) { return startExec(::getpid(), o); });
  });
  for (const auto& m : clientMessages) p.send(clientFrame(0x2, m));
  for (;;) {
    auto [op, data] = serverFrame(p.client);
    if (op < 0) break;
    if (op == 0x8) {
      run.closed = true;
      break;
    }
    if (!data.empty()) run.channels[static_cast<uint8_t>(data[0])] += data.substr(1);
  }
  server.join();
  return run;
}

TEST(ChannelExecTest, StdoutStderrAndTheExitStatusGoToTheirChannels) {
  if (::geteuid() != 0) GTEST_SKIP() << "startExec joins namespaces: needs root";
  ExecOptions o;
  o.command = {"sh", "-c", "echo out; echo err >&2; exit 3"};
  ExecRun r = runExec(o, "v5.channel.k8s.io", {});
  EXPECT_EQ(r.channels[1], "out\n");
  EXPECT_EQ(r.channels[2], "err\n");
  EXPECT_NE(r.channels[3].find("\"reason\":\"NonZeroExitCode\""), std::string::npos) << r.channels[3];
  EXPECT_NE(r.channels[3].find("\"message\":\"3\""), std::string::npos) << r.channels[3];
  EXPECT_TRUE(r.closed);
}

TEST(ChannelExecTest, StdinAndTheV5CloseSignalReachTheProcess) {
  if (::geteuid() != 0) GTEST_SKIP() << "startExec joins namespaces: needs root";
  ExecOptions o;
  o.command = {"sh", "-c", "tr a-z A-Z"};
  o.stdin = true;
  ExecRun r = runExec(o, "v5.channel.k8s.io", {std::string("\0abc\n", 5), std::string("\xff\x00", 2)});
  EXPECT_EQ(r.channels[1], "ABC\n");
  EXPECT_EQ(r.channels[3], R"({"metadata":{},"status":"Success"})");
}

TEST(ChannelExecTest, AMissingBinaryIsReportedOnTheErrorChannel) {
  if (::geteuid() != 0) GTEST_SKIP() << "startExec joins namespaces: needs root";
  ExecOptions o;
  o.command = {"sluice-no-such-binary"};
  ExecRun r = runExec(o, "v4.channel.k8s.io", {});
  EXPECT_NE(r.channels[3].find("executable file not found"), std::string::npos) << r.channels[3];
  EXPECT_TRUE(r.channels[1].empty());
}

TEST(ChannelExecTest, TtyMergesOutputAndResizesTheTerminal) {
  if (::geteuid() != 0) GTEST_SKIP() << "startExec joins namespaces: needs root";
  ExecOptions o;
  o.command = {"sh", "-c", "sleep 0.3; stty size; echo to-err >&2"};
  o.stdin = true;
  o.tty = true;
  o.stderr = false;
  ExecRun r = runExec(o, "v5.channel.k8s.io", {std::string("\x04") + R"({"Width":100,"Height":30})"});
  EXPECT_NE(r.channels[1].find("30 100"), std::string::npos) << r.channels[1];
  EXPECT_NE(r.channels[1].find("to-err"), std::string::npos) << "a terminal merges stderr into stdout";
  EXPECT_TRUE(r.channels[2].empty());
}

}  // namespace
}  // namespace sluice::agent::streaming
