#include "control/server/allocators.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "control/api/json_codec.h"
#include "control/server/service_allocations.h"
#include "tests/control/api/test_util.h"

namespace sluice::server {
namespace {

using ::testing::HasSubstr;

TEST(IpAllocatorTest, ExplicitNextAndRelease) {
  ASSIGN_OR_FAIL(IpAllocator a, IpAllocator::create("10.96.0.0/12"));
  EXPECT_EQ(a.first(), "10.96.0.1");
  ASSERT_OK(a.allocate("10.96.0.1"));
  auto again = a.allocate("10.96.0.1");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(again.error().message, "provided IP is already allocated");
  auto outside = a.allocate("10.0.0.1");
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.error().message,
            "the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12");
  // Automatic addresses come from above the static band kept for explicit ones.
  ASSIGN_OR_FAIL(std::string next, a.allocateNext());
  EXPECT_EQ(next, "10.96.1.1");
  a.release("10.96.0.1");
  EXPECT_FALSE(a.isAllocated("10.96.0.1"));
  EXPECT_TRUE(a.isAllocated(next));
}

// A tiny pool fills up and is reported exhausted; network and broadcast
// addresses are never handed out.
TEST(IpAllocatorTest, ExhaustsSmallPool) {
  ASSIGN_OR_FAIL(IpAllocator a, IpAllocator::create("192.0.2.0/30", false));
  EXPECT_FALSE(a.contains("192.0.2.0"));
  EXPECT_FALSE(a.contains("192.0.2.3"));
  ASSIGN_OR_FAIL(std::string one, a.allocateNext());
  ASSIGN_OR_FAIL(std::string two, a.allocateNext());
  EXPECT_EQ(one, "192.0.2.1");
  EXPECT_EQ(two, "192.0.2.2");
  auto full = a.allocateNext();
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code, ErrorCode::kResourceExhausted);
  EXPECT_FALSE(IpAllocator::create("10.0.0.0/8").ok());  // larger than Kubernetes allows
}

TEST(PortAllocatorTest, RangeCollisionAndRelease) {
  ASSIGN_OR_FAIL(PortAllocator p, PortAllocator::create(30000, 32767));
  ASSERT_OK(p.allocate(30000));
  auto dup = p.allocate(30000);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().message, "provided port is already allocated");
  auto low = p.allocate(80);
  ASSERT_FALSE(low.ok());
  EXPECT_EQ(low.error().message,
            "provided port is not in the valid range. The range of valid ports is 30000-32767");
  ASSIGN_OR_FAIL(int next, p.allocateNext());
  EXPECT_EQ(next, 30086);  // above the static band of 86 ports
  p.release(30000);
  ASSERT_OK(p.allocate(30000));
  EXPECT_EQ(p.freeCount(), 2768u - 2);
}

api::Service service(const std::string& yaml) {
  api::Service svc;
  auto r = api::decodeJson(api::testing::yaml(yaml), svc, nullptr);
  EXPECT_TRUE(r.ok());
  return svc;
}

class ServiceAllocationsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto a = ServiceAllocations::create(ServiceNetworkOptions{"10.96.0.0/24", 30000, 30010, "192.0.2.0/29"});
    ASSERT_TRUE(a.ok());
    alloc_ = std::move(*a);
  }
  std::unique_ptr<ServiceAllocations> alloc_;
};

// A LoadBalancer Service gets a cluster IP, node ports and an ingress IP.
TEST_F(ServiceAllocationsTest, LoadBalancerGetsEverything) {
  auto svc = service("spec: {type: LoadBalancer, ports: [{port: 80, protocol: TCP}, {port: 443, protocol: TCP}]}");
  api::FieldErrors errs;
  auto change = alloc_->assign(svc, nullptr, errs);
  ASSERT_TRUE(errs.empty()) << errs.summary();
  alloc_->commit(change);
  EXPECT_FALSE(svc.spec().clusterip().empty());
  EXPECT_EQ(svc.spec().clusterips(0), svc.spec().clusterip());
  EXPECT_NE(svc.spec().ports(0).nodeport(), 0);
  EXPECT_NE(svc.spec().ports(1).nodeport(), svc.spec().ports(0).nodeport());
  ASSERT_EQ(svc.status().loadbalancer().ingress_size(), 1);
  EXPECT_EQ(svc.status().loadbalancer().ingress(0).ip(), "192.0.2.1");
  EXPECT_EQ(svc.spec().ipfamilies(0), "IPv4");
}

