#include "control/server/node_proxy.h"

#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <future>
#include <optional>
#include <thread>

#include "control/server/responses.h"
#include "control/server/tls_splice.h"

namespace sluice::server {

namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

constexpr auto kDialTimeout = std::chrono::seconds(10);

// Hop-by-hop and credential headers the proxy replaces.
bool dropHeader(const std::string& name) {
  return name == "host" || name == "authorization" || name == "content-length" ||
         name == "transfer-encoding" || name == "proxy-connection" || name == "keep-alive";
}

std::string buildRequest(const HttpRequest& req, const std::string& host, uint16_t port,
                         const std::string& target, const std::string& token) {
  std::string out = req.method + " " + target + " HTTP/1.1\r\n";
  out += "Host: " + host + ":" + std::to_string(port) + "\r\n";
  if (!token.empty()) out += "Authorization: Bearer " + token + "\r\n";
  bool upgrade = false;
  for (const auto& [k, v] : req.headers) {
    if (dropHeader(k)) continue;
    if (k == "upgrade") upgrade = true;
    out += k + ": " + v + "\r\n";
  }
  // One request per proxied connection: the splice ends with it.
  if (!upgrade) out += "Connection: close\r\n";
  if (!req.body.empty() || req.method == "POST") {
    out += "Content-Length: " + std::to_string(req.body.size()) + "\r\n";
  }
  out += "\r\n";
  out += req.body;
  return out;
}

// One proxied connection: the agent's TLS stream and the hijacked client
// socket, on one strand of the proxy's io_context.
struct Link {
  explicit Link(net::io_context& ioc, ssl::context& tls)
      : strand(net::make_strand(ioc)), agent(strand, tls), client(strand) {}
  net::strand<net::io_context::executor_type> strand;
  ssl::stream<tcp::socket> agent;
  net::local::stream_protocol::socket client;
};

}  // namespace

struct NodeProxy::Impl {
  NodeProxy::TokenFor tokenFor;
  net::io_context ioc;
  ssl::context tls{ssl::context::tls_client};
  std::optional<net::executor_work_guard<net::io_context::executor_type>> guard;
  std::thread thread;

  explicit Impl(NodeProxy::TokenFor t) : tokenFor(std::move(t)) {
    tls.set_verify_mode(ssl::verify_none);
    guard.emplace(net::make_work_guard(ioc));
    thread = std::thread([this] { ioc.run(); });
  }
  ~Impl() {
    guard.reset();
    ioc.stop();
    if (thread.joinable()) thread.join();
  }

  // Connects and handshakes with a deadline; the caller's thread waits.
  Result<std::shared_ptr<Link>> dial(const std::string& host, uint16_t port) {
    auto link = std::make_shared<Link>(ioc, tls);
    auto done = std::make_shared<std::promise<boost::system::error_code>>();
    auto result = done->get_future();
    auto resolver = std::make_shared<tcp::resolver>(link->strand);
    resolver->async_resolve(
        host, std::to_string(port),
        [link, done, resolver](boost::system::error_code ec, tcp::resolver::results_type eps) {
          if (ec) return done->set_value(ec);
          net::async_connect(link->agent.lowest_layer(), eps,
                             [link, done](boost::system::error_code cec, const tcp::endpoint&) {
                               if (cec) return done->set_value(cec);
                               boost::system::error_code opt;
                               link->agent.lowest_layer().set_option(tcp::no_delay(true), opt);
                               link->agent.async_handshake(
                                   ssl::stream_base::client,
                                   [done](boost::system::error_code hec) { done->set_value(hec); });
                             });
        });
    if (result.wait_for(kDialTimeout) != std::future_status::ready) {
      net::post(link->strand, [link] {
        boost::system::error_code ec;
        link->agent.lowest_layer().close(ec);
      });
      return Error::unavailable("dial tcp " + host + ":" + std::to_string(port) + ": i/o timeout");
    }
    auto ec = result.get();
    if (ec) return Error::unavailable("dial tcp " + host + ":" + std::to_string(port) + ": " + ec.message());
    return link;
  }
};

NodeProxy::NodeProxy(TokenFor tokenFor) : impl_(std::make_unique<Impl>(std::move(tokenFor))) {}

NodeProxy::~NodeProxy() = default;

void NodeProxy::forward(const HttpRequest& request, const std::string& nodeName, const std::string& host, uint16_t port,
                        const std::string& agentTarget, const std::shared_ptr<ResponseWriter>& writer) {
  auto link = impl_->dial(host, port);
  if (!link) {
    auto r = statusResponse(500, "InternalError", "error dialing backend: " + link.error().message);
    writer->send(r.status, {{"Content-Type", r.contentType}}, r.body);
    return;
  }
  auto fd = writer->hijack();
  if (!fd) {
    net::post((*link)->strand, [l = *link] {
      boost::system::error_code ec;
      l->agent.lowest_layer().close(ec);
    });
    return;
  }
  auto l = *link;
  std::string head = buildRequest(request, host, port, agentTarget, impl_->tokenFor(nodeName));
  net::post(l->strand, [l, clientFd = *fd, head = std::move(head)]() mutable {
    boost::system::error_code ec;
    l->client.assign(net::local::stream_protocol(), clientFd, ec);
    if (ec) {
      ::close(clientFd);
      l->agent.lowest_layer().close(ec);
      return;
    }
    auto text = std::make_shared<std::string>(std::move(head));
    net::async_write(l->agent, net::buffer(*text), [l, text](boost::system::error_code wec, size_t) {
      if (wec) {
        boost::system::error_code c;
        l->client.close(c);
        l->agent.lowest_layer().close(c);
        return;
      }
      // The agent's TLS stream is the splice's "TLS" side; its answer flows
      // down to the client socket, the client's bytes up to the agent.
      using Splice = TlsSplice<ssl::stream<tcp::socket>, net::local::stream_protocol::socket>;
      std::make_shared<Splice>(l->agent, l->client, std::string(), [l] {})->start();
    });
  });
}

}  // namespace sluice::server
