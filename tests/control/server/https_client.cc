#include "tests/control/server/https_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

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

}  // namespace sluice::server::testing
