// ServiceTranslator as data: each case is a Kubernetes Service and its
// EndpointSlices as the API serves them (JSON) and the dataplane Services
// kube-proxy's rules give for them.
#include "control/agent/proxy/service_translator.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::agent {
namespace {

IpAddress ip(const char* s) { return IpAddress::parse(s).value(); }

Frontend fe(const char* addr, uint16_t port, FrontendScope scope = FrontendScope::kClusterIp,
            Protocol proto = Protocol::kTcp) {
  return Frontend{ip(addr), port, proto, scope};
}

Backend be(const char* addr, uint16_t port, BackendState state = BackendState::kActive,
           bool local = false) {
  Backend b;
  b.address = ip(addr);
  b.port = port;
  b.state = state;
  b.nodeLocal = local;
  return b;
}

Service svc(const char* name, const char* port, std::vector<Frontend> frontends,
            std::vector<Backend> backends, Protocol proto = Protocol::kTcp) {
  Service s;
  s.key = ServiceKey{"default", name, port};
  s.protocol = proto;
  s.frontends = std::move(frontends);
  s.backends = std::move(backends);
  return s;
}

std::string describe(const Service& s) {
  std::string out = s.key.toString() + " " + std::string(toString(s.protocol)) + " fe[";
  for (const Frontend& f : s.frontends) {
    out += f.address.toString() + ":" + std::to_string(f.port) + "/" +
           std::to_string(static_cast<int>(f.scope)) + " ";
  }
  out += "] be[";
  for (const Backend& b : s.backends) {
    out += b.address.toString() + ":" + std::to_string(b.port) + "/s" +
           std::to_string(static_cast<int>(b.state)) + (b.nodeLocal ? "/local" : "") + " ";
  }
  out += "] aff=" + std::to_string(s.affinity.clientIp) + "/" +
         std::to_string(s.affinity.timeoutSeconds) +
         " etp=" + std::to_string(static_cast<int>(s.externalPolicy)) +
         " itp=" + std::to_string(static_cast<int>(s.internalPolicy)) +
         " alg=" + std::to_string(static_cast<int>(s.algorithm)) + "/" +
         std::to_string(s.maglevTableSize);
  return out;
}

// A ClusterIP service "web" with `specExtra` merged into spec.
std::string service(const std::string& specExtra, const std::string& rest = "") {
  return R"({"metadata":{"namespace":"default","name":"web"},"spec":{)" + specExtra + "}" + rest +
         "}";
}

// An EndpointSlice of service `of` with the given ports and endpoints JSON.
std::string slice(const std::string& name, const std::string& ports, const std::string& endpoints,
                  const std::string& addressType = "IPv4", const std::string& of = "web") {
  return R"({"metadata":{"namespace":"default","name":")" + name +
         R"(","labels":{"kubernetes.io/service-name":")" + of + R"("}},"addressType":")" +
         addressType + R"(","ports":)" + ports + R"(,"endpoints":)" + endpoints + "}";
}

const std::string kPort80 = R"("ports":[{"port":80,"targetPort":8080,"protocol":"TCP"}])";
const std::string kSlicePort = R"([{"port":8080,"protocol":"TCP"}])";
const std::string kTwoReady =
    R"([{"addresses":["10.244.0.2"],"conditions":{"ready":true},"nodeName":"node-a"},)"
    R"({"addresses":["10.244.1.2"],"conditions":{"ready":true},"nodeName":"node-b"}])";

struct Case {
  const char* scenario;
  std::string service;
  std::vector<std::string> slices;
  std::vector<Service> expected;
  size_t warnings = 0;
};

