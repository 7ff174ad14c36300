#include "tests/control/server/https_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace sluice::server::testing {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

nlohmann::json HttpResponse::json() const { return nlohmann::json::parse(body, nullptr, false); }

std::string HttpResponse::header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (beast::iequals(k, name)) return v;
  }
  return "";
}

struct HttpsClient::Impl {
  std::string host;
  uint16_t port;
  std::string token;
  net::io_context ioc;
  ssl::context tls{ssl::context::tls_client};

  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> connect() {
    auto stream = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc, tls);
    tcp::resolver resolver(ioc);
    beast::get_lowest_layer(*stream).connect(resolver.resolve(host, std::to_string(port)));
    SSL_set_tlsext_host_name(stream->native_handle(), host.c_str());
    stream->handshake(ssl::stream_base::client);
    return stream;
  }
};

HttpsClient::HttpsClient(std::string host, uint16_t port, std::string caPem, std::string token)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->token = std::move(token);
  impl_->tls.add_certificate_authority(net::buffer(caPem));
  impl_->tls.set_verify_mode(ssl::verify_peer);
}

HttpsClient::~HttpsClient() = default;

HttpResponse HttpsClient::request(const std::string& method, const std::string& target, const std::string& body,
                                  const std::string& contentType, const std::string& accept) {
  auto stream = impl_->connect();
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, impl_->host);
  if (!impl_->token.empty()) req.set(http::field::authorization, "Bearer " + impl_->token);
  req.set(http::field::accept, accept);
  if (!body.empty()) {
    req.set(http::field::content_type, contentType);
    req.body() = body;
  }
  req.prepare_payload();
  http::write(*stream, req);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1ull << 32);
  http::read(*stream, buffer, parser);
  HttpResponse out;
  out.status = static_cast<int>(parser.get().result_int());
  out.body = parser.get().body();
  for (const auto& f : parser.get()) out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  beast::error_code ec;
  stream->shutdown(ec);
  return out;
}

int HttpsClient::getStreaming(const std::string& target, const std::string& accept,
                              const std::function<void(std::string_view)>& onData) {
  auto stream = impl_->connect();
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, impl_->host);
  req.set(http::field::authorization, "Bearer " + impl_->token);
  req.set(http::field::accept, accept);
  http::write(*stream, req);
  beast::flat_buffer buffer;
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  char chunk[64 * 1024];
  beast::error_code ec;
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    http::read_some(*stream, buffer, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return 0;
    onData(std::string_view(chunk, sizeof chunk - parser.get().body().size));
  }
  int status = static_cast<int>(parser.get().result_int());
  stream->shutdown(ec);
  return status;
}

int HttpsClient::watch(const std::string& target, const std::function<bool(const nlohmann::json&)>& onEvent,
                       std::chrono::milliseconds timeout) {
  auto stream = impl_->connect();
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, impl_->host);
  req.set(http::field::authorization, "Bearer " + impl_->token);
  req.set(http::field::accept, "application/json");
  http::write(*stream, req);
  beast::flat_buffer buffer;
  http::response_parser<http::empty_body> headerParser;
  http::read_header(*stream, buffer, headerParser);
  int status = static_cast<int>(headerParser.get().result_int());
  // Read the chunked body as it arrives; split on newlines.
  http::response_parser<http::buffer_body> parser(std::move(headerParser));
  std::string pending;
  char chunk[8192];
  auto deadline = std::chrono::steady_clock::now() + timeout;
  beast::get_lowest_layer(*stream).expires_at(deadline);
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    beast::error_code ec;
    http::read_some(*stream, buffer, parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) break;
    pending.append(chunk, sizeof chunk - parser.get().body().size);
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      auto j = nlohmann::json::parse(pending.substr(0, nl), nullptr, false);
      pending.erase(0, nl + 1);
      if (!onEvent(j)) return status;
    }
  }
  return status;
}

struct TlsConnection::Impl {
  net::io_context ioc;
  ssl::context tls{ssl::context::tls_client};
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
  bool ok = false;
};

TlsConnection::TlsConnection(const std::string& host, uint16_t port, const std::string& caPem)
    : impl_(std::make_unique<Impl>()) {
  impl_->tls.add_certificate_authority(net::buffer(caPem));
  impl_->tls.set_verify_mode(ssl::verify_peer);
  impl_->stream = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(impl_->ioc, impl_->tls);
  beast::error_code ec;
  tcp::resolver resolver(impl_->ioc);
  auto results = resolver.resolve(host, std::to_string(port), ec);
  if (ec) return;
  beast::get_lowest_layer(*impl_->stream).expires_after(std::chrono::seconds(10));
  beast::get_lowest_layer(*impl_->stream).connect(results, ec);
  if (ec) return;
  SSL_set_tlsext_host_name(impl_->stream->native_handle(), host.c_str());
  impl_->stream->handshake(ssl::stream_base::client, ec);
  impl_->ok = !ec;
}

TlsConnection::~TlsConnection() {
  beast::error_code ec;
  beast::get_lowest_layer(*impl_->stream).socket().close(ec);
}

bool TlsConnection::ok() const { return impl_->ok; }

bool TlsConnection::write(const std::string& bytes) {
  beast::error_code ec;
  net::write(*impl_->stream, net::buffer(bytes), ec);
  return !ec;
}

HttpResponse TlsConnection::readResponse(std::chrono::milliseconds timeout) {
  HttpResponse out;
  beast::get_lowest_layer(*impl_->stream).expires_after(timeout);
  http::response_parser<http::string_body> parser;
  parser.body_limit(1ull << 32);
  beast::error_code ec;
  http::read(*impl_->stream, impl_->buffer, parser, ec);
  if (ec && !parser.is_header_done()) return out;
  out.status = static_cast<int>(parser.get().result_int());
  out.body = parser.get().body();
  for (const auto& f : parser.get()) out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  return out;
}

bool TlsConnection::closedByPeer(std::chrono::milliseconds timeout) {
  beast::get_lowest_layer(*impl_->stream).expires_after(timeout);
  char byte;
  beast::error_code ec;
  while (!ec) impl_->stream->read_some(net::buffer(&byte, 1), ec);
  return ec != beast::error::timeout;
}

int connectTcp(const std::string& host, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool tcpClosedByPeer(int fd, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[256];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n == 0) return false;
    if (n < 0) continue;
    ssize_t got = ::recv(fd, buf, sizeof buf, 0);
    if (got <= 0) return true;  // EOF or reset; data (a TLS alert) is read past
  }
}

}  // namespace sluice::server::testing
