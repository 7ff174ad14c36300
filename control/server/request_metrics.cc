#include "control/server/request_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include <vector>

#include "control/metrics/registry.h"

namespace sluice::server {

namespace {

// Paths outside the resource API that are reported by name; anything else
// is "other", so a client probing random paths cannot add series.
bool knownNonResourcePath(const std::string& p) {
  for (const char* k : {"/healthz", "/livez", "/readyz", "/metrics", "/version", "/api", "/apis",
                        "/openapi/v2", "/openapi/v3"}) {
    if (p == k) return true;
  }
  return p.rfind("/apis/", 0) == 0 || p.rfind("/api/", 0) == 0 || p.rfind("/openapi/", 0) == 0;
}

struct Families {
  prometheus::Family<prometheus::Counter>& total;
  prometheus::Family<prometheus::Histogram>& duration;
};

Families& families() {
  static Families f{
      prometheus::BuildCounter()
          .Name("apiserver_request_total")
          .Help("Counter of apiserver requests broken out for each verb, group, version, resource, "
                "scope, "
                "component, and HTTP response code.")
          .Register(metrics::apiServer()),
      prometheus::BuildHistogram()
          .Name("apiserver_request_duration_seconds")
          .Help("Response latency distribution in seconds for each verb, group, version, resource, "
                "subresource, "
                "scope and component.")
          .Register(metrics::apiServer()),
  };
  return f;
}

// kube-apiserver's buckets for apiserver_request_duration_seconds.
const prometheus::Histogram::BucketBoundaries kDurationBuckets = {
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2,
    3,     4,     5,    6,   8,   10,  15,  20,  30,  45,   60};

}  // namespace

RequestInfo requestInfo(const HttpRequest& req) {
  RequestInfo info;
  const std::vector<std::string> seg = req.pathSegments();
  size_t i = 0;
  if (seg.size() >= 3 && seg[0] == "api") {
    info.version = seg[1];
    i = 2;
  } else if (seg.size() >= 4 && seg[0] == "apis") {
    info.group = seg[1];
    info.version = seg[2];
    i = 3;
  } else {
    info.verb = req.method;
    info.subresource = knownNonResourcePath(req.path) ? req.path : "other";
    info.scope = "";
    return info;
  }
  std::vector<std::string> rest(seg.begin() + static_cast<long>(i), seg.end());
  std::string ns, name;
  if (rest[0] == "namespaces" && rest.size() >= 3 && rest[2] != "status" && rest[2] != "finalize") {
    ns = rest[1];
    info.resource = rest[2];
    if (rest.size() >= 4) name = rest[3];
    if (rest.size() >= 5) info.subresource = rest[4];
  } else {
    info.resource = rest[0];
    if (rest.size() >= 2) name = rest[1];
    if (rest.size() >= 3) info.subresource = rest[2];
  }
  info.scope = !name.empty() ? "resource" : !ns.empty() ? "namespace" : "cluster";
  const std::string& m = req.method;
  const std::string watch = req.queryParam("watch");
  const std::string& sub = info.subresource;
  if (sub == "exec" || sub == "attach" || sub == "portforward" || sub == "proxy") {
    info.verb = "CONNECT";
  } else if ((m == "GET" || m == "HEAD") && (watch == "true" || watch == "1")) {
    info.verb = "WATCH";
  } else if (m == "GET" || m == "HEAD") {
    info.verb = name.empty() ? "LIST" : "GET";
  } else if (m == "DELETE") {
    info.verb = name.empty() ? "DELETECOLLECTION" : "DELETE";
  } else if (m == "PATCH" && req.header("content-type").rfind("application/apply-patch", 0) == 0) {
    info.verb = "APPLY";
  } else {
    info.verb = m;
  }
  info.longRunning = info.verb == "WATCH" || info.verb == "CONNECT" || sub == "log";
  return info;
}

void recordRequest(const RequestInfo& info, int code, std::chrono::steady_clock::duration took) {
  prometheus::Labels labels = {{"verb", info.verb},
                               {"group", info.group},
                               {"version", info.version},
                               {"resource", info.resource},
                               {"subresource", info.subresource},
                               {"scope", info.scope},
                               {"component", "apiserver"}};
  if (!info.longRunning) {
    families()
        .duration.Add(labels, kDurationBuckets)
        .Observe(std::chrono::duration<double>(took).count());
  }
  labels["code"] = std::to_string(code);
  families().total.Add(labels).Increment();
}

}  // namespace sluice::server
