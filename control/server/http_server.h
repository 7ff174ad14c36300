// HttpServer: HTTPS/1.1 on Boost.Beast over Asio, for the API server.
//
// Threading: a few I/O threads run every connection's asynchronous reads and
// writes (one strand per connection); each complete request is handed to the
// HttpHandler on a separate worker pool, because handlers block on the store
// (SQLite fsync). A handler answers through its ResponseWriter from any
// thread, either with one response or with a chunked stream (watch), whose
// chunks are queued and written in order on the connection's strand. No
// thread is held per open stream.
#pragma once

#include <atomic>
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
};

// How a handler answers. Thread-safe; calls after the connection closed are
// dropped (streams see closed() == true).
class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;
  // One complete response.
  virtual void send(int status, Headers headers, std::string body) = 0;
  // A chunked response: the header now, chunks later, then endStream().
  virtual void startStream(int status, Headers headers) = 0;
  virtual void writeChunk(std::string data) = 0;
  virtual void endStream() = 0;
  virtual bool closed() const = 0;
  // Bytes queued but not yet written: a stream's back-pressure signal.
  virtual size_t pendingBytes() const = 0;
  // Takes the connection over, for a protocol switch (exec / port-forward
  // upgrades) or a raw proxy to a node agent. Nothing may have been sent for
  // this request. Returns a plain full-duplex stream socket (the caller owns
  // it) carrying the connection's bytes after TLS, both ways, including
  // anything the client sent past the request; a splice on the I/O threads
  // runs until both sides closed. The other methods must not be used after.
  virtual Result<int> hijack() = 0;
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Called on a worker thread; must answer through `writer` exactly once
  // (send, or startStream ... endStream).
  virtual void handle(HttpRequest request, std::shared_ptr<ResponseWriter> writer) = 0;
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

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Percent-decoding for paths and query strings ('+' is a space only in queries).
std::string percentDecode(std::string_view s, bool plusIsSpace);

}  // namespace sluice::server
