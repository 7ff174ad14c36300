#include "control/server/http_server.h"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "control/server/tls_splice.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <future>
#include <deque>
#include <iostream>
#include <optional>
#include <mutex>
#include <thread>
#include <variant>

namespace sluice::server {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

// Idle keep-alive connections are closed after this (Go's client reconnects).
constexpr auto kIdleTimeout = std::chrono::seconds(300);
constexpr auto kHandshakeTimeout = std::chrono::seconds(30);
constexpr auto kShutdownTimeout = std::chrono::seconds(5);

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void parseQuery(std::string_view q, std::vector<std::pair<std::string, std::string>>& out) {
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view part = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (part.empty()) continue;
    size_t eq = part.find('=');
    std::string key = percentDecode(part.substr(0, eq), true);
    std::string value = eq == std::string_view::npos ? "" : percentDecode(part.substr(eq + 1), true);
    out.emplace_back(std::move(key), std::move(value));
  }
}

}  // namespace

std::string percentDecode(std::string_view s, bool plusIsSpace) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size() && hexValue(s[i + 1]) >= 0 && hexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(hexValue(s[i + 1]) * 16 + hexValue(s[i + 2]));
      i += 2;
    } else if (c == '+' && plusIsSpace) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return "";
}

std::string HttpRequest::queryParam(std::string_view name) const {
  for (const auto& [k, v] : query) {
    if (k == name) return v;
  }
  return "";
}

bool HttpRequest::hasQueryParam(std::string_view name) const {
  return std::any_of(query.begin(), query.end(), [&](const auto& kv) { return kv.first == name; });
}

struct HttpServer::Impl {
  HttpServerOptions options;
  HttpHandler& handler;
  net::io_context ioc;
  ssl::context tls{ssl::context::tls_server};
  tcp::acceptor acceptor{ioc};
  net::thread_pool workers;
  std::vector<std::thread> ioThreads;
  std::atomic<bool> stopping{false};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;

  Impl(HttpServerOptions o, HttpHandler& h)
      : options(std::move(o)), handler(h), workers(static_cast<size_t>(std::max(1, options.workerThreads))) {}

  void accept();
};

