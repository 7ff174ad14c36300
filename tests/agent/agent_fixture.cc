#include "tests/agent/agent_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "cni/netns.h"

namespace sluice::agent::testing {
namespace {

int connectTo(const std::string& ip, int port, int timeoutMs) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{timeoutMs / 1000, (timeoutMs % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

std::string sluiceBinary() {
  const char* bin = std::getenv("SLUICE_BIN");
  return bin != nullptr ? bin : "control/cmd/sluice";
}

std::optional<std::string> httpGet(const std::string& netnsPath, const std::string& ip, int port,
                                   const std::string& path) {
  auto ns = cni::Netns::open(netnsPath);
  if (!ns) return std::nullopt;
  auto r = ns->run([&]() -> Result<std::string> {
    int fd = connectTo(ip, port, 3000);
    if (fd < 0) return Error{ErrorCode::kUnavailable, "connect"};
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + ip + "\r\nConnection: close\r\n\r\n";
    ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    std::string resp;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n <= 0) break;
      resp.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    size_t body = resp.find("\r\n\r\n");
    if (resp.rfind("HTTP/1.", 0) != 0 || body == std::string::npos) {
      return Error{ErrorCode::kInternal, "bad response"};
    }
    if (resp.find(" 200 ") == std::string::npos) return Error{ErrorCode::kInternal, "status"};
    return resp.substr(body + 4);
  });
  if (!r) return std::nullopt;
  return *r;
}

std::optional<std::string> udpExchange(const std::string& netnsPath, const std::string& ip,
                                       int port, const std::string& message) {
  auto ns = cni::Netns::open(netnsPath);
  if (!ns) return std::nullopt;
  auto r = ns->run([&]() -> Result<std::string> {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    ::sendto(fd, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    pollfd p{fd, POLLIN, 0};
    std::string out;
    if (::poll(&p, 1, 2000) == 1) {
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n > 0) out.assign(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    if (out.empty()) return Error{ErrorCode::kUnavailable, "no reply"};
    return out;
  });
  if (!r) return std::nullopt;
  return *r;
}

void AgentTest::SetUp() {
  ASSERT_TRUE(node_.ok()) << node_.error();
  ASSERT_FALSE(data_.path().empty());
  nodeName_ = "node-" + std::to_string(::getpid());
  sluice::testing::ControlPlane::Options o;
  o.startControllers = false;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  cp_ = std::make_unique<sluice::testing::ControlPlane>(std::string("agent-") + info->name(), o);
  startRuntime();
}

void AgentTest::TearDown() {
  stopRuntime();
  // Whatever a failed test left: kill it by the recorded pids.
  PodRuntime::teardownAll(options());
  cp_.reset();
}

PodRuntimeOptions AgentTest::options() const {
  PodRuntimeOptions o;
  o.nodeName = nodeName_;
  o.dataDir = data_.path();
  o.cniPluginDirs = {cni::testing::binDir(), std::string(cni::testing::kReferencePluginDir)};
  o.podCidr = podCidr_;
  o.nodeNetnsPath = node_.path();
  o.hostIp = "192.0.2.77";
  o.echoCommand = {sluiceBinary(), "echo"};
  o.backoffBase = std::chrono::seconds(1);
  o.backoffMax = std::chrono::seconds(8);
  o.syncPeriod = std::chrono::milliseconds(100);
  o.cgroupParent = cgroupParent_;
  o.metricsResolution = metricsResolution_;
  auto* self = const_cast<AgentTest*>(this);
  o.podInterfaceHook = [self](const std::string& ifname, bool up) {
    std::lock_guard<std::mutex> lock(self->eventsMu_);
    self->interfaceEvents_ += (up ? "+" : "-") + ifname + ";";
  };
  return o;
}

void AgentTest::startRuntime() {
  auto rt = PodRuntime::start(client(), options());
  ASSERT_TRUE(rt) << rt.error().message;
  runtime_ = std::move(*rt);
}

void AgentTest::stopRuntime() {
  if (runtime_) runtime_->stop();
  runtime_.reset();
}

std::string AgentTest::interfaceEvents() {
  std::lock_guard<std::mutex> lock(eventsMu_);
  return interfaceEvents_;
}

Json AgentTest::createPod(const std::string& name, const Json& spec) {
  Json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", name}, {"namespace", "default"}}},
              {"spec", spec}};
  pod["spec"]["nodeName"] = nodeName_;
  auto r = client().create(client::resources::kPods, "default", pod);
  EXPECT_TRUE(r) << r.error().message;
  return r ? *r : Json();
}

std::optional<Json> AgentTest::getPod(const std::string& name) {
  auto r = client().get(client::resources::kPods, "default", name);
  if (!r) return std::nullopt;
  return *r;
}

Json AgentTest::waitPod(const std::string& name, const std::function<bool(const Json&)>& pred,
                        std::chrono::seconds timeout) {
  Json last;
  sluice::testing::ControlPlane::eventually(
      [&] {
        auto p = getPod(name);
        if (!p) return false;
        last = *p;
        return pred(last);
      },
      timeout);
  return last;
}

bool AgentTest::waitGone(const std::string& name, std::chrono::seconds timeout) {
  return sluice::testing::ControlPlane::eventually([&] { return !getPod(name).has_value(); },
                                                   timeout);
}

int AgentTest::containerPid(const std::string& uid, const std::string& container) {
  std::ifstream in(podDir(uid) + "/state.json");
  Json j = Json::parse(in, nullptr, false);
  if (j.is_discarded()) return 0;
  for (const Json& c : j["containers"]) {
    if (c.value("name", "") == container && c.value("running", false)) return c.value("pid", 0);
  }
  return 0;
}

const Json* AgentTest::containerStatus(const Json& pod, const std::string& name, bool init) {
  const char* key = init ? "initContainerStatuses" : "containerStatuses";
  if (!pod.contains("status") || !pod["status"].contains(key)) return nullptr;
  for (const Json& s : pod["status"][key]) {
    if (s.value("name", "") == name) return &s;
  }
  return nullptr;
}

std::string AgentTest::condition(const Json& pod, const std::string& type) {
  if (!pod.contains("status") || !pod["status"].contains("conditions")) return "";
  for (const Json& c : pod["status"]["conditions"]) {
    if (c.value("type", "") == type) return c.value("status", "");
  }
  return "";
}

bool AgentTest::running(const Json& pod, const std::string& container) {
  const Json* s = containerStatus(pod, container);
  return s != nullptr && s->contains("state") && (*s)["state"].contains("running");
}

}  // namespace sluice::agent::testing