// An explicit node port already held elsewhere is a field error, and nothing
// the failed write took stays allocated.
TEST_F(ServiceAllocationsTest, CollisionIsFieldErrorAndRollsBack) {
  auto a = service("spec: {type: NodePort, ports: [{port: 80, nodePort: 30005}]}");
  api::FieldErrors errs;
  alloc_->commit(alloc_->assign(a, nullptr, errs));
  ASSERT_TRUE(errs.empty());
  size_t freeIps = alloc_->freeServiceIps();
  auto b = service("spec: {type: NodePort, ports: [{port: 81, nodePort: 30005}]}");
  alloc_->assign(b, nullptr, errs);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs.errors()[0].message(), "spec.ports[0].nodePort: Invalid value: 30005: provided port is already allocated");
  EXPECT_EQ(alloc_->freeServiceIps(), freeIps);
  auto c = service("spec: {clusterIP: 10.96.1.5, ports: [{port: 80}]}");
  api::FieldErrors errs2;
  alloc_->assign(c, nullptr, errs2);
  ASSERT_EQ(errs2.size(), 1u);
  EXPECT_THAT(errs2.errors()[0].message(), HasSubstr("spec.clusterIPs: Invalid value: []string{\"10.96.1.5\"}: failed to allocate IP 10.96.1.5: the provided IP (10.96.1.5) is not in the valid range"));
}

// NodePort -> ClusterIP frees the node ports once the write commits;
// ClusterIP -> ExternalName frees the address; LoadBalancer -> NodePort frees
// the ingress IP and keeps the node ports.
TEST_F(ServiceAllocationsTest, TypeChangesReleaseOnCommit) {
  api::FieldErrors errs;
  auto lb = service("spec: {type: LoadBalancer, ports: [{port: 80}]}");
  alloc_->commit(alloc_->assign(lb, nullptr, errs));
  size_t ports = alloc_->freeNodePorts();
  size_t lbs = alloc_->freeLoadBalancerIps();
  auto np = lb;
  np.mutable_spec()->set_type("NodePort");
  auto change = alloc_->assign(np, &lb, errs);
  ASSERT_TRUE(errs.empty());
  EXPECT_EQ(np.status().loadbalancer().ingress_size(), 0);
  EXPECT_EQ(alloc_->freeLoadBalancerIps(), lbs);  // not yet: the write may fail
  alloc_->commit(change);
  EXPECT_EQ(alloc_->freeLoadBalancerIps(), lbs + 1);
  EXPECT_EQ(alloc_->freeNodePorts(), ports);
  auto cip = np;
  cip.mutable_spec()->set_type("ClusterIP");
  cip.mutable_spec()->mutable_ports(0)->set_nodeport(0);
  alloc_->commit(alloc_->assign(cip, &np, errs));
  EXPECT_EQ(alloc_->freeNodePorts(), ports + 1);
  size_t ips = alloc_->freeServiceIps();
  auto ext = cip;
  ext.mutable_spec()->set_type("ExternalName");
  ext.mutable_spec()->clear_clusterip();
  alloc_->commit(alloc_->assign(ext, &cip, errs));
  EXPECT_TRUE(errs.empty()) << errs.summary();
  EXPECT_EQ(alloc_->freeServiceIps(), ips + 1);
  EXPECT_TRUE(ext.spec().clusterips().empty());
}

// After a restart the allocations are rebuilt from the stored Services: what
// they hold is taken, and a conflicting stored Service is reported.
TEST_F(ServiceAllocationsTest, RestoreRebuildsFromStoredServices) {
  auto stored = service(R"(
spec: {type: LoadBalancer, clusterIP: 10.96.0.50, ports: [{port: 80, nodePort: 30003}]}
status: {loadBalancer: {ingress: [{ip: 192.0.2.4}]}}
)");
  EXPECT_TRUE(alloc_->restore(stored));
  EXPECT_FALSE(alloc_->restore(stored));  // the same addresses again: conflict
  api::FieldErrors errs;
  auto clash = service("spec: {type: NodePort, clusterIP: 10.96.0.50, ports: [{port: 80, nodePort: 30003}]}");
  alloc_->assign(clash, nullptr, errs);
  EXPECT_EQ(errs.size(), 2u);
  alloc_->release(stored);
  api::FieldErrors ok;
  alloc_->assign(clash, nullptr, ok);
  EXPECT_TRUE(ok.empty()) << ok.summary();
}

}  // namespace
}  // namespace sluice::server
