// Splices a TLS stream and a plain stream socket both ways (Asio, async on
// the TLS stream's executor): what a connection taken over for a protocol
// switch runs on. Used by the HTTPS server's hijack (client TLS <-> a
// socketpair the handler owns) and by the API server's node proxy (the
// agent's TLS <-> the hijacked client socket).
//
// Each direction ends on EOF or error by shutting the other side's sending
// half, so half-closes (an exec's stdin EOF) pass through; when both
// directions ended, both sockets close and the splice (held by its own
// completion handlers) is freed.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include <array>
#include <functional>
#include <memory>
#include <string>

namespace sluice::server {

inline boost::asio::ip::tcp::socket& rawSocket(boost::asio::ip::tcp::socket& s) { return s; }
inline boost::asio::ip::tcp::socket& rawSocket(boost::beast::tcp_stream& s) { return s.socket(); }

template <typename TlsStream, typename PlainSocket>
class TlsSplice : public std::enable_shared_from_this<TlsSplice<TlsStream, PlainSocket>> {
 public:
  // `tls` and `plain` must share one (strand) executor. `first` is written to
  // `plain` before anything read from `tls` (bytes the HTTP parser read past
  // the request). `done` runs once, when both directions ended.
  TlsSplice(TlsStream& tls, PlainSocket& plain, std::string first, std::function<void()> done)
      : tls_(tls), plain_(plain), first_(std::move(first)), done_(std::move(done)) {}

  void start() {
    auto self = this->shared_from_this();
    if (!first_.empty()) {
      boost::asio::async_write(plain_, boost::asio::buffer(first_),
                               [self](boost::system::error_code ec, size_t) {
                                 if (ec) return self->upEnded();
                                 self->readUp();
                               });
    } else {
      readUp();
    }
    readDown();
  }

 private:
  // client/peer (TLS) -> plain
  void readUp() {
    auto self = this->shared_from_this();
    tls_.async_read_some(boost::asio::buffer(up_), [self](boost::system::error_code ec, size_t n) {
      if (ec && n == 0) return self->upEnded();
      boost::asio::async_write(self->plain_, boost::asio::buffer(self->up_.data(), n),
                               [self](boost::system::error_code wec, size_t) {
                                 if (wec) return self->upEnded();
                                 self->readUp();
                               });
    });
  }

  // plain -> TLS
  void readDown() {
    auto self = this->shared_from_this();
    plain_.async_read_some(boost::asio::buffer(down_), [self](boost::system::error_code ec, size_t n) {
      if (ec && n == 0) return self->downEnded();
      boost::asio::async_write(self->tls_, boost::asio::buffer(self->down_.data(), n),
                               [self](boost::system::error_code wec, size_t) {
                                 if (wec) return self->downEnded();
                                 self->readDown();
                               });
    });
  }

  void upEnded() {
    boost::system::error_code ec;
    plain_.shutdown(PlainSocket::shutdown_send, ec);
    upDone_ = true;
    finishIfDone();
  }

  void downEnded() {
    // No TLS close_notify: an async_shutdown would race the pending TLS read.
    // Closing the TCP sending half ends the peer's reads all the same.
    boost::system::error_code ec;
    rawSocket(boost::beast::get_lowest_layer(tls_)).shutdown(boost::asio::socket_base::shutdown_send, ec);
    downDone_ = true;
    finishIfDone();
  }

  void finishIfDone() {
    if (!upDone_ || !downDone_) return;
    boost::system::error_code ec;
    plain_.close(ec);
    rawSocket(boost::beast::get_lowest_layer(tls_)).close(ec);
    if (done_) {
      auto d = std::move(done_);
      done_ = nullptr;
      d();
    }
  }

  TlsStream& tls_;
  PlainSocket& plain_;
  std::string first_;
  std::function<void()> done_;
  std::array<char, 16 * 1024> up_{};
  std::array<char, 16 * 1024> down_{};
  bool upDone_ = false;
  bool downDone_ = false;
};

}  // namespace sluice::server
