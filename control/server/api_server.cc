#include "control/server/api_server.h"

#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "control/api/object_meta.h"
#include "control/api/proto/core.pb.h"
#include "control/metrics/registry.h"
#include "control/server/credentials.h"
#include "control/server/kubernetes_endpoints.h"
#include "control/server/request_metrics.h"
#include "control/store/sqlite_store.h"
#include "dataplane/log.h"

namespace sluice::server {
namespace {

const char* const kBuiltinNamespaces[] = {"default", "kube-system", "kube-public", "kube-node-lease"};

Result<void> makeDirs(const std::string& dir) {
  std::string path;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    path = dir.substr(0, pos);
    if (path.empty()) continue;
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return Error::unavailable("creating " + path + ": " + std::strerror(errno));
    }
  }
  return okResult();
}

// The files the server keeps in its data directory (the store's, the
// credentials, the kubeconfig): owner-only, also when an older version or
// another umask created them wider.
const char* const kDataFiles[] = {"state.db", "state.db-wal", "state.db-shm", "state.db.lock", "ca.key", "ca.crt",
                                  "server.key", "server.crt", "token", "node-secret", "kubeconfig"};

// Makes an existing data directory 0700 and its files 0600, as etcd
// expects of its data directory. A shared directory (sticky bit: /tmp) or
// one owned by another user is left as it is, with a warning.
Result<void> tightenDataDir(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return Error::unavailable("stat " + dir + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return Error::invalid("data directory " + dir + " is not a directory");
  if ((st.st_mode & S_ISVTX) != 0 || st.st_uid != ::geteuid()) {
    log::warning("server", "data directory is shared or not ours; not changing its mode (use a directory of its own)",
                 {{"dir", dir}});
  } else if ((st.st_mode & 07777) != 0700 && ::chmod(dir.c_str(), 0700) != 0) {
    return Error::unavailable("chmod 0700 " + dir + ": " + std::strerror(errno));
  }
  for (const char* f : kDataFiles) {
    std::string path = dir + "/" + f;
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) != 0600 &&
        ::chmod(path.c_str(), 0600) != 0) {
      return Error::unavailable("chmod 0600 " + path + ": " + std::strerror(errno));
    }
  }
  return okResult();
}

std::string hostForUrl(const std::string& host) {
  if (host == "0.0.0.0" || host.empty()) return "127.0.0.1";
  if (host == "::") return "[::1]";
  if (host.find(':') != std::string::npos) return "[" + host + "]";
  return host;
}

// Warning header values: 299 - "<text>" with quotes escaped.
std::string warningHeader(const std::string& text) {
  std::string v = "299 - \"";
  for (char c : text) {
    if (c == '"' || c == '\\') v += '\\';
    v += c;
  }
  return v + "\"";
}

}  // namespace

Result<std::unique_ptr<ApiServer>> ApiServer::start(ApiServerOptions options) {
  if (auto r = makeDirs(options.dataDir); !r) return r.error();
  if (auto r = tightenDataDir(options.dataDir); !r) return r.error();
  auto store = store::SqliteStore::open(options.dataDir + "/state.db");
  if (!store) return store.error().wrap("opening " + options.dataDir + "/state.db");
  return start(std::move(options), std::move(*store));
}

Result<std::unique_ptr<ApiServer>> ApiServer::start(ApiServerOptions options, std::unique_ptr<store::Store> store) {
  if (auto r = makeDirs(options.dataDir); !r) return r.error();
  if (auto r = tightenDataDir(options.dataDir); !r) return r.error();
  std::unique_ptr<ApiServer> s(new ApiServer(std::move(options)));
  if (auto r = s->init(std::move(store)); !r) {
    s->stop();
    return r.error();
  }
  return s;
}

