// Fixture for the pod runtime tests: a real API server in-process, a node
// network namespace the pods hang under (so pod IPs never meet other tests'
// routes), the real sluice-cni/sluice-ipam binaries, and a PodRuntime bound
// to a node named after the test process. Helpers create pods, poll their
// status, and talk to pods by IP from another namespace.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <unistd.h>

#include "control/agent/runtime/pod_runtime.h"
#include "tests/cni/cni_test_util.h"
#include "tests/control/controllers/control_plane.h"

namespace sluice::agent::testing {

using Json = nlohmann::json;

// The sluice binary (SLUICE_BIN from meson) that runs `echo`.
std::string sluiceBinary();

// HTTP GET from inside `ns` to ip:port; the response body, or nullopt.
std::optional<std::string> httpGet(const std::string& netnsPath, const std::string& ip, int port,
                                   const std::string& path = "/");
// One UDP datagram from inside `ns`; the reply, or nullopt.
std::optional<std::string> udpExchange(const std::string& netnsPath, const std::string& ip,
                                       int port, const std::string& message);

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  PodRuntimeOptions options() const;
  void startRuntime();
  void stopRuntime();

  client::ApiClient& client() { return cp_->client(); }
  // A pod bound to this node: {"name": name} metadata, `spec` merged in.
  Json createPod(const std::string& name, const Json& spec);
  std::optional<Json> getPod(const std::string& name);
  // Polls the pod until pred(pod) holds; the last pod seen.
  Json waitPod(const std::string& name, const std::function<bool(const Json&)>& pred,
               std::chrono::seconds timeout = std::chrono::seconds(60));
  bool waitGone(const std::string& name, std::chrono::seconds timeout = std::chrono::seconds(60));
  // The host pid of a container, from the runtime's state file.
  int containerPid(const std::string& uid, const std::string& container);
  std::string podDir(const std::string& uid) const { return data_.path() + "/pods/" + uid; }
  // What the runtime's podInterfaceHook saw: "+ifname;" / "-ifname;" in order.
  std::string interfaceEvents();

  static const Json* containerStatus(const Json& pod, const std::string& name, bool init = false);
  static std::string condition(const Json& pod, const std::string& type);
  static bool running(const Json& pod, const std::string& container);

  std::string nodeName_;
  std::unique_ptr<sluice::testing::ControlPlane> cp_;
  cni::testing::ScopedNetns node_{"slag"};
  cni::testing::ScopedDir data_;
  std::unique_ptr<PodRuntime> runtime_;
  std::string podCidr_ = "10.250.1.0/24";
  // Pod cgroups under the test process's own cgroup, named after its pid
  // (removed by TearDown's teardownAll); metrics off unless a test sets a
  // period before SetUp.
  std::string cgroupParent_ = "sluice-test-" + std::to_string(::getpid());
  std::chrono::milliseconds metricsResolution_{0};
  std::mutex eventsMu_;
  std::string interfaceEvents_;
};

}  // namespace sluice::agent::testing
