// The agent's WebSocket server side (Boost.Beast) and the channel.k8s.io
// exec protocol, over a real socketpair: the server end parses the upgrade
// as the HTTP server would and completes it with WebSocket::accept; the
// client end is Beast's RFC 6455 client (masked frames, its own handshake
// checks). The exec cases run real processes started by startExec() in this
// test process's own namespaces.
#include "control/agent/streaming/websocket.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <map>
#include <thread>

#include "control/agent/runtime/pod_streams.h"
#include "control/agent/streaming/channel_exec.h"

namespace sluice::agent::streaming {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using Client = websocket::stream<asio::generic::stream_protocol::socket>;

// Reads the upgrade request off the server's socket and parses it as the
// agent's HTTP server does (header names lower-cased).
server::HttpRequest readUpgrade(int fd) {
  std::string raw;
  char c;
  while (raw.find("\r\n\r\n") == std::string::npos && ::read(fd, &c, 1) == 1) raw += c;
  server::HttpRequest req;
  size_t eol = raw.find("\r\n");
  std::string line = raw.substr(0, eol);
  req.method = line.substr(0, line.find(' '));
  req.target = line.substr(line.find(' ') + 1, line.rfind(' ') - line.find(' ') - 1);
  req.path = req.target;
  for (size_t pos = eol + 2; pos < raw.size();) {
    size_t end = raw.find("\r\n", pos);
    std::string h = raw.substr(pos, end - pos);
    pos = end + 2;
    size_t colon = h.find(':');
    if (colon == std::string::npos) continue;
    std::string name = h.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) { return std::tolower(ch); });
    std::string value = h.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    req.headers.emplace_back(name, value);
  }
  return req;
}

struct Pair {
  Pair() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    server = std::make_unique<FdByteStream>(sv[0]);
    client.next_layer().assign(asio::generic::stream_protocol(AF_UNIX, 0), sv[1]);
  }
  // The server side of the handshake, offering `protocol`.
  std::unique_ptr<WebSocket> accept(const std::string& protocol) {
    auto ws = WebSocket::accept(*server, readUpgrade(server->fd()), protocol);
    EXPECT_TRUE(ws.ok()) << ws.error().message;
    return ws ? std::move(*ws) : nullptr;
  }
  // The client side, offering `offered`; returns the protocol the server chose.
  std::string handshake(const std::string& offered) {
    websocket::response_type res;
    client.set_option(websocket::stream_base::decorator(
        [offered](websocket::request_type& req) { req.set(beast::http::field::sec_websocket_protocol, offered); }));
    client.handshake(res, "node", "/exec/default/web/app");
    return std::string(res[beast::http::field::sec_websocket_protocol]);
  }
  asio::io_context ioc;
  std::unique_ptr<FdByteStream> server;
  Client client{ioc};
};

TEST(WebSocketTest, SubprotocolIsTheServersFirstChoiceAmongOffers) {
  const std::vector<std::string> served = {"v5.channel.k8s.io", "v4.channel.k8s.io"};
  EXPECT_EQ(chooseSubprotocol("v4.channel.k8s.io, v5.channel.k8s.io", served), "v5.channel.k8s.io");
  EXPECT_EQ(chooseSubprotocol("channel.k8s.io,v4.channel.k8s.io", served), "v4.channel.k8s.io");
  EXPECT_FALSE(chooseSubprotocol("v3.channel.k8s.io", served).has_value());
  EXPECT_FALSE(chooseSubprotocol("", served).has_value());
}

