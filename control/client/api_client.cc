#include "control/client/api_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>


#include <cerrno>
#include <deque>
#include <map>
#include <sys/socket.h>

namespace sluice::client {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using Stream = beast::ssl_stream<beast::tcp_stream>;

namespace resources {
const Resource kNamespaces{"", "v1", "namespaces", false};
const Resource kNodes{"", "v1", "nodes", false};
const Resource kPods{"", "v1", "pods", true};
const Resource kServices{"", "v1", "services", true};
const Resource kEndpoints{"", "v1", "endpoints", true};
const Resource kEvents{"", "v1", "events", true};
const Resource kReplicaSets{"apps", "v1", "replicasets", true};
const Resource kDeployments{"apps", "v1", "deployments", true};
const Resource kEndpointSlices{"discovery.k8s.io", "v1", "endpointslices", true};
const Resource kLeases{"coordination.k8s.io", "v1", "leases", true};
const Resource kHorizontalPodAutoscalers{"autoscaling", "v2", "horizontalpodautoscalers", true};
}  // namespace resources

namespace {

// Idle pooled connections older than this are not reused (the server closes
// idle connections after 300 s).
constexpr auto kMaxIdle = std::chrono::seconds(60);

std::string urlEncode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

}  // namespace

std::string Resource::path(std::string_view ns, std::string_view name, std::string_view sub) const {
  std::string p = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  if (namespaced && !ns.empty()) p += "/namespaces/" + std::string(ns);
  p += "/" + plural;
  if (!name.empty()) p += "/" + std::string(name);
  if (!sub.empty()) p += "/" + std::string(sub);
  return p;
}

std::string ListOptions::query() const {
  std::string q;
  auto add = [&](const char* k, const std::string& v) {
    if (v.empty()) return;
    q += q.empty() ? "?" : "&";
    q += k;
    q += "=";
    q += urlEncode(v);
  };
  add("labelSelector", labelSelector);
  add("fieldSelector", fieldSelector);
  if (limit > 0) add("limit", std::to_string(limit));
  add("continue", continueToken);
  add("resourceVersion", resourceVersion);
  return q;
}

struct ApiClient::Impl {
  Kubeconfig config;
  std::string userAgent;
  net::io_context ioc;
  ssl::context tls{ssl::context::tls_client};
  std::string hostHeader;

  struct Idle {
    std::unique_ptr<Stream> stream;
    std::chrono::steady_clock::time_point since;
  };
  std::mutex mu;
  std::deque<Idle> idle;
  // Sockets of running watches by their stop flag, for cancelWatch().
  std::mutex watchMu;
  std::multimap<const std::atomic<bool>*, int> watchFds;

  Result<std::unique_ptr<Stream>> connect() {
    try {
      auto stream = std::make_unique<Stream>(ioc, tls);
      tcp::resolver resolver(ioc);
      auto& lowest = beast::get_lowest_layer(*stream);
      lowest.expires_after(std::chrono::seconds(10));
      lowest.connect(resolver.resolve(config.host, std::to_string(config.port)));
      lowest.socket().set_option(tcp::no_delay(true));
      if (!SSL_set_tlsext_host_name(stream->native_handle(), config.host.c_str())) {
        return Error{ErrorCode::kUnavailable, "TLS: cannot set SNI host " + config.host};
      }
      if (!config.insecureSkipVerify) {
        stream->set_verify_callback(ssl::host_name_verification(config.host));
      }
      stream->handshake(ssl::stream_base::client);
      lowest.expires_never();
      return stream;
    } catch (const std::exception& e) {
      return Error{ErrorCode::kUnavailable, "connecting to " + config.url() + ": " + e.what()};
    }
  }

  // A pooled connection (reused = true) or a new one.
  Result<std::unique_ptr<Stream>> take(bool& reused) {
    {
      std::lock_guard lock(mu);
      auto now = std::chrono::steady_clock::now();
      while (!idle.empty()) {
        Idle i = std::move(idle.back());
        idle.pop_back();
        if (now - i.since < kMaxIdle) {
          reused = true;
          return std::move(i.stream);
        }
      }
    }
    reused = false;
    return connect();
  }