std::vector<Case> cases() {
  std::vector<Case> c;
  c.push_back({"ClusterIP with one unnamed port and two ready endpoints",
               service(R"("clusterIP":"10.96.0.10","clusterIPs":["10.96.0.10"],)" + kPort80),
               {slice("web-1", kSlicePort, kTwoReady)},
               {svc("web", "", {fe("10.96.0.10", 80)},
                    {be("10.244.0.2", 8080, BackendState::kActive, true), be("10.244.1.2", 8080)})}});

  c.push_back({"clusterIP without clusterIPs (older servers) still programs",
               service(R"("clusterIP":"10.96.0.10",)" + kPort80),
               {slice("web-1", kSlicePort, kTwoReady)},
               {svc("web", "", {fe("10.96.0.10", 80)},
                    {be("10.244.0.2", 8080, BackendState::kActive, true), be("10.244.1.2", 8080)})}});

  c.push_back(
      {"two named ports: one Service each, target port matched by name and protocol",
       service(R"("clusterIPs":["10.96.0.11"],"ports":[{"name":"http","port":80,"protocol":"TCP"},)"
               R"({"name":"dns","port":53,"protocol":"UDP"}])"),
       {slice("web-1", R"([{"name":"dns","port":5353,"protocol":"UDP"},{"name":"http","port":8080,"protocol":"TCP"}])",
              R"([{"addresses":["10.244.0.2"],"conditions":{"ready":true}}])")},
       {svc("web", "http", {fe("10.96.0.11", 80)}, {be("10.244.0.2", 8080)}),
        svc("web", "dns", {fe("10.96.0.11", 53, FrontendScope::kClusterIp, Protocol::kUdp)},
            {be("10.244.0.2", 5353)}, Protocol::kUdp)}});

  c.push_back(
      {"conditions: ready active, serving+terminating terminating, not serving or not "
       "terminating left out, nil conditions ready",
       service(R"("clusterIPs":["10.96.0.12"],)" + kPort80),
       {slice("web-1", kSlicePort,
              R"([{"addresses":["10.244.0.1"],"conditions":{"ready":true,"serving":true,"terminating":false}},)"
              R"({"addresses":["10.244.0.2"],"conditions":{"ready":false,"serving":true,"terminating":true}},)"
              R"({"addresses":["10.244.0.3"],"conditions":{"ready":false,"serving":false,"terminating":true}},)"
              R"({"addresses":["10.244.0.4"],"conditions":{"ready":false}},)"
              R"({"addresses":["10.244.0.5"],"conditions":{"ready":false,"serving":true}},)"
              R"({"addresses":["10.244.0.6"],"conditions":{}},)"
              R"({"addresses":["10.244.0.7"]}])")},
       {svc("web", "", {fe("10.96.0.12", 80)},
            {be("10.244.0.1", 8080), be("10.244.0.2", 8080, BackendState::kTerminating),
             be("10.244.0.6", 8080), be("10.244.0.7", 8080)})}});

  c.push_back({"NodePort: on every node address of the service's family, plus the ClusterIP",
               service(R"("type":"NodePort","clusterIPs":["10.96.0.13"],"ports":[{"port":80,"nodePort":30080}])"),
               {slice("web-1", R"([{"port":8080}])", R"([{"addresses":["10.244.0.2"]}])")},
               {svc("web", "",
                    {fe("10.96.0.13", 80), fe("192.168.1.10", 30080, FrontendScope::kNodePort),
                     fe("192.168.2.10", 30080, FrontendScope::kNodePort)},
                    {be("10.244.0.2", 8080)})}});

  Service lb = svc("web", "",
                   {fe("10.96.0.14", 80), fe("192.168.1.10", 30081, FrontendScope::kNodePort),
                    fe("192.168.2.10", 30081, FrontendScope::kNodePort),
                    fe("192.0.2.5", 80, FrontendScope::kLoadBalancer)},
                   {be("10.244.0.2", 8080)});
  c.push_back({"LoadBalancer: ingress IPs, not ipMode Proxy ones or hostnames, plus NodePorts",
               service(R"("type":"LoadBalancer","clusterIPs":["10.96.0.14"],"ports":[{"port":80,"nodePort":30081}])",
                       R"(,"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.5"},{"ip":"192.0.2.6","ipMode":"Proxy"},{"hostname":"lb.example"}]}})"),
               {slice("web-1", R"([{"port":8080}])", R"([{"addresses":["10.244.0.2"]}])")},
               {lb}});

  c.push_back({"LoadBalancer without node ports (allocateLoadBalancerNodePorts false)",
               service(R"("type":"LoadBalancer","clusterIPs":["10.96.0.15"],"allocateLoadBalancerNodePorts":false,"ports":[{"port":80}])",
                       R"(,"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.7"}]}})"),
               {},
               {svc("web", "", {fe("10.96.0.15", 80), fe("192.0.2.7", 80, FrontendScope::kLoadBalancer)}, {})}});

  c.push_back({"externalIPs on a ClusterIP service; an unparsable one and one of another family are "
               "left out with a warning",
               service(R"("clusterIPs":["10.96.0.16"],"externalIPs":["203.0.113.9","nonsense","2001:db8::9"],)" + kPort80),
               {},
               {svc("web", "", {fe("10.96.0.16", 80), fe("203.0.113.9", 80, FrontendScope::kExternalIp)}, {})},
               2});

  c.push_back({"dual-stack: both ClusterIPs, both node-address families, backends of both slices",
               service(R"("type":"NodePort","clusterIPs":["10.96.0.17","fd00:96::17"],"ports":[{"port":80,"nodePort":30082}])"),
               {slice("web-4", R"([{"port":8080}])", R"([{"addresses":["10.244.0.2"]}])"),
                slice("web-6", R"([{"port":8080}])", R"([{"addresses":["fd00:244::2"]}])", "IPv6")},
               {svc("web", "",
                    {fe("10.96.0.17", 80), fe("fd00:96::17", 80),
                     fe("192.168.1.10", 30082, FrontendScope::kNodePort),
                     fe("192.168.2.10", 30082, FrontendScope::kNodePort),
                     fe("fd00:1::10", 30082, FrontendScope::kNodePort)},
                    {be("10.244.0.2", 8080), be("fd00:244::2", 8080)})}});

  c.push_back({"ExternalName programs nothing",
               service(R"("type":"ExternalName","externalName":"db.example",)" + kPort80), {}, {}});
  c.push_back({"headless (clusterIP None) programs nothing",
               service(R"("clusterIP":"None","clusterIPs":["None"],)" + kPort80),
               {slice("web-1", kSlicePort, kTwoReady)}, {}});

  Service aff = svc("web", "", {fe("10.96.0.18", 80)}, {});
  aff.affinity = SessionAffinity{true, 60};
  c.push_back({"sessionAffinity ClientIP with its timeout",
               service(R"("clusterIPs":["10.96.0.18"],"sessionAffinity":"ClientIP",)"
                       R"("sessionAffinityConfig":{"clientIP":{"timeoutSeconds":60}},)" + kPort80),
               {}, {aff}});
  Service affDefault = svc("web", "", {fe("10.96.0.19", 80)}, {});
  affDefault.affinity = SessionAffinity{true, 10800};
  c.push_back({"sessionAffinity ClientIP without a timeout: Kubernetes' 3 h",
               service(R"("clusterIPs":["10.96.0.19"],"sessionAffinity":"ClientIP",)" + kPort80), {},
               {affDefault}});

  Service local = svc("web", "", {fe("10.96.0.20", 80), fe("192.168.1.10", 30083, FrontendScope::kNodePort),
                                  fe("192.168.2.10", 30083, FrontendScope::kNodePort)},
                      {be("10.244.0.2", 8080, BackendState::kActive, true), be("10.244.1.2", 8080)});
  local.externalPolicy = TrafficPolicy::kLocal;
  local.internalPolicy = TrafficPolicy::kLocal;
  c.push_back({"externalTrafficPolicy and internalTrafficPolicy Local; nodeLocal from nodeName",
               service(R"("type":"NodePort","clusterIPs":["10.96.0.20"],"externalTrafficPolicy":"Local",)"
                       R"("internalTrafficPolicy":"Local","ports":[{"port":80,"nodePort":30083}])"),
               {slice("web-1", kSlicePort, kTwoReady)}, {local}});

  c.push_back({"slices of another service, FQDN slices and unmatched port names give no backends",
               service(R"("clusterIPs":["10.96.0.21"],"ports":[{"name":"http","port":80}])"),
               {slice("other-1", R"([{"name":"http","port":8080}])", kTwoReady, "IPv4", "other"),
                slice("web-fqdn", R"([{"name":"http","port":8080}])", R"([{"addresses":["db.example"]}])", "FQDN"),
                slice("web-1", R"([{"name":"https","port":8443}])", kTwoReady),
                slice("web-2", R"([{"name":"http","port":8080,"protocol":"UDP"}])", kTwoReady)},
               {svc("web", "http", {fe("10.96.0.21", 80)}, {})}});

  c.push_back({"one endpoint in two slices (a slice being split): the better state wins",
               service(R"("clusterIPs":["10.96.0.22"],)" + kPort80),
               {slice("web-1", kSlicePort,
                      R"([{"addresses":["10.244.0.2"],"conditions":{"ready":false,"serving":true,"terminating":true}}])"),
                slice("web-2", kSlicePort, R"([{"addresses":["10.244.0.2"],"conditions":{"ready":true}}])")},
               {svc("web", "", {fe("10.96.0.22", 80)}, {be("10.244.0.2", 8080)})}});

  c.push_back({"a service without selector uses its user-made slices the same way",
               R"({"metadata":{"namespace":"default","name":"web"},"spec":{"clusterIPs":["10.96.0.23"],)" + kPort80 + "}}",
               {slice("web-manual", kSlicePort, R"([{"addresses":["192.168.50.5"]}])")},
               {svc("web", "", {fe("10.96.0.23", 80)}, {be("192.168.50.5", 8080)})}});

  Service maglev = svc("web", "", {fe("10.96.0.24", 80)}, {be("10.244.0.2", 8080)});
  maglev.algorithm = LbAlgorithm::kMaglev;
  maglev.maglevTableSize = 251;
  c.push_back({"sluice.io/lb-algorithm maglev with a table size",
               R"({"metadata":{"namespace":"default","name":"web","annotations":{"sluice.io/lb-algorithm":"maglev",)"
               R"("sluice.io/maglev-table-size":"251"}},"spec":{"clusterIPs":["10.96.0.24"],)" + kPort80 + "}}",
               {slice("web-1", kSlicePort, R"([{"addresses":["10.244.0.2"]}])")}, {maglev}});

  c.push_back({"SCTP ports and the default TCP protocol of a port without one",
               service(R"("clusterIPs":["10.96.0.25"],"ports":[{"name":"a","port":9,"protocol":"SCTP"},{"name":"b","port":10}])"),
               {slice("web-1", R"([{"name":"a","port":99,"protocol":"SCTP"},{"name":"b","port":100}])",
                      R"([{"addresses":["10.244.0.9"]}])")},
               {svc("web", "a", {fe("10.96.0.25", 9, FrontendScope::kClusterIp, Protocol::kSctp)},
                    {be("10.244.0.9", 99)}, Protocol::kSctp),
                svc("web", "b", {fe("10.96.0.25", 10)}, {be("10.244.0.9", 100)})}});

  c.push_back({"a service without ClusterIP yet (not allocated) programs nothing",
               service(kPort80), {slice("web-1", kSlicePort, kTwoReady)}, {}});
  return c;
}