Result<void> ApiServer::init(std::unique_ptr<store::Store> store) {
  auto instrumented = std::make_unique<InstrumentedStore>(std::move(store));
  instrumentedStore_ = instrumented.get();
  store_ = std::move(instrumented);
  objects_ = std::make_unique<ObjectStore>(*store_);
  auto services = ServiceAllocations::create(options_.network);
  if (!services) return services.error();
  services_ = std::move(*services);
  if (auto r = restoreAllocations(); !r) return r;
  watches_ = std::make_unique<WatchManager>(*objects_, options_.watch);
  if (auto r = watches_->start(); !r) return r;
  rest_ = std::make_unique<RestHandler>(*objects_, *services_, *watches_);

  // Pods reach this server as the `kubernetes` Service (its ClusterIP) and,
  // once translated, at the advertise address: both must be in the cert.
  auto creds = loadOrCreateCredentials(options_.dataDir,
                                       {options_.listenHost, advertiseAddress(), services_->firstServiceIp()});
  if (!creds) return creds.error();
  token_ = creds->token;
  caCertPem_ = creds->caCertPem;
  authn_ = std::make_unique<Authenticator>(token_, creds->nodeSecret);
  nodeProxy_ = std::make_unique<NodeProxy>([this](const std::string& node) { return authn_->nodeToken(node); });
  rest_->setNodeProxy(nodeProxy_.get());

  HttpServerOptions http;
  http.host = options_.listenHost;
  http.port = options_.listenPort;
  http.certPem = creds->certPem;
  http.keyPem = creds->keyPem;
  http.workerThreads = options_.workerThreads;
  http.limits = options_.http;
  inflight_ = std::make_unique<InflightLimiter>(options_.maxRequestsInflight, options_.maxMutatingRequestsInflight);
  auto server = HttpServer::create(http, *this);
  if (!server) return server.error();
  http_ = std::move(*server);
  port_ = http_->port();
  discovery_ = std::make_unique<Discovery>(api::Registry::builtin(), advertiseAddress() + ":" + std::to_string(port_));
  if (auto r = bootstrap(); !r) return r;
  if (options_.writeKubeconfig) {
    if (auto r = writeKubeconfig(kubeconfigPath(), url(), caCertPem_, token_); !r) return r;
  }
  http_->start();
  if (options_.compactInterval.count() > 0) compactor_ = std::thread([this] { compactLoop(); });
  if (options_.kubernetesEndpointsInterval.count() > 0) {
    endpointsReconciler_ = std::thread([this] { kubernetesEndpointsLoop(); });
  }
  return okResult();
}

ApiServer::~ApiServer() { stop(); }

void ApiServer::stop() {
  {
    std::lock_guard lock(stopMu_);
    if (stopped_) return;
    stopped_ = true;
  }
  stopCv_.notify_all();
  if (compactor_.joinable()) compactor_.join();
  if (endpointsReconciler_.joinable()) endpointsReconciler_.join();
  // Streams first: they hold connections the HTTP server owns.
  if (watches_) watches_->stop();
  if (http_) {
    http_->stop();
    HttpServerStats st = http_->stats();
    // "connections: " is what operators (and the hardening e2e test) grep for.
    log::info(0, "server", "connections: totals at stop",
              {{"accepted", st.accepted}, {"evicted", st.evicted}, {"cap", st.maxConnections},
               {"refusedAtCap", st.rejectedAtCap}, {"timedOut", st.timedOut}, {"failedAccepts", st.acceptFailures},
               {"handlerExceptions", st.handlerExceptions}});
  }
  nodeProxy_.reset();  // closes proxied exec / port-forward connections
}

std::string ApiServer::advertiseAddress() const {
  if (!options_.advertiseAddress.empty()) return options_.advertiseAddress;
  const std::string& h = options_.listenHost;
  if (h.empty() || h == "0.0.0.0" || h == "::") return "127.0.0.1";
  return h;
}

std::string ApiServer::url() const { return "https://" + hostForUrl(options_.listenHost) + ":" + std::to_string(port_); }

Result<void> ApiServer::restoreAllocations() {
  const api::ResourceType* svcType = api::Registry::builtin().findKind("v1", "Service");
  auto all = store_->list(ObjectStore::prefix(*svcType, ""));
  if (!all) return all.error();
  for (const auto& kv : all->kvs) {
    auto o = objects_->decode(*svcType, kv);
    if (!o) return o.error();
    if (!services_->restore(static_cast<const api::Service&>(*o->msg))) {
      log::warning("server", "service holds an address or port already held by another service",
                   {{"service", api::objectKey(*o->msg)}});
    }
  }
  return okResult();
}

