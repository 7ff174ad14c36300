#include "control/agent/streaming/websocket.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

namespace sluice::agent::streaming {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

namespace {

// How long close() waits for the peer's close reply: kubectl answers at
// once; a peer that does not is cut off when the caller closes the stream.
constexpr std::chrono::seconds kCloseWait{2};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

using Done = std::function<void(beast::error_code)>;

}  // namespace

std::optional<std::string> chooseSubprotocol(std::string_view offered,
                                             const std::vector<std::string>& supported) {
  std::vector<std::string_view> offers;
  while (!offered.empty()) {
    size_t comma = offered.find(',');
    offers.push_back(trim(offered.substr(0, comma)));
    offered = comma == std::string_view::npos ? std::string_view() : offered.substr(comma + 1);
  }
  for (const auto& s : supported) {
    if (std::find(offers.begin(), offers.end(), s) != offers.end()) return s;
  }
  return std::nullopt;
}

// The Beast stream over a duplicate of the connection's descriptor (the
// FdByteStream keeps the original: its close() shuts the socket down, which
// ends the stream's pending operations too), and the one thread running it.
struct WebSocket::Impl {
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  websocket::stream<asio::generic::stream_protocol::socket> ws{ioc};
  beast::flat_buffer readBuffer;  // reader thread only, between reads
  std::mutex writeMu;             // one write or close outstanding
  bool closeSent = false;         // under writeMu
  std::thread thread;

  ~Impl() {
    // Pending operations complete (aborted) once the socket is closed;
    // the thread returns when nothing is left to run.
    asio::post(ioc, [this] {
      beast::error_code ignored;
      ws.next_layer().close(ignored);
    });
    work.reset();
    if (thread.joinable()) thread.join();
  }

  // Starts an operation on the I/O thread and returns the result's future.
  std::future<beast::error_code> start(std::function<void(Done)> op) {
    auto promise = std::make_shared<std::promise<beast::error_code>>();
    auto future = promise->get_future();
    asio::post(ioc, [op = std::move(op), promise] {
      op([promise](beast::error_code ec) { promise->set_value(ec); });
    });
    return future;
  }
};

WebSocket::WebSocket(FdByteStream& stream, std::unique_ptr<Impl> impl)
    : stream_(stream), impl_(std::move(impl)) {}

WebSocket::~WebSocket() = default;

Result<std::unique_ptr<WebSocket>> WebSocket::accept(FdByteStream& stream,
                                                     const server::HttpRequest& request,
                                                     const std::string& subprotocol) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(stream.fd(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return Error::unavailable(std::string("websocket: getsockname: ") + std::strerror(errno));
  }
  const int fd = ::fcntl(stream.fd(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return Error::unavailable(std::string("websocket: dup: ") + std::strerror(errno));
  auto impl = std::make_unique<Impl>();
  beast::error_code ec;
  impl->ws.next_layer().assign(asio::generic::stream_protocol(ss.ss_family, 0), fd, ec);
  if (ec) {
    ::close(fd);
    return Error::internal("websocket: " + ec.message());
  }
  impl->ws.read_message_max(kMaxMessage);
  // Messages go out as single frames: kubectl's reader (gorilla) takes any
  // size, and a 32 KiB stdout chunk need not become eight frames.
  impl->ws.auto_fragment(false);
  impl->ws.set_option(
      websocket::stream_base::decorator([subprotocol](websocket::response_type& res) {
        if (!subprotocol.empty()) res.set(http::field::sec_websocket_protocol, subprotocol);
      }));
  impl->thread = std::thread([p = impl.get()] { p->ioc.run(); });

  http::request<http::empty_body> upgrade;
  upgrade.method_string(request.method);
  upgrade.target(request.target);
  upgrade.version(11);
  for (const auto& [name, value] : request.headers) upgrade.insert(name, value);
  Impl* p = impl.get();
  ec = p->start([p, &upgrade](Done done) { p->ws.async_accept(upgrade, done); }).get();
  if (ec) return Error::invalid("websocket handshake: " + ec.message());
  return std::unique_ptr<WebSocket>(new WebSocket(stream, std::move(impl)));
}

Result<std::optional<WebSocket::Message>> WebSocket::read() {
  Impl* p = impl_.get();
  beast::error_code ec =
      p->start([p](Done done) {
         p->ws.async_read(p->readBuffer, [done](beast::error_code e, size_t) { done(e); });
       }).get();
  if (ec == websocket::error::closed || ec == asio::error::eof) return std::optional<Message>();
  if (ec) return Error::unavailable("websocket: " + ec.message());
  Message m;
  m.binary = p->ws.got_binary();
  m.data = beast::buffers_to_string(p->readBuffer.data());
  p->readBuffer.consume(p->readBuffer.size());
  return std::optional<Message>(std::move(m));
}

Result<void> WebSocket::write(std::string_view data, bool binary) {
  std::lock_guard lock(impl_->writeMu);
  if (impl_->closeSent) return Error::unavailable("websocket: closed");
  Impl* p = impl_.get();
  beast::error_code ec = p->start([p, data, binary](Done done) {
                            p->ws.binary(binary);
                            p->ws.async_write(asio::buffer(data.data(), data.size()),
                                              [done](beast::error_code e, size_t) { done(e); });
                          }).get();
  if (ec) return Error::unavailable("websocket: " + ec.message());
  return okResult();
}

Result<void> WebSocket::writeBinary(std::string_view data) { return write(data, true); }
Result<void> WebSocket::writeText(std::string_view data) { return write(data, false); }

Result<void> WebSocket::close(uint16_t code, std::string_view reason) {
  std::lock_guard lock(impl_->writeMu);
  if (impl_->closeSent) return okResult();
  impl_->closeSent = true;
  Impl* p = impl_.get();
  websocket::close_reason why(static_cast<websocket::close_code>(code),
                              beast::string_view(reason.data(), reason.size()));
  auto done = p->start([p, why](Done d) { p->ws.async_close(why, d); });
  // The frame is out within microseconds; the wait is for the reply, which
  // may as well reach a reader thread.
  if (done.wait_for(kCloseWait) == std::future_status::ready) {
    beast::error_code ec = done.get();
    if (ec && ec != websocket::error::closed && ec != asio::error::eof) {
      return Error::unavailable("websocket: close: " + ec.message());
    }
  }
  return okResult();
}

Result<size_t> WebSocketByteStream::read(char* buf, size_t len) {
  while (pos_ == pending_.size()) {
    auto m = ws_.read();
    if (!m) return m.error();
    if (!m->has_value()) return size_t{0};
    pending_ = std::move((*m)->data);
    pos_ = 0;
  }
  size_t n = std::min(len, pending_.size() - pos_);
  std::memcpy(buf, pending_.data() + pos_, n);
  pos_ += n;
  return n;
}

Result<void> WebSocketByteStream::write(std::string_view data) { return ws_.writeBinary(data); }

void WebSocketByteStream::close() {
  (void)ws_.close();
  ws_.stream().close();
}

}  // namespace sluice::agent::streaming