class ServiceTranslatorTest : public ::testing::TestWithParam<Case> {};

TEST_P(ServiceTranslatorTest, TranslatesAsKubeProxyDoes) {
  const Case& tc = GetParam();
  SCOPED_TRACE(tc.scenario);
  ServiceTranslator t(TranslatorOptions{
      "node-a", {ip("192.168.1.10"), ip("192.168.2.10"), ip("fd00:1::10")}});
  const Json service = Json::parse(tc.service);
  std::vector<Json> slices;
  for (const std::string& s : tc.slices) slices.push_back(Json::parse(s));
  std::vector<const Json*> ptrs;
  for (const Json& s : slices) ptrs.push_back(&s);

  const Translation got = t.translate(service, ptrs);
  ASSERT_EQ(got.services.size(), tc.expected.size());
  for (size_t i = 0; i < got.services.size(); ++i) {
    EXPECT_TRUE(got.services[i] == tc.expected[i])
        << "got:  " << describe(got.services[i]) << "\nwant: " << describe(tc.expected[i]);
    EXPECT_TRUE(validate(got.services[i]).ok()) << validate(got.services[i]).error().message;
  }
  EXPECT_EQ(got.warnings.size(), tc.warnings) << (got.warnings.empty() ? "" : got.warnings[0]);
}

