#include "tests/control/controllers/control_plane.h"

#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <thread>

namespace sluice::testing {

ControlPlane::ControlPlane(const std::string& tag, Options options) : options_(std::move(options)) {
  // A parameterised test's name ("Test/v127") would make a nested
  // directory whose parent nothing removes: one path component only.
  std::string name = tag;
  std::replace(name.begin(), name.end(), '/', '_');
  dir_ = std::filesystem::temp_directory_path() / ("sluice-cp-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::remove_all(dir_);
  startServer();
  if (options_.startControllers) startControllers();
}

ControlPlane::~ControlPlane() {
  stopControllers();
  client_.reset();
  server_.reset();
  std::filesystem::remove_all(dir_);
}

void ControlPlane::startServer() {
  server::ApiServerOptions o;
  o.dataDir = dir_.string();
  o.listenPort = port_;  // 0 the first time; the same port after a restart
  o.compactInterval = std::chrono::seconds(0);
  o.watch.bookmarkInterval = std::chrono::milliseconds(500);
  o.network.loadBalancerPool = "192.0.2.0/28";
  auto s = server::ApiServer::start(o);
  if (!s) throw std::runtime_error("server: " + s.error().message);
  server_ = std::move(*s);
  port_ = server_->port();
  auto kc = client::Kubeconfig::load(server_->kubeconfigPath());
  if (!kc) throw std::runtime_error(kc.error().message);
  auto c = client::ApiClient::create(*kc, "controller-test");
  if (!c) throw std::runtime_error(c.error().message);
  client_ = std::move(*c);
}

void ControlPlane::startControllers() {
  if (manager_) return;
  auto o = options_.manager;
  if (o.clock == nullptr) o.clock = &clock_;
  auto m = controllers::ControllerManager::start(*client_, o);
  if (!m) throw std::runtime_error(m.error().message);
  manager_ = std::move(*m);
}

void ControlPlane::stopControllers() {
  if (manager_) manager_->stop();
  manager_.reset();
}

void ControlPlane::restart() {
  bool controllersWereRunning = manager_ != nullptr;
  stopControllers();
  client_.reset();
  server_->stop();
  server_.reset();
  startServer();
  if (controllersWereRunning) startControllers();
}

bool ControlPlane::eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() > deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace sluice::testing
