// HttpServer: HTTPS/1.1 on Boost.Beast over Asio, for the API server.
//
// Threading: a few I/O threads run every connection's asynchronous reads and
// writes (one strand per connection). When a request's header has arrived,
// the HttpHandler admits it on the I/O thread (authentication and in-flight
// limits, before the body is read); an admitted request is then read whole
// and handed to the handler on a separate worker pool, because handlers
// block on the store (SQLite fsync). A handler answers through its
// ResponseWriter from any thread, either with one response or with a
// chunked stream (watch, large list), whose chunks are queued and written in
// order on the connection's strand. No thread is held per open stream.
//
// Limits, as kube-apiserver's Go http.Server has them (HttpLimits): a TLS
// handshake and a first request header must arrive within seconds; an idle
// keep-alive connection is closed; open connections are capped below the
// fd limit, the oldest connection that has not yet completed a request
// being closed for a new one (connection_registry.h); TLS state is only
// allocated once a client sends something; accept() backs off when the
// process is out of fds instead of spinning. An exception escaping a handler becomes a 500 for
// that request and a log line, never a terminate() of the process.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dataplane/result.h"

namespace sluice::server {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;       // "GET"
  std::string target;       // raw request target, with query
  std::string path;         // percent-decoded path
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  Headers headers;          // names lower-cased
  std::string body;
  std::string remote;       // peer address, for logs

  // First value of a header / query parameter, or "".
  std::string header(std::string_view name) const;
  std::string queryParam(std::string_view name) const;
  bool hasQueryParam(std::string_view name) const;
  // The path's non-empty segments: "/api/v1//pods/" -> {"api", "v1", "pods"}.
  std::vector<std::string> pathSegments() const;
};

// How a handler answers. Thread-safe; calls after the connection closed are
// dropped (streams see closed() == true).
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // One complete response.
  virtual void send(int status, Headers headers, std::string body) = 0;
  // A chunked response: the header now, chunks later, then endStream().
  // A stream that ends on its own (a list) may keep the connection for the
  // next request; one that runs until the client leaves (a watch, logs
  // -f) ends it, and its writer sees closed() as soon as the client goes.
  virtual void startStream(int status, Headers headers, bool keepAlive = false) = 0;
  virtual void writeChunk(std::string data) = 0;
  virtual void endStream() = 0;
  virtual bool closed() const = 0;
  // Bytes queued but not yet written: a stream's back-pressure signal.
  virtual size_t pendingBytes() const = 0;
  // Blocks until at most `bytes` are pending; false if the connection
  // closed or `timeout` passed first (a client that stopped reading).
  virtual bool waitPendingBelow(size_t bytes, std::chrono::milliseconds timeout) = 0;
  // Closes the connection at once: for a response that cannot be completed
  // (a list whose store read failed mid-stream), so the client sees it cut
  // rather than a well-formed but wrong answer.
  virtual void abort() = 0;
  // Takes the connection over, for a protocol switch (exec / port-forward
  // upgrades) or a raw proxy to a node agent. Nothing may have been sent for
  // this request. Returns a plain full-duplex stream socket (the caller owns
  // it) carrying the connection's bytes after TLS, both ways, including
  // anything the client sent past the request; a splice on the I/O threads
  // runs until both sides closed. The other methods must not be used after.
  virtual Result<int> hijack() = 0;
};

// The handler's verdict on a request whose header has arrived.
struct Admission {
  bool admitted = true;
  // Not admitted: the complete answer (401, 429, ...). The body of the
  // request is never read; the connection closes after the answer if one
  // was announced.
  int status = 0;
  Headers headers;
  std::string body;
  // Admitted: held until handle() returns (an in-flight slot).
  std::shared_ptr<void> ticket;
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Called on an I/O thread with the request's line and headers (`body` is
  // still empty): must be quick and must not block.
  virtual Admission admit(const HttpRequest& /*request*/) { return {}; }
  // Called on a worker thread; must answer through `writer` exactly once
  // (send, or startStream ... endStream). An exception escaping it is
  // answered with a 500 (or ends the connection if a response had begun).
  virtual void handle(HttpRequest request, std::shared_ptr<ResponseWriter> writer) = 0;
};

// Connection limits and timeouts. The defaults follow kube-apiserver, except
// that the handshake and first header get 10 s rather than Go's 32 s
// ReadHeaderTimeout: nothing is known about the client yet, and a real
// client (kubectl, client-go) sends both within milliseconds.
struct HttpLimits {
  // Open connections at most; 0: defaultMaxConnections() (from the fd
  // limit). A connection accepted past it closes the oldest connection that
  // has not yet sent a complete request header (else the oldest idle
  // keep-alive one), or, if every connection is busy, itself.
  size_t maxConnections = 0;
  // Connections at once in their TLS handshake or first request header
  // (each holds ~80 KiB of TLS buffers; an idle connection that has sent
  // nothing holds none). Past it, the oldest of them is closed: a real
  // client gets through both in milliseconds.
  size_t maxPendingHandshakes = 1024;
  std::chrono::milliseconds handshakeTimeout{10'000};
  // From the end of the handshake to the end of the first request's header.
  std::chrono::milliseconds headerTimeout{10'000};
  // A keep-alive connection waiting for its next request (Go's IdleTimeout;
  // kube-apiserver sets 90 s, http.DefaultTransport's idle timeout).
  std::chrono::milliseconds idleTimeout{90'000};
  // Reading an admitted request's body (kube-apiserver's 60 s request
  // timeout for everything that is not long-running).
  std::chrono::milliseconds bodyTimeout{60'000};
  // After a response of at least this many bytes, freed heap is returned to
  // the kernel (malloc_trim): glibc keeps it in per-thread arenas otherwise.
  size_t trimAfterBytes = 8u << 20;
};

// RLIMIT_NOFILE's soft limit minus what the rest of the process needs (the
// store, watches' peers, the agent in `sluice up`): a quarter of it, at
// least 256.
size_t defaultMaxConnections();
// Raises RLIMIT_NOFILE's soft limit to the hard limit, as Go programs do at
// start (Go 1.19+); returns the resulting soft limit.
size_t raiseFdLimit();

struct HttpServerStats {
  uint64_t accepted = 0;
  uint64_t evicted = 0;        // closed to make room for a newer connection or handshake
  uint64_t rejectedAtCap = 0;  // closed at accept: every connection was busy
  uint64_t acceptFailures = 0; // accept() errors (EMFILE, ENFILE, ...)
  uint64_t timedOut = 0;       // handshake, header, idle or body timeout
  uint64_t handlerExceptions = 0;
  size_t open = 0;
  size_t maxConnections = 0;
};

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 6443;  // 0: pick a free port (see HttpServer::port())
  std::string certPem;
  std::string keyPem;
  int ioThreads = 2;
  // Requests blocked in the store at once; SQLite group commit batches
  // concurrent writers, so more workers mean more writes per fsync.
  int workerThreads = 16;
  // Largest request body accepted (Kubernetes allows 3 MiB objects).
  size_t maxBodyBytes = 3 * 1024 * 1024;
  HttpLimits limits;
};

class HttpServer {
 public:
  // Binds and listens; serving starts with start().
  static Result<std::unique_ptr<HttpServer>> create(HttpServerOptions options, HttpHandler& handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  void start();
  // Stops accepting, closes connections, joins threads.
  void stop();
  uint16_t port() const;
  HttpServerStats stats() const;

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Percent-decoding for paths and query strings ('+' is a space only in queries).
std::string percentDecode(std::string_view s, bool plusIsSpace);

}  // namespace sluice::server