Result<void> ApiServer::bootstrap() {
  const api::Registry& reg = api::Registry::builtin();
  const api::ResourceType* nsType = reg.findKind("v1", "Namespace");
  for (const char* ns : kBuiltinNamespaces) {
    Response r = rest_->createObject(*nsType, "", {{"metadata", {{"name", ns}}}});
    if (r.status != 201 && r.status != 409) return Error::internal("creating namespace " + std::string(ns) + ": " + r.body);
  }
  if (auto r = ensureKubernetesService(); !r) return r;
  // Endpoints and EndpointSlice: this server's address and port.
  return reconcileKubernetesEndpoints(*objects_, *rest_, advertiseAddress(), port_);
}

Result<void> ApiServer::ensureKubernetesService() {
  const api::ResourceType* svcType = api::Registry::builtin().findKind("v1", "Service");
  auto existing = objects_->get(*svcType, "default", "kubernetes");
  if (!existing) return existing.error();
  if (!existing->has_value()) {
    api::Json svc = {{"metadata", {{"name", "kubernetes"}, {"labels", {{"component", "apiserver"}, {"provider", "kubernetes"}}}}},
                     {"spec",
                      {{"type", "ClusterIP"},
                       {"clusterIP", services_->firstServiceIp()},
                       {"ports", api::Json::array({{{"name", "https"}, {"port", 443}, {"protocol", "TCP"}, {"targetPort", port_}}})}}}};
    Response r = rest_->createObject(*svcType, "default", svc);
    if (r.status != 201 && r.status != 409) return Error::internal("creating service default/kubernetes: " + r.body);
  } else {
    // The listen port may have changed since the Service was created.
    auto& s = static_cast<api::Service&>(*(*existing)->msg);
    if (s.spec().ports_size() == 1 && s.spec().ports(0).targetport().intval() != port_) {
      s.mutable_spec()->mutable_ports(0)->mutable_targetport()->set_intval(port_);
      if (auto r = objects_->update(*svcType, s, (*existing)->modRevision); !r) return r.error();
    }
  }
  return okResult();
}

void ApiServer::kubernetesEndpointsLoop() {
  std::unique_lock lock(stopMu_);
  while (!stopped_) {
    stopCv_.wait_for(lock, options_.kubernetesEndpointsInterval, [this] { return stopped_; });
    if (stopped_) break;
    lock.unlock();
    // The Service too: kube-apiserver's controller recreates a deleted one.
    auto r = ensureKubernetesService();
    if (r) r = reconcileKubernetesEndpoints(*objects_, *rest_, advertiseAddress(), port_);
    // A lost compare-and-swap is someone's concurrent edit: the next pass.
    if (!r && r.error().code != ErrorCode::kAborted) {
      log::warning(log::Limit{"server/kubernetes-endpoints"}, "server", "reconciling default/kubernetes endpoints failed",
                   {{"err", r.error().message}});
    }
    lock.lock();
  }
}

void ApiServer::compactLoop() {
  int64_t previous = 0;
  std::unique_lock lock(stopMu_);
  while (!stopped_) {
    stopCv_.wait_for(lock, options_.compactInterval, [this] { return stopped_; });
    if (stopped_) break;
    lock.unlock();
    // Keep one interval of history: compact to what was current one tick ago.
    auto compacted = store_->compactedRevision();
    if (previous > 0 && compacted && previous > *compacted) {
      if (auto r = store_->compact(previous); !r) {
        log::error("server", "compaction failed", {{"revision", previous}, {"err", r.error().message}});
      }
    }
    auto cur = store_->currentRevision();
    if (cur) previous = *cur;
    lock.lock();
  }
}

