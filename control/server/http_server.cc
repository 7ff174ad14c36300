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
#include <boost/asio/steady_timer.hpp>

#include "control/server/connection_registry.h"
#include "control/server/tls_splice.h"
#include "dataplane/log.h"

#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <future>
#include <deque>
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

constexpr auto kShutdownTimeout = std::chrono::seconds(5);
// accept() failing for want of fds (or memory) leaves the connection queued
// in the kernel: retrying at once would spin. Waits double from the first
// to the last value while the failures last.
constexpr auto kFirstAcceptBackoff = std::chrono::milliseconds(10);
constexpr auto kMaxAcceptBackoff = std::chrono::milliseconds(1000);
// Request headers larger than this are refused (Go's DefaultMaxHeaderBytes
// is 1 MiB; kubectl's are a few hundred bytes).
constexpr uint32_t kMaxHeaderBytes = 64 * 1024;

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

std::string internalErrorStatus() {
  return R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
         R"("message":"Internal error occurred: the server failed while serving the request",)"
         R"("reason":"InternalError","code":500})";
}

}  // namespace

size_t raiseFdLimit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  if (lim.rlim_cur != lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  return lim.rlim_cur == RLIM_INFINITY ? static_cast<size_t>(1) << 20 : static_cast<size_t>(lim.rlim_cur);
}

size_t defaultMaxConnections() {
  rlimit lim{};
  size_t soft = 1024;
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    soft = lim.rlim_cur == RLIM_INFINITY ? static_cast<size_t>(1) << 20 : static_cast<size_t>(lim.rlim_cur);
  }
  size_t reserve = std::max<size_t>(256, soft / 4);
  return soft > 2 * reserve ? soft - reserve : std::max<size_t>(soft / 2, 1);
}

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

std::vector<std::string> HttpRequest::pathSegments() const {
  std::vector<std::string> seg;
  for (size_t pos = 1; pos <= path.size();) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    if (next > pos) seg.push_back(path.substr(pos, next - pos));
    pos = next + 1;
  }
  return seg;
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
  size_t maxConnections;
  ConnectionRegistry connections;

  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> evicted{0};
  std::atomic<uint64_t> rejectedAtCap{0};
  std::atomic<uint64_t> acceptFailures{0};
  std::atomic<uint64_t> timedOut{0};
  std::atomic<uint64_t> handlerExceptions{0};
  // One malloc_trim at a time; `trimWanted` asks the running one for another round.
  std::atomic<bool> trimRunning{false};
  std::atomic<bool> trimWanted{false};

  // Declared after the registry: destroying them destroys sessions, which
  // unregister.
  net::io_context ioc;
  ssl::context tls{ssl::context::tls_server};
  tcp::acceptor acceptor{ioc};
  net::steady_timer acceptRetry{ioc};
  std::chrono::milliseconds acceptBackoff{0};  // only touched by the one pending accept
  net::thread_pool workers;
  std::vector<std::thread> ioThreads;
  std::atomic<bool> stopping{false};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;

  Impl(HttpServerOptions o, HttpHandler& h)
      : options(std::move(o)),
        handler(h),
        maxConnections(options.limits.maxConnections > 0 ? options.limits.maxConnections : defaultMaxConnections()),
        workers(static_cast<size_t>(std::max(1, options.workerThreads))) {}

  void accept();
  void admitConnection(tcp::socket socket);
  void evict(const std::shared_ptr<RegisteredConnection>& victim) {
    if (!victim) return;
    evicted.fetch_add(1, std::memory_order_relaxed);
    victim->evict();
  }
  void requestTrim();
};