namespace {

// One HTTPS connection. Lives as long as an async operation or a
// ResponseWriter (held by a handler or a watch) references it.
class Session : public ResponseWriter, public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, HttpServer::Impl& server)
      : server_(server), stream_(std::move(socket), server.tls) {}

  void run() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->handshake(); });
  }

  // ResponseWriter: every call hops onto the connection's strand.
  void send(int status, Headers headers, std::string body) override {
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), 11);
    for (auto& [k, v] : headers) res->set(k, v);
    res->keep_alive(keepAlive_);
    res->body() = std::move(body);
    res->prepare_payload();
    enqueue(Item{std::move(res)});
  }

  void startStream(int status, Headers headers) override {
    auto res = std::make_shared<http::response<http::empty_body>>(static_cast<http::status>(status), 11);
    for (auto& [k, v] : headers) res->set(k, v);
    res->chunked(true);
    res->keep_alive(false);  // a stream ends its connection
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    enqueue(Item{StreamHeader{std::move(res), std::move(sr)}});
  }

  void writeChunk(std::string data) override {
    if (data.empty()) return;
    enqueue(Item{Chunk{std::make_shared<std::string>(std::move(data))}});
  }

  void endStream() override { enqueue(Item{LastChunk{}}); }

  bool closed() const override { return closed_.load(std::memory_order_acquire); }
  size_t pendingBytes() const override { return pending_.load(std::memory_order_relaxed); }

  Result<int> hijack() override {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return Error::internal(std::string("socketpair: ") + std::strerror(errno));
    }
    auto ready = std::make_shared<std::promise<bool>>();
    auto future = ready->get_future();
    // The stream and the parser's buffer belong to the strand; no operation
    // is pending on them while a request is with its handler.
    net::post(stream_.get_executor(), [self = shared_from_this(), fd = sv[0], ready] {
      if (self->closed()) {
        ::close(fd);
        ready->set_value(false);
        return;
      }
      beast::error_code ec;
      self->plain_.emplace(self->stream_.get_executor());
      self->plain_->assign(net::local::stream_protocol(), fd, ec);
      if (ec) {
        ::close(fd);
        ready->set_value(false);
        return;
      }
      std::string first(static_cast<const char*>(self->buffer_.data().data()), self->buffer_.size());
      self->buffer_.consume(self->buffer_.size());
      self->closed_.store(true, std::memory_order_release);  // no more HTTP on it
      using Splice = TlsSplice<decltype(self->stream_), net::local::stream_protocol::socket>;
      std::make_shared<Splice>(self->stream_, *self->plain_, std::move(first), [self] {})->start();
      ready->set_value(true);
    });
    if (future.wait_for(std::chrono::seconds(10)) != std::future_status::ready || !future.get()) {
      ::close(sv[1]);
      return Error::unavailable("connection closed before it could be taken over");
    }
    return sv[1];
  }

 private:
  struct StreamHeader {
    std::shared_ptr<http::response<http::empty_body>> res;
    std::shared_ptr<http::response_serializer<http::empty_body>> sr;
  };
  struct Chunk {
    std::shared_ptr<std::string> data;
  };
  struct LastChunk {};
  using Item = std::variant<std::shared_ptr<http::response<http::string_body>>, StreamHeader, Chunk, LastChunk>;

  void handshake() {
    beast::get_lowest_layer(stream_).expires_after(kHandshakeTimeout);
    stream_.async_handshake(ssl::stream_base::server,
                            [self = shared_from_this()](beast::error_code ec) {
                              if (ec) return self->markClosed();
                              self->read();
                            });
  }

  void read() {
    parser_.emplace();
    parser_->body_limit(server_.options.maxBodyBytes);
    parser_->header_limit(64 * 1024);
    beast::get_lowest_layer(stream_).expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->onRead(ec); });
  }

  void onRead(beast::error_code ec) {
    if (ec) {
      if (ec == http::error::body_limit) {
        keepAlive_ = false;
        send(413, {{"Content-Type", "application/json"}},
             R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"request entity too large","reason":"RequestEntityTooLarge","code":413})");
        return;
      }
      return shutdown();
    }
    beast::get_lowest_layer(stream_).expires_never();
    auto msg = parser_->release();
    keepAlive_ = msg.keep_alive();
    HttpRequest req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    std::string_view target = req.target;
    size_t q = target.find('?');
    req.path = percentDecode(target.substr(0, q), false);
    if (q != std::string_view::npos) parseQuery(target.substr(q + 1), req.query);
    for (const auto& f : msg) {
      std::string name(f.name_string());
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      req.headers.emplace_back(std::move(name), std::string(f.value()));
    }
    req.body = std::move(msg.body());
    beast::error_code rec;
    auto ep = beast::get_lowest_layer(stream_).socket().remote_endpoint(rec);
    if (!rec) req.remote = ep.address().to_string();
    net::post(server_.workers, [self = shared_from_this(), r = std::move(req)]() mutable {
      self->server_.handler.handle(std::move(r), self);
    });
  }

  void enqueue(Item item) {
    size_t bytes = 0;
    if (auto* c = std::get_if<Chunk>(&item)) bytes = c->data->size();
    pending_.fetch_add(bytes, std::memory_order_relaxed);
    net::post(stream_.get_executor(), [self = shared_from_this(), it = std::move(item), bytes]() mutable {
      if (self->closed()) {
        self->pending_.fetch_sub(bytes, std::memory_order_relaxed);
        return;
      }
      self->queue_.push_back(std::move(it));
      if (!self->writing_) self->writeNext();
    });
  }

  void writeNext() {
    if (queue_.empty()) {
      writing_ = false;
      return;
    }
    writing_ = true;
    Item& item = queue_.front();
    auto self = shared_from_this();
    if (auto* res = std::get_if<0>(&item)) {
      auto r = *res;
      http::async_write(stream_, *r, [self, r](beast::error_code ec, size_t) {
        self->queue_.pop_front();
        if (ec) return self->failWrites();
        self->writing_ = false;
        if (!r->keep_alive()) return self->shutdown();
        self->read();
      });
    } else if (auto* h = std::get_if<StreamHeader>(&item)) {
      auto hdr = *h;
      streaming_ = true;
      http::async_write_header(stream_, *hdr.sr, [self, hdr](beast::error_code ec, size_t) {
        self->queue_.pop_front();
        if (ec) return self->failWrites();
        self->watchForClose();
        self->writeNext();
      });
    } else if (auto* c = std::get_if<Chunk>(&item)) {
      auto data = c->data;
      net::async_write(stream_, http::make_chunk(net::buffer(*data)), [self, data](beast::error_code ec, size_t) {
        self->pending_.fetch_sub(data->size(), std::memory_order_relaxed);
        self->queue_.pop_front();
        if (ec) return self->failWrites();
        self->writeNext();
      });
    } else {
      net::async_write(stream_, http::make_chunk_last(), [self](beast::error_code ec, size_t) {
        self->queue_.pop_front();
        if (ec) return self->failWrites();
        self->writing_ = false;
        self->shutdown();
      });
    }
  }

  // While streaming, the client sends nothing; a completed read means it
  // went away, so the stream's producer can stop promptly.
  void watchForClose() {
    stream_.async_read_some(net::buffer(probe_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->markClosed();
      self->watchForClose();
    });
  }

  // The peer is gone (seen by a read). A write in flight, if any, fails
  // next and clears the queue in failWrites(); the queue is never touched
  // here, because a write completion still owns its front element.
  void markClosed() {
    closed_.store(true, std::memory_order_release);
    beast::error_code ec;
    beast::get_lowest_layer(stream_).socket().close(ec);
  }

  // Called from a write completion, when no other write is in flight.
  void failWrites() {
    markClosed();
    queue_.clear();
    writing_ = false;
    pending_.store(0, std::memory_order_relaxed);
  }

  void shutdown() {
    closed_.store(true, std::memory_order_release);
    beast::get_lowest_layer(stream_).expires_after(kShutdownTimeout);
    stream_.async_shutdown([self = shared_from_this()](beast::error_code) {
      beast::error_code ec;
      beast::get_lowest_layer(self->stream_).socket().close(ec);
    });
  }

  HttpServer::Impl& server_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<net::local::stream_protocol::socket> plain_;  // after hijack()
  std::deque<Item> queue_;
  bool writing_ = false;
  bool keepAlive_ = true;
  bool streaming_ = false;
  char probe_[64];
  std::atomic<bool> closed_{false};
  std::atomic<size_t> pending_{0};
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (stopping.load()) return;
    if (!ec) {
      beast::error_code opt;
      socket.set_option(tcp::no_delay(true), opt);
      std::make_shared<Session>(std::move(socket), *this)->run();
    }
    accept();
  });
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { stop(); }

