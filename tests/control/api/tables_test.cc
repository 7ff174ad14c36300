#include "control/api/tables.h"
#include "control/util/rfc3339.h"

#include <gtest/gtest.h>

#include "control/api/proto/apps.pb.h"
#include "control/api/proto/core.pb.h"
#include "control/api/time_util.h"
#include "tests/control/api/test_util.h"

namespace sluice::api {
namespace {

using testing::yaml;

std::vector<Json> row(const std::string& kind, const google::protobuf::Message& m) {
  return tablePrinterFor(kind).row(m, *util::parseRfc3339("2024-01-01T01:00:00Z"));
}

// Ages are printed as kubectl prints them.
TEST(TablesTest, HumanDurations) {
  using std::chrono::seconds;
  EXPECT_EQ(humanDuration(seconds(5)), "5s");
  EXPECT_EQ(humanDuration(seconds(119)), "119s");
  EXPECT_EQ(humanDuration(seconds(200)), "3m20s");
  EXPECT_EQ(humanDuration(seconds(600)), "10m");
  EXPECT_EQ(humanDuration(seconds(4 * 3600 + 60 * 5)), "4h5m");
  EXPECT_EQ(humanDuration(seconds(30 * 3600)), "30h");
  EXPECT_EQ(humanDuration(seconds(3 * 86400 + 3600)), "3d1h");
  EXPECT_EQ(humanDuration(seconds(-5)), "<invalid>");
}

// A running pod with a restart, and a terminating one.
TEST(TablesTest, PodRows) {
  Pod p;
  ASSERT_OK(decodeJson(yaml(R"(
metadata: {name: web, creationTimestamp: "2024-01-01T00:00:00Z"}
spec: {nodeName: n1, containers: [{name: a}, {name: b}]}
status:
  phase: Running
  podIP: 10.0.0.5
  containerStatuses:
  - {name: a, ready: true, restartCount: 2, state: {running: {}}, lastState: {terminated: {exitCode: 1, finishedAt: "2024-01-01T00:55:00Z"}}}
  - {name: b, ready: false, restartCount: 0, state: {waiting: {reason: CrashLoopBackOff}}}
)"), p, nullptr));
  EXPECT_EQ(Json(row("Pod", p)), yaml(R"j([web, 1/2, CrashLoopBackOff, "2 (5m ago)", 60m, 10.0.0.5, n1, <none>, <none>])j"));
  p.mutable_metadata()->set_deletiontimestamp("2024-01-01T00:59:00Z");
  EXPECT_EQ(row("Pod", p)[2], "Terminating");
  Pod init;
  ASSERT_OK(decodeJson(yaml(R"(
metadata: {name: i}
spec: {initContainers: [{name: x}, {name: y}], containers: [{name: a}]}
status: {phase: Pending, initContainerStatuses: [{name: x, state: {terminated: {exitCode: 0}}}, {name: y, state: {running: {}}}]}
)"), init, nullptr));
  EXPECT_EQ(row("Pod", init)[2], "Init:1/2");
}

// Services: the PORT(S) and EXTERNAL-IP cells for each type.
TEST(TablesTest, ServiceRows) {
  Service lb;
  ASSERT_OK(decodeJson(yaml(R"(
metadata: {name: lb, creationTimestamp: "2024-01-01T00:59:30Z"}
spec: {type: LoadBalancer, clusterIP: 10.96.0.10, selector: {app: web},
       ports: [{port: 80, nodePort: 30080, protocol: TCP}, {port: 53, protocol: UDP, nodePort: 30053}]}
status: {loadBalancer: {ingress: [{ip: 192.0.2.1}]}}
)"), lb, nullptr));
  EXPECT_EQ(Json(row("Service", lb)), yaml("[lb, LoadBalancer, 10.96.0.10, 192.0.2.1, '80:30080/TCP,53:30053/UDP', 30s, app=web]"));
  lb.mutable_status()->clear_loadbalancer();
  EXPECT_EQ(row("Service", lb)[3], "<pending>");
  Service ext;
  ASSERT_OK(decodeJson(yaml("metadata: {name: e}\nspec: {type: ExternalName, externalName: example.com}"), ext, nullptr));
  EXPECT_EQ(row("Service", ext)[3], "example.com");
  EXPECT_EQ(row("Service", ext)[2], "<none>");
}

TEST(TablesTest, WorkloadAndEndpointRows) {
  Deployment d;
  ASSERT_OK(decodeJson(yaml(R"(
metadata: {name: d, creationTimestamp: "2024-01-01T00:00:00Z"}
spec: {replicas: 3, selector: {matchLabels: {app: d}}, template: {spec: {containers: [{name: c, image: "nginx:1.25"}]}}}
status: {readyReplicas: 2, updatedReplicas: 3, availableReplicas: 2}
)"), d, nullptr));
  EXPECT_EQ(Json(row("Deployment", d)), yaml("[d, 2/3, 3, 2, 60m, c, 'nginx:1.25', app=d]"));
  Endpoints ep;
  ASSERT_OK(decodeJson(yaml(R"(
metadata: {name: e}
subsets: [{addresses: [{ip: 10.0.0.1}, {ip: 10.0.0.2}, {ip: 10.0.0.3}, {ip: 10.0.0.4}], ports: [{port: 80}]}]
)"), ep, nullptr));
  EXPECT_EQ(row("Endpoints", ep)[1], "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...");
}

}  // namespace
}  // namespace sluice::api
