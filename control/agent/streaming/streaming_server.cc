#include "control/agent/streaming/streaming_server.h"

#include <openssl/crypto.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <list>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "control/agent/streaming/channel_exec.h"
#include "control/agent/streaming/exec_spdy.h"
#include "control/agent/streaming/port_forward_spdy.h"
#include "control/agent/streaming/websocket.h"
#include "control/server/credentials.h"
#include "control/server/http_server.h"
#include "dataplane/log.h"

namespace sluice::agent::streaming {

namespace {

using server::HttpRequest;
using server::ResponseWriter;
using Json = nlohmann::json;

constexpr const char* kPortForwardProtocol = "portforward.k8s.io";
constexpr const char* kSpdyTunnelProtocol = "SPDY/3.1+portforward.k8s.io";

constexpr auto kFollowPoll = std::chrono::milliseconds(100);
// A follow stops reading ahead while this much is queued for a slow client.
constexpr size_t kFollowBacklog = 4 * 1024 * 1024;

void sendStatus(ResponseWriter& w, int code, const std::string& reason, const std::string& message) {
  Json s = {{"kind", "Status"},     {"apiVersion", "v1"}, {"metadata", Json::object()},
            {"status", "Failure"},  {"message", message}, {"reason", reason},
            {"code", code}};
  w.send(code, {{"Content-Type", "application/json"}}, s.dump());
}

void sendError(ResponseWriter& w, const Error& e) {
  switch (e.code) {
    case ErrorCode::kNotFound: return sendStatus(w, 404, "NotFound", e.message);
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kFailedPrecondition: return sendStatus(w, 400, "BadRequest", e.message);
    default: return sendStatus(w, 500, "InternalError", e.message);
  }
}

bool truthy(const HttpRequest& r, std::string_view name) {
  std::string v = r.queryParam(name);
  return v == "true" || v == "1" || v == "True";
}

std::vector<std::string> split(std::string_view path) {
  std::vector<std::string> parts;
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    if (!part.empty()) parts.emplace_back(part);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
  }
  return parts;
}

bool headerHas(const HttpRequest& r, std::string_view name, std::string_view token) {
  std::string v = r.header(name);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string t(token);
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  return v.find(t) != std::string::npos;
}

// Reads [from, EOF) of `fd`, at most `limit` bytes (limit < 0: no limit).
std::string readFrom(int fd, off_t from, int64_t limit) {
  std::string out;
  char buf[64 * 1024];
  for (;;) {
    size_t want = sizeof(buf);
    if (limit >= 0) want = std::min<size_t>(want, static_cast<size_t>(limit) - out.size());
    if (want == 0) break;
    ssize_t n = ::pread(fd, buf, want, from + static_cast<off_t>(out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// Offset where the last `lines` lines of `fd` (size `size`) start.
off_t tailOffset(int fd, off_t size, int64_t lines) {
  if (lines <= 0) return size;
  off_t pos = size;
  int64_t newlines = 0;
  char buf[8192];
  // A final newline ends the last line; it does not start another.
  bool skipFinal = true;
  while (pos > 0) {
    off_t chunk = std::min<off_t>(pos, sizeof(buf));
    pos -= chunk;
    if (::pread(fd, buf, static_cast<size_t>(chunk), pos) != chunk) return 0;
    for (off_t i = chunk - 1; i >= 0; --i) {
      if (buf[i] != '\n') {
        skipFinal = false;
        continue;
      }
      if (skipFinal) {
        skipFinal = false;
        continue;
      }
      if (++newlines == lines) return pos + i + 1;
    }
  }
  return 0;
}

}  // namespace

struct StreamingServer::Impl : server::HttpHandler {
  StreamingServerOptions options;
  StreamingBackend backend;
  std::unique_ptr<server::HttpServer> http;

  std::mutex mu;
  bool stopping = false;
  std::atomic<bool> halt{false};  // ends followed logs at stop()
  struct Session {
    std::thread thread;
    std::shared_ptr<ByteStream> stream;        // exec / port-forward
    std::shared_ptr<ResponseWriter> writer;    // followed logs
    std::atomic<bool> done{false};
  };
  std::list<Session> sessions;

  // Runs `body` on a session thread, tracked so stop() can end it.
  void spawn(std::shared_ptr<ByteStream> stream, std::shared_ptr<ResponseWriter> writer,
             std::function<void()> body) {
    std::lock_guard<std::mutex> lock(mu);
    // Reap sessions that ended.
    for (auto it = sessions.begin(); it != sessions.end();) {
      if (it->done.load()) {
        it->thread.join();
        it = sessions.erase(it);
      } else {
        ++it;
      }
    }
    if (stopping) {
      if (stream) stream->close();
      return;
    }
    Session& s = sessions.emplace_back();
    s.stream = std::move(stream);
    s.writer = std::move(writer);
    s.thread = std::thread([&s, body = std::move(body)] {
      body();
      s.done.store(true);
    });
  }

  void stopSessions() {
    std::list<Session> all;
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
      halt.store(true);
      for (auto& s : sessions) {
        if (s.stream) s.stream->close();
      }
      all.splice(all.end(), sessions);
    }
    for (auto& s : all) s.thread.join();
  }

  void handle(HttpRequest req, std::shared_ptr<ResponseWriter> writer) override {
    // The API server presents this node's own token; compared in constant
    // time (a timing difference must not leak it byte by byte).
    const std::string presented = req.header("authorization");
    const std::string expected = "Bearer " + options.token;
    if (presented.size() != expected.size() ||
        CRYPTO_memcmp(presented.data(), expected.data(), expected.size()) != 0) {
      return sendStatus(*writer, 401, "Unauthorized", "Unauthorized");
    }
    auto parts = split(req.path);
    if (parts.size() == 4 && parts[0] == "containerLogs") {
      if (req.method != "GET") return sendStatus(*writer, 405, "MethodNotAllowed", "logs are read with GET");
      return logs(req, writer, parts[1], parts[2], parts[3]);
    }
    if (parts.size() == 4 && parts[0] == "exec") {
      if (req.method != "GET" && req.method != "POST") {
        return sendStatus(*writer, 405, "MethodNotAllowed", "exec takes GET or POST");
      }
      return exec(req, writer, parts[1], parts[2], parts[3]);
    }
    if (parts.size() == 4 && parts[0] == "attach") {
      return sendStatus(*writer, 400, "BadRequest",
                        "attach is not supported by the sluice runtime: container output goes to log files "
                        "(use kubectl logs -f) and stdin is not kept open");
    }
    if (parts.size() == 3 && parts[0] == "portForward") {
      if (req.method != "GET" && req.method != "POST") {
        return sendStatus(*writer, 405, "MethodNotAllowed", "portForward takes GET or POST");
      }
      return portForward(req, writer, parts[1], parts[2]);
    }
    sendStatus(*writer, 404, "NotFound", "no such path on the sluice agent: " + req.path);
  }

  void logs(const HttpRequest& req, const std::shared_ptr<ResponseWriter>& writer, const std::string& ns,
            const std::string& pod, const std::string& container) {
    int64_t tail = -1;
    int64_t limit = -1;
    try {
      if (req.hasQueryParam("tailLines")) tail = std::stoll(req.queryParam("tailLines"));
      if (req.hasQueryParam("limitBytes")) limit = std::stoll(req.queryParam("limitBytes"));
    } catch (...) {
      return sendStatus(*writer, 400, "BadRequest", "tailLines and limitBytes must be integers");
    }
    if (limit == 0 || limit < -1) return sendStatus(*writer, 400, "BadRequest", "limitBytes must be greater than 0");
    if (tail < -1) return sendStatus(*writer, 400, "BadRequest", "tailLines must be 0 or greater");
    auto source = backend.logs(ns, pod, container, truthy(req, "previous"));
    if (!source) return sendError(*writer, source.error());
    int fd = ::open(source->path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
      return sendStatus(*writer, 500, "InternalError", "open " + source->path + ": " + std::strerror(errno));
    }
    struct stat st {};
    off_t size = (fd >= 0 && ::fstat(fd, &st) == 0) ? st.st_size : 0;
    off_t from = (tail >= 0 && fd >= 0) ? tailOffset(fd, size, tail) : 0;
    if (!truthy(req, "follow")) {
      std::string body = fd >= 0 ? readFrom(fd, from, limit) : std::string();
      if (fd >= 0) ::close(fd);
      return writer->send(200, {{"Content-Type", "text/plain"}}, std::move(body));
    }
    writer->startStream(200, {{"Content-Type", "text/plain"}});
    auto src = *source;
    spawn(nullptr, writer, [this, writer, src, fd, from, limit]() mutable {
      off_t offset = from;
      int64_t left = limit;
      for (;;) {
        if (fd < 0) fd = ::open(src.path.c_str(), O_RDONLY | O_CLOEXEC);
        const bool running = src.running ? src.running() : false;
        std::string chunk;
        if (fd >= 0 && writer->pendingBytes() < kFollowBacklog) chunk = readFrom(fd, offset, left);
        offset += static_cast<off_t>(chunk.size());
        if (left >= 0) left -= static_cast<int64_t>(chunk.size());
        if (!chunk.empty()) writer->writeChunk(std::move(chunk));
        if (writer->closed() || left == 0 || halt.load()) break;
        // Ended and drained: the instance's log is complete.
        if (!running && (fd < 0 || readFrom(fd, offset, 1).empty())) break;
        std::this_thread::sleep_for(kFollowPoll);
      }
      if (fd >= 0) ::close(fd);
      writer->endStream();
    });
  }

  // Takes the connection over; nullptr (answered) on failure.
  std::shared_ptr<FdByteStream> takeOver(const std::shared_ptr<ResponseWriter>& writer) {
    auto fd = writer->hijack();
    if (!fd) return nullptr;
    return std::make_shared<FdByteStream>(*fd);
  }

  void exec(const HttpRequest& req, const std::shared_ptr<ResponseWriter>& writer, const std::string& ns,
            const std::string& pod, const std::string& container) {
    ExecOptions opts;
    for (const auto& [k, v] : req.query) {
      if (k == "command") opts.command.push_back(v);
    }
    opts.stdin = truthy(req, "stdin") || truthy(req, "input");
    opts.stdout = truthy(req, "stdout") || truthy(req, "output");
    opts.stderr = truthy(req, "stderr") || truthy(req, "error");
    opts.tty = truthy(req, "tty");
    if (opts.tty) opts.stderr = false;  // a terminal merges them
    if (opts.command.empty()) return sendStatus(*writer, 400, "BadRequest", "you must specify a command");
    if (!opts.stdin && !opts.stdout && !opts.stderr) {
      return sendStatus(*writer, 400, "BadRequest", "you must specify at least 1 of stdin, stdout, stderr");
    }
    auto launcher = backend.exec(ns, pod, container);
    if (!launcher) return sendError(*writer, launcher.error());

    if (headerHas(req, "upgrade", "websocket")) {
      auto protocol = chooseSubprotocol(req.header("sec-websocket-protocol"), channelProtocols());
      if (!protocol) {
        return sendStatus(*writer, 400, "BadRequest",
                          "unable to upgrade: no supported WebSocket subprotocol offered (v5.channel.k8s.io, "
                          "v4.channel.k8s.io)");
      }
      std::string key = req.header("sec-websocket-key");
      if (key.empty()) return sendStatus(*writer, 400, "BadRequest", "WebSocket upgrade without Sec-WebSocket-Key");
      auto stream = takeOver(writer);
      if (!stream) return;
      spawn(stream, nullptr, [stream, upgrade = req, proto = *protocol, opts, launch = *launcher] {
        auto ws = WebSocket::accept(*stream, upgrade, proto);
        if (!ws) {
          log::warning("streaming", "exec session failed", {{"err", ws.error().message}});
          return stream->close();
        }
        serveExecChannels(**ws, proto, opts, launch);
      });
      return;
    }
    if (headerHas(req, "upgrade", "spdy/3.1")) {
      // kubectl <= 1.29 (and newer ones falling back): SPDY with the
      // channel protocol negotiated through X-Stream-Protocol-Version.
      const std::vector<std::string> served = {std::string(kExecProtocolV4), std::string(kExecProtocolV3),
                                               std::string(kExecProtocolV2)};
      std::string offered;
      for (const auto& [k, v] : req.headers) {
        if (k == "x-stream-protocol-version") offered += (offered.empty() ? "" : ",") + v;
      }
      auto protocol = chooseSubprotocol(offered, served);
      if (!protocol) {
        return sendStatus(*writer, 403, "Forbidden",
                          "unable to upgrade: no common exec protocol (offered " + offered + ")");
      }
      auto stream = takeOver(writer);
      if (!stream) return;
      spawn(stream, nullptr, [stream, proto = *protocol, opts, launch = *launcher] {
        std::string reply = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                            "X-Stream-Protocol-Version: " + proto + "\r\n\r\n";
        if (!stream->write(reply)) return stream->close();
        auto r = serveExecSpdy(*stream, proto, opts, launch);
        if (!r) log::warning("streaming", "exec session failed", {{"err", r.error().message}});
        stream->close();
      });
      return;
    }
    sendStatus(*writer, 400, "BadRequest",
               "exec needs a WebSocket upgrade (kubectl >= 1.30) or SPDY/3.1 (older kubectl)");
  }

  void portForward(const HttpRequest& req, const std::shared_ptr<ResponseWriter>& writer, const std::string& ns,
                   const std::string& pod) {
    auto dialer = backend.portForward(ns, pod);
    if (!dialer) return sendError(*writer, dialer.error());
    PortForwardOptions pf;
    pf.podName = pod;
    if (headerHas(req, "upgrade", "websocket")) {
      // kubectl >= 1.31: the SPDY session tunnelled in WebSocket messages.
      auto protocol = chooseSubprotocol(req.header("sec-websocket-protocol"), {kSpdyTunnelProtocol});
      if (!protocol) {
        return sendStatus(*writer, 400, "BadRequest",
                          "unable to upgrade: port-forward over WebSocket needs subprotocol " +
                              std::string(kSpdyTunnelProtocol));
      }
      std::string key = req.header("sec-websocket-key");
      if (key.empty()) return sendStatus(*writer, 400, "BadRequest", "WebSocket upgrade without Sec-WebSocket-Key");
      auto stream = takeOver(writer);
      if (!stream) return;
      spawn(stream, nullptr, [stream, upgrade = req, proto = *protocol, dial = *dialer, pf] {
        auto ws = WebSocket::accept(*stream, upgrade, proto);
        if (!ws) {
          log::warning("streaming", "port-forward session failed", {{"err", ws.error().message}});
          return stream->close();
        }
        WebSocketByteStream tunnel(**ws);
        auto r = servePortForwardSpdy(tunnel, dial, pf);
        if (!r) log::warning("streaming", "port-forward session failed", {{"err", r.error().message}});
        tunnel.close();
      });
      return;
    }
    if (headerHas(req, "upgrade", "spdy/3.1")) {
      // kubectl <= 1.30 (and the fallback of newer ones): SPDY directly.
      std::string offered = req.header("x-stream-protocol-version");
      if (!offered.empty() && !chooseSubprotocol(offered, {kPortForwardProtocol})) {
        return sendStatus(*writer, 403, "Forbidden",
                          "unable to upgrade: no common port-forward protocol (offered " + offered + ", served " +
                              std::string(kPortForwardProtocol) + ")");
      }
      auto stream = takeOver(writer);
      if (!stream) return;
      spawn(stream, nullptr, [stream, dial = *dialer, pf, versioned = !offered.empty()] {
        std::string reply = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n";
        if (versioned) reply += "X-Stream-Protocol-Version: " + std::string(kPortForwardProtocol) + "\r\n";
        reply += "\r\n";
        if (!stream->write(reply)) return stream->close();
        auto r = servePortForwardSpdy(*stream, dial, pf);
        if (!r) log::warning("streaming", "port-forward session failed", {{"err", r.error().message}});
        stream->close();
      });
      return;
    }
    sendStatus(*writer, 400, "BadRequest", "port-forward needs a SPDY/3.1 or WebSocket tunnel upgrade");
  }
};

StreamingServer::StreamingServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

StreamingServer::~StreamingServer() { stop(); }

Result<std::unique_ptr<StreamingServer>> StreamingServer::start(StreamingServerOptions options,
                                                                StreamingBackend backend) {
  // Unauthenticated, anyone who reaches the port could exec into every pod.
  if (options.token.empty()) {
    return Error{ErrorCode::kFailedPrecondition,
                 "streaming server: no credential to check callers against (the agent's kubeconfig has no "
                 "token: give the agent a node kubeconfig, `sluice node-kubeconfig --node-name NAME`)"};
  }
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->backend = std::move(backend);
  std::error_code ec;
  std::filesystem::create_directories(impl->options.tlsDir, ec);
  if (ec) return Error::internal("streaming server: create " + impl->options.tlsDir + ": " + ec.message());
  std::filesystem::permissions(impl->options.tlsDir, std::filesystem::perms::owner_all, ec);
  auto creds = server::loadOrCreateCredentials(impl->options.tlsDir, impl->options.sans);
  if (!creds) return creds.error().wrap("streaming server certificate");
  server::HttpServerOptions http;
  http.host = impl->options.address;
  http.port = impl->options.port;
  http.certPem = creds->certPem;
  http.keyPem = creds->keyPem;
  http.ioThreads = 1;
  http.workerThreads = 4;
  auto srv = server::HttpServer::create(http, *impl);
  if (!srv) return srv.error().wrap("streaming server");
  impl->http = std::move(*srv);
  impl->http->start();
  return std::unique_ptr<StreamingServer>(new StreamingServer(std::move(impl)));
}

uint16_t StreamingServer::port() const { return impl_->http ? impl_->http->port() : 0; }

void StreamingServer::stop() {
  if (!impl_) return;
  impl_->stopSessions();
  if (impl_->http) impl_->http->stop();
}

}  // namespace sluice::agent::streaming