Result<std::unique_ptr<HttpServer>> HttpServer::create(HttpServerOptions options, HttpHandler& handler) {
  auto impl = std::make_unique<Impl>(std::move(options), handler);
  beast::error_code ec;
  impl->tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  impl->tls.use_certificate_chain(net::buffer(impl->options.certPem), ec);
  if (ec) return Error::internal("loading serving certificate: " + ec.message());
  impl->tls.use_private_key(net::buffer(impl->options.keyPem), ssl::context::pem, ec);
  if (ec) return Error::internal("loading serving key: " + ec.message());

  auto addr = net::ip::make_address(impl->options.host, ec);
  if (ec) return Error::invalid("listen address " + impl->options.host + ": " + ec.message());
  tcp::endpoint ep(addr, impl->options.port);
  impl->acceptor.open(ep.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(ep, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Error::unavailable("listen on " + impl->options.host + ":" + std::to_string(impl->options.port) +
                              ": " + ec.message());
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

void HttpServer::start() {
  impl_->guard.emplace(net::make_work_guard(impl_->ioc));
  impl_->accept();
  for (int i = 0; i < std::max(1, impl_->options.ioThreads); ++i) {
    impl_->ioThreads.emplace_back([this] { impl_->ioc.run(); });
  }
}

void HttpServer::stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  impl_->guard.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->ioThreads) t.join();
  impl_->ioThreads.clear();
  beast::error_code ec;
  impl_->acceptor.close(ec);
  impl_->workers.join();
}

uint16_t HttpServer::port() const {
  beast::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

}  // namespace sluice::server