std::optional<Response> ApiServer::authorizeRequest(const HttpRequest& req, const ResourceRequest& rr) {
  auto user = authn_->authenticate(req.header("authorization"));
  if (!user) return statusResponse(401, "Unauthorized", "Unauthorized");
  if (user->isMaster()) return std::nullopt;
  const bool watch = req.queryParam("watch") == "true" || req.queryParam("watch") == "1";
  RequestAttributes attrs{requestVerb(req.method, !rr.name.empty(), watch), rr.type, rr.ns, rr.name, rr.subresource};
  if (attrs.verb == "create" && attrs.name.empty()) {
    // A create names its object in the body: the node rules need the name.
    auto body = api::Json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_object()) attrs.name = api::stringField(body.value("metadata", api::Json::object()), "name");
  }
  const api::ResourceType* pods = api::Registry::builtin().find("", "v1", "pods");
  auto podNode = [&](const std::string& ns, const std::string& name) -> std::optional<std::string> {
    auto pod = objects_->get(*pods, ns, name);
    if (!pod || !pod->has_value()) return std::nullopt;
    const api::Json j = api::encodeJson(*(*pod)->msg);
    const api::Json* node = api::findPath(j, {"spec", "nodeName"});
    return node != nullptr && node->is_string() ? node->get<std::string>() : std::string();
  };
  if (auto why = authorize(*user, attrs, podNode)) return statusResponse(403, "Forbidden", *why);
  return std::nullopt;
}

std::optional<Response> ApiServer::route(const HttpRequest& req, const std::shared_ptr<ResponseWriter>& writer) {
  const std::string& path = req.path;
  if (path == "/healthz" || path == "/livez" || path == "/readyz") {
    Response r;
    r.contentType = "text/plain; charset=utf-8";
    r.body = "ok";
    return r;
  }
  bool publicPath = path == "/version" || path == "/version/";
  std::optional<UserInfo> user;
  if (!publicPath) {
    user = authn_->authenticate(req.header("authorization"));
    if (!user) return statusResponse(401, "Unauthorized", "Unauthorized");
  }
  // On the secure port behind the token, as kube-apiserver serves it
  // (`kubectl get --raw /metrics`; Prometheus scrapes with a bearer token).
  // Admins only: a node's identity reads no cluster-wide metrics (as RBAC
  // grants system:nodes no /metrics).
  if (path == "/metrics") {
    if (!user->isMaster()) {
      return statusResponse(403, "Forbidden", "user \"" + user->name + "\" cannot get path \"/metrics\"");
    }
    Response r;
    r.contentType = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics::serialize({metrics::collect(metrics::apiServer()), [this] { return collectMetrics(); }});
    return r;
  }
  // Discovery and OpenAPI: any authenticated client (system:discovery).
  if (auto r = discovery_->handle(req)) return r;

  const std::vector<std::string> seg = req.pathSegments();
  auto notFoundPath = [] { return statusResponse(404, "NotFound", "the server could not find the requested resource"); };
  std::string group;
  std::string version;
  size_t i = 0;
  if (seg.size() >= 2 && seg[0] == "api") {
    version = seg[1];
    i = 2;
  } else if (seg.size() >= 3 && seg[0] == "apis") {
    group = seg[1];
    version = seg[2];
    i = 3;
  } else {
    return notFoundPath();
  }
  std::vector<std::string> rest(seg.begin() + static_cast<long>(i), seg.end());
  if (rest.empty()) return notFoundPath();
  ResourceRequest rr;
  rr.http = &req;
  std::string resource;
  if (rest[0] == "namespaces" && rest.size() >= 3 && rest[2] != "status" && rest[2] != "finalize") {
    if (rest.size() > 5) return notFoundPath();
    rr.ns = rest[1];
    resource = rest[2];
    if (rest.size() >= 4) rr.name = rest[3];
    if (rest.size() >= 5) rr.subresource = rest[4];
  } else {
    if (rest.size() > 3) return notFoundPath();
    resource = rest[0];
    if (rest.size() >= 2) rr.name = rest[1];
    if (rest.size() >= 3) rr.subresource = rest[2];
  }
  rr.type = api::Registry::builtin().find(group, version, resource);
  if (rr.type == nullptr || (!rr.type->namespaced && !rr.ns.empty())) return notFoundPath();
  if (auto denied = authorizeRequest(req, rr)) return denied;
  return rest_->handle(rr, writer);
}