// A client's fragmented message arrives whole, its ping is answered while
// the server reads, a 300-byte reply goes back, and the client's close ends
// the server's reads.
TEST(WebSocketTest, HandshakeMessagesPingsAndCloseBetweenRealEnds) {
  Pair p;
  std::string got;
  std::thread server([&] {
    auto ws = p.accept("v5.channel.k8s.io");
    if (!ws) return;
    auto m = ws->read();
    ASSERT_TRUE(m.ok()) << m.error().message;
    ASSERT_TRUE(m->has_value());
    got = (*m)->data;
    EXPECT_TRUE((*m)->binary);
    ASSERT_TRUE(ws->writeBinary(std::string(300, 'x')).ok());
    auto end = ws->read();
    ASSERT_TRUE(end.ok()) << end.error().message;
    EXPECT_FALSE(end->has_value()) << "the client's close ends the stream";
  });
  EXPECT_EQ(p.handshake("v5.channel.k8s.io"), "v5.channel.k8s.io");
  std::string pong;
  p.client.control_callback([&](websocket::frame_type kind, beast::string_view payload) {
    if (kind == websocket::frame_type::pong) pong = std::string(payload);
  });
  p.client.ping("are you there");
  p.client.binary(true);
  p.client.auto_fragment(true);
  p.client.write_buffer_bytes(8);  // "hello, fragmented" goes out as several frames
  p.client.write(asio::buffer(std::string("hello, fragmented")));
  beast::flat_buffer reply;
  p.client.read(reply);
  EXPECT_EQ(beast::buffers_to_string(reply.data()), std::string(300, 'x'));
  EXPECT_EQ(pong, "are you there");
  p.client.close(websocket::close_code::normal);
  server.join();
  EXPECT_EQ(got, "hello, fragmented");
}

// The server's close frame reaches the client with its code.
TEST(WebSocketTest, ServerCloseIsSeenByTheClient) {
  Pair p;
  std::thread server([&] {
    auto ws = p.accept("");
    if (!ws) return;
    EXPECT_TRUE(ws->close(1000).ok());
    ws->stream().close();
  });
  p.handshake("v4.channel.k8s.io");
  beast::flat_buffer buf;
  beast::error_code ec;
  p.client.read(buf, ec);
  EXPECT_EQ(ec, websocket::error::closed) << ec.message();
  EXPECT_EQ(p.client.reason().code, websocket::close_code::normal);
  server.join();
}

// An upgrade without Sec-WebSocket-Key is refused with 400 and no stream.
TEST(WebSocketTest, AnUpgradeWithoutAKeyIsRefused) {
  Pair p;
  const std::string request =
      "GET /exec HTTP/1.1\r\nHost: node\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n";
  int clientFd = p.client.next_layer().native_handle();
  ASSERT_EQ(::write(clientFd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  auto ws = WebSocket::accept(*p.server, readUpgrade(p.server->fd()), "");
  EXPECT_FALSE(ws.ok());
  char buf[64] = {};
  ASSERT_GT(::read(clientFd, buf, sizeof buf - 1), 0);
  EXPECT_EQ(std::string(buf).rfind("HTTP/1.1 400", 0), 0u) << buf;
}

// A message past kMaxMessage fails the read, naming the limit.
TEST(WebSocketTest, MessagesOverTheLimitAreRefused) {
  Pair p;
  std::thread server([&] {
    auto ws = p.accept("");
    if (!ws) return;
    auto m = ws->read();
    ASSERT_FALSE(m.ok());
    EXPECT_NE(m.error().message.find("limit"), std::string::npos) << m.error().message;
    ws->stream().close();
  });
  p.handshake("v5.channel.k8s.io");
  beast::error_code ec;
  p.client.write(asio::buffer(std::string(WebSocket::kMaxMessage + 1, 'x')), ec);  // may fail: the server hangs up
  // The server answers with a close frame (1009, too big) and waits for the
  // connection to end, as a well-behaved client ends it.
  beast::flat_buffer buf;
  p.client.read(buf, ec);
  EXPECT_EQ(p.client.reason().code, websocket::close_code::too_big) << ec.message();
  p.client.next_layer().close(ec);
  server.join();
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
    auto ws = p.accept(protocol);
    if (!ws) return;
    serveExecChannels(*ws, protocol, opts, [](const ExecOptions& o) { return startExec(::getpid(), o); });
  });
  EXPECT_EQ(p.handshake(protocol), protocol);
  p.client.binary(true);
  for (const auto& m : clientMessages) p.client.write(asio::buffer(m));
  for (;;) {
    beast::flat_buffer buf;
    beast::error_code ec;
    p.client.read(buf, ec);
    if (ec == websocket::error::closed) {
      run.closed = true;
      break;
    }
    if (ec) break;
    std::string data = beast::buffers_to_string(buf.data());
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
