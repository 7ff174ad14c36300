// Fixture for the IPVS client tests (vm suite): one client per test, the kernel's IPVS table
// empty at the start, and every service a test registers deleted at its end, pass or fail, so
// tests stay independent inside one VM.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "ipvs/netlink_client.h"

namespace sluice::ipvs::testing {

inline IpAddress ip(const char* text) { return IpAddress::parse(text).value(); }

inline Service makeService(const ServiceKey& key, const std::string& scheduler = "rr") {
  Service s;
  s.key = key;
  s.scheduler = scheduler;
  return s;
}

inline Destination makeDest(const char* address, uint16_t port, uint32_t weight = 1,
                            ForwardMethod forward = ForwardMethod::kMasquerade) {
  Destination d;
  d.address = ip(address);
  d.port = port;
  d.weight = weight;
  d.forward = forward;
  return d;
}

class NetlinkClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = NetlinkClient::create();
    ASSERT_TRUE(c) << c.error().message;
    client_ = std::move(*c);
    auto services = client_->listServices();
    ASSERT_TRUE(services) << services.error().message;
    ASSERT_TRUE(services->empty()) << "an earlier test left " << services->size() << " services";
  }

  void TearDown() override {
    if (!client_) return;
    for (const auto& key : created_) (void)client_->deleteService(key);
    auto services = client_->listServices();
    ASSERT_TRUE(services) << services.error().message;
    EXPECT_TRUE(services->empty()) << "test left " << services->size() << " services";
    if (!services->empty()) (void)client_->flush();
  }

  // Registers `key` for deletion at the end of the test and returns it.
  const ServiceKey& track(const ServiceKey& key) {
    created_.push_back(key);
    return created_.back();
  }

  // Adds `service` (tracked) and fails the test when the kernel refuses it.
  void addService(const Service& service) {
    track(service.key);
    auto r = client_->addService(service);
    ASSERT_TRUE(r) << r.error().message;
  }

  std::unique_ptr<NetlinkClient> client_;
  std::vector<ServiceKey> created_;
};

}  // namespace sluice::ipvs::testing