namespace {

using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using Stage = ConnectionRegistry::Stage;

// One HTTPS connection. Lives as long as an async operation or a
// ResponseWriter (held by a handler or a watch) references it. Its TLS
// state is only created once the client has sent something.
class Session : public ResponseWriter, public RegisteredConnection, public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, HttpServer::Impl& server)
      : server_(server),
        exec_(socket.get_executor()),
        raw_(std::move(socket)),
        deadline_(exec_),
        acceptedAt_(std::chrono::steady_clock::now()) {}
  ~Session() override { server_.connections.remove(slot_); }

  void run() {
    server_.connections.add(shared_from_this(), slot_);
    net::dispatch(exec_, [self = shared_from_this()] { self->waitForFirstByte(); });
  }

  // RegisteredConnection.
  void evict() override { abort(); }
  bool idle() const override { return idle_.load(std::memory_order_acquire); }

  // ResponseWriter: every call hops onto the connection's strand.
  void send(int status, Headers headers, std::string body) override {
    responded_.store(true, std::memory_order_release);
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status), 11);
    for (auto& [k, v] : headers) res->set(k, v);
    res->keep_alive(keepAlive_);
    res->body() = std::move(body);
    res->prepare_payload();
    enqueue(Item{std::move(res)});
  }

  void startStream(int status, Headers headers, bool keepAlive) override {
    responded_.store(true, std::memory_order_release);
    auto res = std::make_shared<http::response<http::empty_body>>(static_cast<http::status>(status), 11);
    for (auto& [k, v] : headers) res->set(k, v);
    res->chunked(true);
    res->keep_alive(keepAlive && keepAlive_);
    auto sr = std::make_shared<http::response_serializer<http::empty_body>>(*res);
    enqueue(Item{StreamHeader{std::move(res), std::move(sr), keepAlive && keepAlive_}});
  }

  void writeChunk(std::string data) override {
    if (data.empty()) return;
    enqueue(Item{Chunk{std::make_shared<std::string>(std::move(data))}});
  }

  void endStream() override { enqueue(Item{LastChunk{}}); }

  bool closed() const override { return closed_.load(std::memory_order_acquire); }
  size_t pendingBytes() const override { return pending_.load(std::memory_order_relaxed); }

  bool waitPendingBelow(size_t bytes, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(waitMu_);
    bool ok = waitCv_.wait_for(lock, timeout, [&] { return closed() || pendingBytes() <= bytes; });
    return ok && !closed();
  }

  void abort() override {
    net::post(exec_, [self = shared_from_this()] { self->markClosed(); });
  }

  Result<int> hijack() override {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return Error::internal(std::string("socketpair: ") + std::strerror(errno));
    }
    responded_.store(true, std::memory_order_release);
    auto ready = std::make_shared<std::promise<bool>>();
    auto future = ready->get_future();
    // The stream and the parser's buffer belong to the strand; no operation
    // is pending on them while a request is with its handler.
    net::post(exec_, [self = shared_from_this(), fd = sv[0], ready] {
      if (self->closed()) {
        ::close(fd);
        ready->set_value(false);
        return;
      }
      beast::error_code ec;
      self->plain_.emplace(self->exec_);
      self->plain_->assign(net::local::stream_protocol(), fd, ec);
      if (ec) {
        ::close(fd);
        ready->set_value(false);
        return;
      }
      std::string first(static_cast<const char*>(self->buffer_.data().data()), self->buffer_.size());
      self->buffer_.consume(self->buffer_.size());
      self->closed_.store(true, std::memory_order_release);  // no more HTTP on it
      using Splice = TlsSplice<TlsStream, net::local::stream_protocol::socket>;
      std::make_shared<Splice>(*self->stream_, *self->plain_, std::move(first), [self] {})->start();
      ready->set_value(true);
    });
    if (future.wait_for(std::chrono::seconds(10)) != std::future_status::ready || !future.get()) {
      ::close(sv[1]);
      return Error::unavailable("connection closed before it could be taken over");
    }
    return sv[1];
  }

  // A handler threw: a 500 if nothing was answered yet, else the
  // connection ends (a response half sent cannot be corrected).
  void handlerFailed(const std::string& request, const std::string& what) {
    server_.handlerExceptions.fetch_add(1, std::memory_order_relaxed);
    log::error("http", "internal error serving a request", {{"request", request}, {"err", what}});
    if (!responded_.exchange(true, std::memory_order_acq_rel)) {
      keepAlive_ = false;
      send(500, {{"Content-Type", "application/json"}}, internalErrorStatus());
    } else {
      abort();
    }
  }

 private:
  struct StreamHeader {
    std::shared_ptr<http::response<http::empty_body>> res;
    std::shared_ptr<http::response_serializer<http::empty_body>> sr;
    bool keepAlive = false;
  };
  struct Chunk {
    std::shared_ptr<std::string> data;
  };
  struct LastChunk {};
  using Item = std::variant<std::shared_ptr<http::response<http::string_body>>, StreamHeader, Chunk, LastChunk>;

  // Until the client sends its first byte the connection costs a socket
  // and this object; the handshake timeout runs from the accept.
  void waitForFirstByte() {
    deadline_.expires_at(acceptedAt_ + server_.options.limits.handshakeTimeout);
    deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->stream_) return;
      self->noteTimeout(beast::error::timeout);
      self->markClosed();
    });
    raw_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
      self->deadline_.cancel();
      if (ec || self->closed()) return self->markClosed();
      self->handshake();
    });
  }

  void handshake() {
    server_.evict(server_.connections.advance(slot_, Stage::kPending, server_.options.limits.maxPendingHandshakes));
    stream_.emplace(std::move(raw_), server_.tls);
    ::SSL_set_mode(stream_->native_handle(), SSL_MODE_RELEASE_BUFFERS);
    lowest().expires_at(acceptedAt_ + server_.options.limits.handshakeTimeout);
    stream_->async_handshake(ssl::stream_base::server, [self = shared_from_this()](beast::error_code ec) {
      if (ec) {
        self->noteTimeout(ec);
        return self->markClosed();
      }
      self->readHeader(true);
    });
  }

  // The first request's header must arrive within the header timeout; a
  // later one may wait for the idle timeout (a keep-alive connection).
  void readHeader(bool first) {
    parser_.emplace();
    parser_->body_limit(server_.options.maxBodyBytes);
    parser_->header_limit(kMaxHeaderBytes);
    const HttpLimits& l = server_.options.limits;
    lowest().expires_after(first ? l.headerTimeout : l.idleTimeout);
    idle_.store(!first, std::memory_order_release);
    http::async_read_header(*stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->onHeader(ec); });
  }

  void onHeader(beast::error_code ec) {
    idle_.store(false, std::memory_order_release);
    if (ec) {
      noteTimeout(ec);
      return shutdown();
    }
    server_.connections.advance(slot_, Stage::kSettled, 0);
    const auto& msg = parser_->get();
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
    beast::error_code rec;
    auto ep = lowest().socket().remote_endpoint(rec);
    if (!rec) req.remote = ep.address().to_string();

    Admission admission;
    try {
      admission = server_.handler.admit(req);
    } catch (const std::exception& e) {
      admission = failedAdmission(req, e.what());
    } catch (...) {
      admission = failedAdmission(req, "unknown exception");
    }
    if (!admission.admitted) {
      // The announced body is never read: the connection cannot carry on.
      if (!parser_->is_done()) keepAlive_ = false;
      return send(admission.status, std::move(admission.headers), std::move(admission.body));
    }
    ticket_ = std::move(admission.ticket);
    request_ = std::move(req);
    if (parser_->is_done()) return dispatch();
    lowest().expires_after(server_.options.limits.bodyTimeout);
    http::async_read(*stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->onBody(ec); });
  }

  Admission failedAdmission(const HttpRequest& req, const std::string& what) {
    server_.handlerExceptions.fetch_add(1, std::memory_order_relaxed);
    log::error("http", "internal error admitting a request",
               {{"method", req.method}, {"target", req.target}, {"err", what}});
    Admission a;
    a.admitted = false;
    a.status = 500;
    a.headers = {{"Content-Type", "application/json"}};
    a.body = internalErrorStatus();
    return a;
  }

  void onBody(beast::error_code ec) {
    if (ec) {
      ticket_.reset();
      if (ec == http::error::body_limit) {
        keepAlive_ = false;
        send(413, {{"Content-Type", "application/json"}},
             R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"request entity too large","reason":"RequestEntityTooLarge","code":413})");
        return;
      }
      noteTimeout(ec);
      return shutdown();
    }
    request_.body = std::move(parser_->get().body());
    dispatch();
  }

  // Hands the complete request to a worker, with its in-flight ticket.
  void dispatch() {
    lowest().expires_never();
    responded_.store(false, std::memory_order_release);
    net::post(server_.workers, [self = shared_from_this(), r = std::move(request_), ticket = std::move(ticket_)]() mutable {
      std::string what = r.method + " " + r.target;
      try {
        self->server_.handler.handle(std::move(r), self);
      } catch (const std::exception& e) {
        self->handlerFailed(what, e.what());
      } catch (...) {
        self->handlerFailed(what, "unknown exception");
      }
      ticket.reset();
    });
  }

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(*stream_); }

  void noteTimeout(beast::error_code ec) {
    if (ec == beast::error::timeout) server_.timedOut.fetch_add(1, std::memory_order_relaxed);
  }

  void enqueue(Item item) {
    size_t bytes = 0;
    if (auto* c = std::get_if<Chunk>(&item)) bytes = c->data->size();
    pending_.fetch_add(bytes, std::memory_order_relaxed);
    net::post(exec_, [self = shared_from_this(), it = std::move(item), bytes]() mutable {
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
      http::async_write(*stream_, *r, [self, r](beast::error_code ec, size_t) mutable {
        self->queue_.pop_front();
        bool keepAlive = r->keep_alive();
        size_t bytes = r->body().size();
        r.reset();  // the body is freed before any trim
        if (ec) return self->failWrites();
        self->writing_ = false;
        self->responseDone(bytes);
        if (!keepAlive) return self->shutdown();
        self->readHeader(false);
      });
    } else if (auto* h = std::get_if<StreamHeader>(&item)) {
      auto hdr = *h;
      streamKeepAlive_ = hdr.keepAlive;
      streamBytes_ = 0;
      http::async_write_header(*stream_, *hdr.sr, [self, hdr](beast::error_code ec, size_t) {
        self->queue_.pop_front();
        if (ec) return self->failWrites();
        // A stream that runs until the client leaves watches for it; one
        // that ends on its own must leave the connection's reads alone.
        if (!hdr.keepAlive) self->watchForClose();
        self->writeNext();
      });
    } else if (auto* c = std::get_if<Chunk>(&item)) {
      auto data = c->data;
      net::async_write(*stream_, http::make_chunk(net::buffer(*data)), [self, data](beast::error_code ec, size_t) mutable {
        self->pending_.fetch_sub(data->size(), std::memory_order_relaxed);
        self->streamBytes_ += data->size();
        self->queue_.pop_front();
        data.reset();
        self->notifyWaiters();
        if (ec) return self->failWrites();
        self->writeNext();
      });
    } else {
      net::async_write(*stream_, http::make_chunk_last(), [self](beast::error_code ec, size_t) {
        self->queue_.pop_front();
        if (ec) return self->failWrites();
        self->writing_ = false;
        self->responseDone(self->streamBytes_);
        if (!self->streamKeepAlive_) return self->shutdown();
        self->readHeader(false);
      });
    }
  }

  void responseDone(size_t bytes) {
    if (bytes >= server_.options.limits.trimAfterBytes) server_.requestTrim();
  }

  void notifyWaiters() {
    { std::lock_guard lock(waitMu_); }
    waitCv_.notify_all();
  }

  // While streaming, the client sends nothing; a completed read means it
  // went away, so the stream's producer can stop promptly.
  void watchForClose() {
    stream_->async_read_some(net::buffer(probe_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->markClosed();
      self->watchForClose();
    });
  }

  // The peer is gone (seen by a read), timed out, or evicted. A write in
  // flight, if any, fails next and clears the queue in failWrites(); the
  // queue is never touched here, because a write completion still owns its
  // front element.
  void markClosed() {
    closed_.store(true, std::memory_order_release);
    beast::error_code ec;
    deadline_.cancel();
    if (stream_) lowest().socket().close(ec);
    else raw_.close(ec);
    server_.connections.remove(slot_);
    notifyWaiters();
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
    notifyWaiters();
    lowest().expires_after(kShutdownTimeout);
    stream_->async_shutdown([self = shared_from_this()](beast::error_code) {
      beast::error_code ec;
      self->lowest().socket().close(ec);
      self->server_.connections.remove(self->slot_);
    });
  }

  HttpServer::Impl& server_;
  net::any_io_executor exec_;  // the connection's strand
  tcp::socket raw_;            // until the first byte; then inside stream_
  std::optional<TlsStream> stream_;
  net::steady_timer deadline_;  // the handshake timeout while waiting for the first byte
  std::chrono::steady_clock::time_point acceptedAt_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpRequest request_;           // admitted, its body being read
  std::shared_ptr<void> ticket_;  // its admission, until a worker has it
  std::optional<net::local::stream_protocol::socket> plain_;  // after hijack()
  std::deque<Item> queue_;
  bool writing_ = false;
  bool keepAlive_ = true;
  bool streamKeepAlive_ = false;
  size_t streamBytes_ = 0;
  char probe_[64];
  std::atomic<bool> closed_{false};
  std::atomic<bool> idle_{false};       // waiting for a keep-alive connection's next request
  std::atomic<bool> responded_{false};  // the current request has an answer under way
  std::atomic<size_t> pending_{0};
  std::mutex waitMu_;
  std::condition_variable waitCv_;
  ConnectionRegistry::Slot slot_;  // guarded by the registry's mutex
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (stopping.load()) return;
    if (ec) {
      acceptFailures.fetch_add(1, std::memory_order_relaxed);
      if (ec == net::error::operation_aborted) return;
      // EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection stays queued and
      // the next accept() would fail the same way at once.
      acceptBackoff = std::clamp(acceptBackoff * 2, std::chrono::milliseconds(kFirstAcceptBackoff), kMaxAcceptBackoff);
      acceptRetry.expires_after(acceptBackoff);
      acceptRetry.async_wait([this](beast::error_code wec) {
        if (!wec && !stopping.load()) accept();
      });
      return;
    }
    acceptBackoff = std::chrono::milliseconds(0);
    accepted.fetch_add(1, std::memory_order_relaxed);
    admitConnection(std::move(socket));
    accept();
  });
}

