#include "control/metrics/endpoint.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>

namespace sluice::metrics {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr std::chrono::seconds kRequestTimeout{5};
constexpr size_t kHeaderLimit = 8192;

Result<tcp::endpoint> parseAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos)
    return Error::invalid("metrics address " + address + ": expected ADDR:PORT");
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  const std::string port = address.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535) {
    return Error::invalid("metrics address " + address + ": bad port");
  }
  beast::error_code ec;
  auto ip = asio::ip::make_address(host, ec);
  if (ec) return Error::invalid("metrics address " + address + ": not an IP address");
  return tcp::endpoint(ip, static_cast<uint16_t>(std::stoul(port)));
}

}  // namespace

struct Endpoint::Impl {
  EndpointOptions options;
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::thread thread;
  uint16_t port = 0;

  http::response<http::string_body> answer(const http::request<http::empty_body>& req) {
    http::response<http::string_body> res;
    res.version(11);
    res.keep_alive(false);
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      res.result(http::status::method_not_allowed);
      res.body() = "only GET\n";
    } else if (path == "/metrics") {
      res.result(http::status::ok);
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res.body() = serialize(options.sources);
    } else if (path == "/healthz" || path == "/livez") {
      res.result(http::status::ok);
      res.body() = "ok";
    } else if (path == "/readyz") {
      auto why = options.ready ? options.ready() : std::nullopt;
      res.result(why ? http::status::internal_server_error : http::status::ok);
      res.body() = why ? "[-]" + *why + "\nreadyz check failed\n" : "ok";
    } else {
      res.result(http::status::not_found);
      res.body() = "not found; try /metrics, /healthz, /livez or /readyz\n";
    }
    res.prepare_payload();
    if (req.method() == http::verb::head) res.body().clear();
    return res;
  }

  void accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) serve(std::move(socket));
      accept();
    });
  }

  // One request per connection (Connection: close), as scrapers expect.
  void serve(tcp::socket socket) {
    struct Session {
      beast::tcp_stream stream;
      beast::flat_buffer buffer;
      http::request_parser<http::empty_body> parser;
      http::response<http::string_body> res;
      explicit Session(tcp::socket s) : stream(std::move(s)) { parser.header_limit(kHeaderLimit); }
    };
    auto s = std::make_shared<Session>(std::move(socket));
    s->stream.expires_after(kRequestTimeout);
    http::async_read(s->stream, s->buffer, s->parser, [this, s](beast::error_code ec, size_t) {
      if (ec) return;
      s->res = answer(s->parser.get());
      http::async_write(s->stream, s->res, [s](beast::error_code, size_t) {
        beast::error_code ignored;
        s->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
      });
    });
  }
};

Endpoint::Endpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Endpoint>> Endpoint::start(EndpointOptions options) {
  auto ep = parseAddress(options.address);
  if (!ep) return ep.error();
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  beast::error_code ec;
  impl->acceptor.open(ep->protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(*ep, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return Error::unavailable("metrics listen on " + impl->options.address + ": " + ec.message());
  impl->port = impl->acceptor.local_endpoint().port();
  impl->accept();
  Impl* p = impl.get();
  impl->thread = std::thread([p] { p->ioc.run(); });
  return std::unique_ptr<Endpoint>(new Endpoint(std::move(impl)));
}

Endpoint::~Endpoint() { stop(); }

uint16_t Endpoint::port() const { return impl_->port; }

void Endpoint::stop() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->ioc, [p = impl_.get()] {
    beast::error_code ignored;
    p->acceptor.close(ignored);
  });
  impl_->ioc.stop();
  impl_->thread.join();
}

}  // namespace sluice::metrics