  void give(std::unique_ptr<Stream> s) {
    std::lock_guard lock(mu);
    if (idle.size() < 32) idle.push_back(Idle{std::move(s), std::chrono::steady_clock::now()});
  }

  template <class Req>
  void decorate(Req& req, const std::string& accept) {
    req.set(http::field::host, hostHeader);
    req.set(http::field::user_agent, userAgent);
    if (!config.token.empty()) req.set(http::field::authorization, "Bearer " + config.token);
    req.set(http::field::accept, accept);
  }
};

ApiClient::ApiClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ApiClient::~ApiClient() = default;

const Kubeconfig& ApiClient::config() const { return impl_->config; }

Result<std::unique_ptr<ApiClient>> ApiClient::create(Kubeconfig config, std::string userAgent) {
  auto impl = std::make_unique<Impl>();
  try {
    if (!config.caPem.empty()) {
      impl->tls.add_certificate_authority(net::buffer(config.caPem));
    } else {
      impl->tls.set_default_verify_paths();
    }
    impl->tls.set_verify_mode(config.insecureSkipVerify ? ssl::verify_none : ssl::verify_peer);
    if (!config.clientCertPem.empty()) {
      impl->tls.use_certificate_chain(net::buffer(config.clientCertPem));
      impl->tls.use_private_key(net::buffer(config.clientKeyPem), ssl::context::pem);
    }
  } catch (const std::exception& e) {
    return Error{ErrorCode::kInvalidArgument, std::string("TLS material in kubeconfig: ") + e.what()};
  }
  impl->hostHeader = config.host.find(':') != std::string::npos ? "[" + config.host + "]" : config.host;
  impl->hostHeader += ":" + std::to_string(config.port);
  impl->config = std::move(config);
  impl->userAgent = std::move(userAgent);
  return std::unique_ptr<ApiClient>(new ApiClient(std::move(impl)));
}

Result<HttpResult> ApiClient::request(const std::string& method, const std::string& target, const std::string& body,
                                      const std::string& contentType, const std::string& accept) {
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  impl_->decorate(req, accept);
  req.keep_alive(true);
  if (!body.empty()) {
    req.set(http::field::content_type, contentType);
    req.body() = body;
  }
  req.prepare_payload();
  for (int attempt = 0;; ++attempt) {
    bool reused = false;
    auto stream = impl_->take(reused);
    if (!stream) return stream.error();
    bool gotResponse = false;
    try {
      auto& lowest = beast::get_lowest_layer(**stream);
      lowest.expires_after(std::chrono::seconds(120));
      http::write(**stream, req);
      beast::flat_buffer buffer;
      http::response_parser<http::string_body> parser;
      parser.body_limit(1ull << 34);
      http::read_header(**stream, buffer, parser);
      gotResponse = true;
      http::read(**stream, buffer, parser);
      lowest.expires_never();
      HttpResult out;
      out.status = static_cast<int>(parser.get().result_int());
      out.body = std::move(parser.get().body());
      for (const auto& f : parser.get()) {
        out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
      }
      if (parser.get().keep_alive()) impl_->give(std::move(*stream));
      return out;
    } catch (const std::exception& e) {
      // A kept-alive connection the server already closed fails before any
      // response byte: retry once on a fresh connection.
      if (reused && !gotResponse && attempt == 0) continue;
      return Error{ErrorCode::kUnavailable, method + " " + target + ": " + e.what()};
    }
  }
}

Error statusError(int httpStatus, const std::string& body, const std::string& what) {
  std::string message;
  std::string reason;
  auto j = Json::parse(body, nullptr, false);
  if (j.is_object()) {
    message = j.value("message", "");
    reason = j.value("reason", "");
  }
  if (message.empty()) message = body.substr(0, 200);
  message = what + ": " + std::to_string(httpStatus) + " " + message;
  ErrorCode code = ErrorCode::kInternal;
  switch (httpStatus) {
    case 404: code = ErrorCode::kNotFound; break;
    case 409: code = reason == "AlreadyExists" ? ErrorCode::kAlreadyExists : ErrorCode::kAborted; break;
    case 410: code = ErrorCode::kOutOfRange; break;
    case 400:
    case 415:
    case 422: code = ErrorCode::kInvalidArgument; break;
    case 401:
    case 403: code = ErrorCode::kFailedPrecondition; break;
    case 429: code = ErrorCode::kUnavailable; break;
    default: code = httpStatus >= 500 ? ErrorCode::kUnavailable : ErrorCode::kInternal;
  }
  return Error{code, message};
}

Result<Json> ApiClient::call(const std::string& method, const std::string& target, const Json* body,
                             const std::string& contentType) {
  auto res = request(method, target, body != nullptr ? body->dump() : std::string(), contentType);
  if (!res) return res.error();
  if (res->status < 200 || res->status >= 300) return statusError(res->status, res->body, method + " " + target);
  if (res->body.empty()) return Json::object();
  auto j = Json::parse(res->body, nullptr, false);
  if (j.is_discarded()) return Error{ErrorCode::kInternal, method + " " + target + ": answer is not JSON"};
  return j;
}

Result<Json> ApiClient::get(const Resource& r, std::string_view ns, std::string_view name) {
  return call("GET", r.path(ns, name));
}

Result<Json> ApiClient::list(const Resource& r, std::string_view ns, const ListOptions& opts) {
  return call("GET", r.path(ns) + opts.query());
}

Result<Json> ApiClient::create(const Resource& r, std::string_view ns, const Json& obj) {
  return call("POST", r.path(ns), &obj);
}

Result<Json> ApiClient::update(const Resource& r, std::string_view ns, const Json& obj) {
  return call("PUT", r.path(ns, nameOf(obj)), &obj);
}

Result<Json> ApiClient::updateStatus(const Resource& r, std::string_view ns, const Json& obj) {
  return call("PUT", r.path(ns, nameOf(obj), "status"), &obj);
}

Result<Json> ApiClient::patch(const Resource& r, std::string_view ns, std::string_view name, const Json& patch,
                              const std::string& patchType, std::string_view sub) {
  return call("PATCH", r.path(ns, name, sub), &patch, patchType);
}

Result<Json> ApiClient::remove(const Resource& r, std::string_view ns, std::string_view name,
                               const Json& deleteOptions) {
  const Json* body = deleteOptions.empty() ? nullptr : &deleteOptions;
  return call("DELETE", r.path(ns, name), body);
}

Result<void> ApiClient::watch(const Resource& r, std::string_view ns, const ListOptions& opts,
                              const WatchHandler& onEvent, const std::atomic<bool>* stop,
                              std::chrono::seconds timeout) {
  std::string target = r.path(ns) + opts.query();
  target += target.find('?') == std::string::npos ? "?" : "&";
  target += "watch=1&allowWatchBookmarks=true&timeoutSeconds=" + std::to_string(timeout.count());
  auto stream = impl_->connect();
  if (!stream) return stream.error();
  // Registered while the socket is open, so cancelWatch() can end a read
  // that is blocked; unregistered before the stream (and its fd) goes.
  int watchFd = beast::get_lowest_layer(**stream).socket().native_handle();
  {
    std::lock_guard lock(impl_->watchMu);
    if (stop != nullptr && stop->load()) return {};
    impl_->watchFds.emplace(stop, watchFd);
  }
  struct Unregister {
    Impl* impl;
    const std::atomic<bool>* stop;
    int fd;
    ~Unregister() {
      std::lock_guard lock(impl->watchMu);
      auto [b, e] = impl->watchFds.equal_range(stop);
      for (auto it = b; it != e; ++it) {
        if (it->second == fd) {
          impl->watchFds.erase(it);
          break;
        }
      }
    }
  } unregister{impl_.get(), stop, watchFd};
  try {
    http::request<http::empty_body> req{http::verb::get, target, 11};
    impl_->decorate(req, "application/json");
    http::write(**stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    auto& lowest = beast::get_lowest_layer(**stream);
    lowest.expires_after(std::chrono::seconds(30));
    http::read_header(**stream, buffer, parser);
    int status = static_cast<int>(parser.get().result_int());
    std::string pending;
    char chunk[16384];
    if (status != 200) {
      std::string body;
      while (!parser.is_done()) {
        parser.get().body().data = chunk;
        parser.get().body().size = sizeof chunk;
        beast::error_code ec;
        http::read_some(**stream, buffer, parser, ec);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) break;
        body.append(chunk, sizeof chunk - parser.get().body().size);
      }
      return statusError(status, body, "watch " + target);
    }
    // Block in the read: cancelWatch() shuts the socket down to end it
    // early, and the server ends the stream at timeoutSeconds (the expiry
    // below only guards against a server that does not). Never poll the
    // socket to decide whether to read: the TLS stream may already hold a
    // whole event read from the socket (in asio's engine, which neither
    // `buffer` nor SSL_pending() sees), and a poll would then wait for the
    // *next* write while this one sat unread — an informer a write behind
    // for as long as nothing else changed.
    lowest.expires_at(std::chrono::steady_clock::now() + timeout + std::chrono::seconds(30));
    while (!parser.is_done()) {
      if (stop != nullptr && stop->load()) return {};
      parser.get().body().data = chunk;
      parser.get().body().size = sizeof chunk;
      beast::error_code ec;
      http::read_some(**stream, buffer, parser, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec == http::error::end_of_stream || ec == net::error::eof || ec == ssl::error::stream_truncated) return {};
      // Shut down by cancelWatch(): a stop, not a failure.
      if (ec && stop != nullptr && stop->load()) return {};
      if (ec == beast::error::timeout) return {};  // the server overstayed timeoutSeconds: re-watch
      if (ec) return Error{ErrorCode::kUnavailable, "watch " + target + ": " + ec.message()};
      pending.append(chunk, sizeof chunk - parser.get().body().size);
      size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        auto j = Json::parse(std::string_view(pending).substr(0, nl), nullptr, false);
        pending.erase(0, nl + 1);
        if (!j.is_object()) continue;
        std::string type = j.value("type", "");
        if (type == "ERROR") {
          const Json& o = j["object"];
          int code = o.is_object() ? o.value("code", 500) : 500;
          return statusError(code, o.dump(), "watch " + target);
        }
        if (!onEvent(type, j["object"])) return {};
      }
    }
    return {};
  } catch (const std::exception& e) {
    return Error{ErrorCode::kUnavailable, "watch " + target + ": " + e.what()};
  }
}

void ApiClient::cancelWatch(const std::atomic<bool>* stop) {
  std::lock_guard lock(impl_->watchMu);
  auto [b, e] = impl_->watchFds.equal_range(stop);
  for (auto it = b; it != e; ++it) ::shutdown(it->second, SHUT_RDWR);
}

std::string namespaceOf(const Json& obj) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return "";
  return m->value("namespace", "");
}

std::string nameOf(const Json& obj) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return "";
  return m->value("name", "");
}

std::string uidOf(const Json& obj) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return "";
  return m->value("uid", "");
}

std::string keyOf(const Json& obj) {
  std::string ns = namespaceOf(obj);
  return ns.empty() ? nameOf(obj) : ns + "/" + nameOf(obj);
}

const Json* controllerRef(const Json& obj) {
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return nullptr;
  auto refs = m->find("ownerReferences");
  if (refs == m->end() || !refs->is_array()) return nullptr;
  for (const auto& ref : *refs) {
    if (ref.value("controller", false)) return &ref;
  }
  return nullptr;
}

}  // namespace sluice::client