void HttpServer::Impl::admitConnection(tcp::socket socket) {
  if (connections.size() >= maxConnections) {
    auto victim = connections.takeVictim();
    if (!victim) {
      rejectedAtCap.fetch_add(1, std::memory_order_relaxed);
      beast::error_code ec;
      socket.close(ec);
      return;
    }
    evict(victim);
  }
  beast::error_code opt;
  socket.set_option(tcp::no_delay(true), opt);
  std::make_shared<Session>(std::move(socket), *this)->run();
}

void HttpServer::Impl::requestTrim() {
  trimWanted.store(true, std::memory_order_release);
  if (trimRunning.exchange(true, std::memory_order_acq_rel)) return;
  net::post(workers, [this] {
    do {
      while (trimWanted.exchange(false, std::memory_order_acq_rel)) ::malloc_trim(0);
      trimRunning.store(false, std::memory_order_release);
      // A request that came in after the last round but saw it running.
    } while (trimWanted.load(std::memory_order_acquire) && !trimRunning.exchange(true, std::memory_order_acq_rel));
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
    impl_->ioThreads.emplace_back([this] {
      // An exception from a completion handler must not end the thread
      // (and with it, through std::terminate, the process).
      while (true) {
        try {
          impl_->ioc.run();
          return;
        } catch (const std::exception& e) {
          log::error("http", "unexpected exception on an I/O thread", {{"err", e.what()}});
        } catch (...) {
          log::error("http", "unexpected exception on an I/O thread");
        }
      }
    });
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

HttpServerStats HttpServer::stats() const {
  HttpServerStats s;
  s.accepted = impl_->accepted.load();
  s.evicted = impl_->evicted.load();
  s.rejectedAtCap = impl_->rejectedAtCap.load();
  s.acceptFailures = impl_->acceptFailures.load();
  s.timedOut = impl_->timedOut.load();
  s.handlerExceptions = impl_->handlerExceptions.load();
  s.maxConnections = impl_->maxConnections;
  s.open = impl_->connections.size();
  return s;
}

}  // namespace sluice::server