Admission ApiServer::admit(const HttpRequest& req) {
  const std::string& path = req.path;
  // Probes need no token and take no slot (kube-apiserver's exempt
  // "probes" flow schema).
  if (path == "/healthz" || path == "/livez" || path == "/readyz") return {};
  bool publicPath = path == "/version" || path == "/version/";
  if (!publicPath && !authn_->authenticate(req.header("authorization"))) {
    recordRequest(requestInfo(req), 401, {});
    Response r = statusResponse(401, "Unauthorized", "Unauthorized");
    Admission a;
    a.admitted = false;
    a.status = r.status;
    a.headers = {{"Content-Type", r.contentType}, {"Cache-Control", "no-cache, private"}};
    a.body = std::move(r.body);
    return a;
  }
  if (isLongRunning(req)) return {};
  auto slot = inflight_->tryAcquire(isMutating(req));
  if (!slot) {
    recordRequest(requestInfo(req), 429, {});
    return tooManyRequests();
  }
  Admission a;
  a.ticket = std::move(slot);
  return a;
}

void ApiServer::handle(HttpRequest request, std::shared_ptr<ResponseWriter> writer) {
  auto started = std::chrono::steady_clock::now();
  std::optional<Response> r = route(request, writer);
  if (r) {
    Headers headers = {{"Content-Type", r->contentType}, {"Cache-Control", "no-cache, private"}};
    for (const auto& w : r->warnings) headers.emplace_back("Warning", warningHeader(w));
    writer->send(r->status, std::move(headers), std::move(r->body));
  }
  const RequestInfo info = requestInfo(request);
  // Streamed answers (lists, watches) and upgrades (exec, port-forward)
  // went out through the writer: a 200 or a 101 once under way.
  const int code = r ? r->status : info.verb == "CONNECT" ? 101 : 200;
  recordRequest(info, code, std::chrono::steady_clock::now() - started);
  // kube-apiserver's httplog line, at the same verbosity (-v 3).
  if (log::enabled(3)) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
    log::info(3, "server", "HTTP",
              {{"verb", info.verb}, {"URI", request.target}, {"status", code},
               {"latency", std::to_string(us / 1000.0) + "ms"}});
  }
}

std::vector<prometheus::MetricFamily> ApiServer::collectMetrics() {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  prometheus::MetricFamily inflight =
      metrics::family("apiserver_current_inflight_requests",
                      "Maximal number of currently used inflight request limit of this apiserver per request kind.",
                      MetricType::Gauge);
  metrics::sample(inflight, inflight_->inUse(false), {{"request_kind", "readOnly"}});
  metrics::sample(inflight, inflight_->inUse(true), {{"request_kind", "mutating"}});
  out.push_back(std::move(inflight));
  prometheus::MetricFamily watchers = metrics::family(
      "apiserver_registered_watchers", "Number of currently registered watchers for a given resources",
      MetricType::Gauge);
  prometheus::MetricFamily longRunning = metrics::family(
      "apiserver_longrunning_requests",
      "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope "
      "and component.",
      MetricType::Gauge);
  for (const auto& [type, n] : watches_->streamsByType()) {
    metrics::sample(watchers, static_cast<double>(n),
                    {{"group", type->group}, {"version", type->version}, {"kind", type->kind}});
    metrics::sample(longRunning, static_cast<double>(n),
                    {{"verb", "WATCH"}, {"group", type->group}, {"version", type->version},
                     {"resource", type->resource}, {"subresource", ""}, {"scope", "cluster"},
                     {"component", "apiserver"}});
  }
  out.push_back(std::move(watchers));
  out.push_back(std::move(longRunning));
  for (auto& f : instrumentedStore_->collectObjectCounts()) out.push_back(std::move(f));
  return out;
}

}  // namespace sluice::server