INSTANTIATE_TEST_SUITE_P(Shapes, ServiceTranslatorTest, ::testing::ValuesIn(cases()));

// Backends come out ordered by address whatever order the slices (and
// their endpoints) arrive in, so an unchanged service never yields a diff.
TEST(ServiceTranslatorOrderTest, SliceOrderDoesNotChangeTheResult) {
  ServiceTranslator t(TranslatorOptions{"node-a", {}});
  const Json service = Json::parse(
      R"({"metadata":{"namespace":"default","name":"web"},"spec":{"clusterIPs":["10.96.0.30"],)" +
      kPort80 + "}}");
  const Json a = Json::parse(slice("web-a", kSlicePort, R"([{"addresses":["10.244.0.9"]},{"addresses":["10.244.0.3"]}])"));
  const Json b = Json::parse(slice("web-b", kSlicePort, R"([{"addresses":["10.244.0.5"]}])"));
  const Translation ab = t.translate(service, {&a, &b});
  const Translation ba = t.translate(service, {&b, &a});
  ASSERT_EQ(ab.services.size(), 1u);
  ASSERT_EQ(ba.services.size(), 1u);
  EXPECT_TRUE(ab.services[0] == ba.services[0]);
  ASSERT_EQ(ab.services[0].backends.size(), 3u);
  EXPECT_EQ(ab.services[0].backends[0].address, ip("10.244.0.3"));
}

