// kube-apiserver's RequestInfo as sluice derives it for its metrics labels:
// the verb, resource, subresource and scope a dashboard groups by.
#include "control/server/request_metrics.h"

#include <gtest/gtest.h>

namespace sluice::server {
namespace {

HttpRequest request(const std::string& method, const std::string& path,
                    const std::string& query = "") {
  HttpRequest r;
  r.method = method;
  r.path = path;
  r.target = path + (query.empty() ? "" : "?" + query);
  if (query == "watch=true") r.query = {{"watch", "true"}};
  return r;
}

struct Case {
  const char* scenario;
  HttpRequest req;
  const char* verb;
  const char* group;
  const char* resource;
  const char* subresource;
  const char* scope;
  bool longRunning;
};

TEST(RequestInfoTest, VerbsResourcesAndScopesAsKubeApiserverReportsThem) {
  HttpRequest apply = request("PATCH", "/apis/apps/v1/namespaces/default/deployments/web");
  apply.headers = {{"content-type", "application/apply-patch+yaml"}};
  const Case cases[] = {
      {"a list of one namespace's pods", request("GET", "/api/v1/namespaces/default/pods"), "LIST",
       "", "pods", "", "namespace", false},
      {"a get of one deployment",
       request("GET", "/apis/apps/v1/namespaces/default/deployments/web"), "GET", "apps",
       "deployments", "", "resource", false},
      {"a watch over every namespace", request("GET", "/api/v1/pods", "watch=true"), "WATCH", "",
       "pods", "", "cluster", true},
      {"kubectl scale", request("PATCH", "/apis/apps/v1/namespaces/default/deployments/web/scale"),
       "PATCH", "apps", "deployments", "scale", "resource", false},
      {"server-side apply", apply, "APPLY", "apps", "deployments", "", "resource", false},
      {"a delete of a collection", request("DELETE", "/api/v1/namespaces/default/pods"),
       "DELETECOLLECTION", "", "pods", "", "namespace", false},
      {"kubectl exec", request("POST", "/api/v1/namespaces/default/pods/web/exec"), "CONNECT", "",
       "pods", "exec", "resource", true},
      {"a namespace's status", request("PUT", "/api/v1/namespaces/default/status"), "PUT", "",
       "namespaces", "status", "resource", false},
      {"a probe of the server", request("GET", "/readyz"), "GET", "", "", "/readyz", "", false},
      {"a path nobody serves", request("GET", "/random/junk"), "GET", "", "", "other", "", false},
  };
  for (const Case& c : cases) {
    RequestInfo info = requestInfo(c.req);
    EXPECT_EQ(info.verb, c.verb) << c.scenario;
    EXPECT_EQ(info.group, c.group) << c.scenario;
    EXPECT_EQ(info.resource, c.resource) << c.scenario;
    EXPECT_EQ(info.subresource, c.subresource) << c.scenario;
    EXPECT_EQ(info.scope, c.scope) << c.scenario;
    EXPECT_EQ(info.longRunning, c.longRunning) << c.scenario;
  }
}

}  // namespace
}  // namespace sluice::server