TEST(ServiceTranslatorOrderTest, SliceServiceNameIsTheLabel) {
  EXPECT_EQ(sliceServiceName(Json::parse(slice("x", "[]", "[]", "IPv4", "db"))), "db");
  EXPECT_EQ(sliceServiceName(Json::parse(R"({"metadata":{"name":"x"}})")), "");
}

}  // namespace
}  // namespace sluice::agent

namespace sluice::agent {
namespace {

// loadBalancerSourceRanges (a bad one left out with a warning), the
// healthCheckNodePort of an eTP=Local Service, and sluice.io/<mode>-<name>
// annotations as mode options the translator does not interpret.
TEST(ServiceTranslatorFieldsTest, SourceRangesHealthCheckPortAndModeOptions) {
  ServiceTranslator t(TranslatorOptions{"node-a", {}});
  const Json service = Json::parse(R"({"metadata":{"namespace":"default","name":"web",
      "annotations":{"sluice.io/ipvs-scheduler":"wlc","sluice.dev/ipvs-other":"x",
                     "sluice.io/lb-algorithm":"random","example.com/ipvs-scheduler":"sh"}},
    "spec":{"type":"LoadBalancer","clusterIPs":["10.96.0.30"],"externalTrafficPolicy":"Local",
      "healthCheckNodePort":32000,"loadBalancerSourceRanges":["10.0.0.0/8","nope","192.168.1.7"],
      "ports":[{"port":80,"protocol":"TCP","nodePort":30080}]}})");
  const Translation got = t.translate(service, {});
  ASSERT_EQ(got.services.size(), 1u);
  const Service& s = got.services[0];
  ASSERT_EQ(s.sourceRanges.size(), 2u);
  EXPECT_EQ(s.sourceRanges[0].toString(), "10.0.0.0/8");
  EXPECT_EQ(s.sourceRanges[1].toString(), "192.168.1.7/32");
  EXPECT_EQ(got.warnings.size(), 1u);
  EXPECT_EQ(s.healthCheckNodePort, 32000);
  EXPECT_EQ(s.modeOptions, (std::map<std::string, std::string>{{"ipvs-other", "x"},
                                                               {"ipvs-scheduler", "wlc"}}));
}

}  // namespace
}  // namespace sluice::agent
