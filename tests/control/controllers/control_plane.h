// A control plane for controller tests: a real `sluice server` in-process
// (HTTPS on a free port, SQLite file in a fresh directory), a REST client
// with its credentials, and the controller manager with an injected clock.
// restartServer() stops everything and starts again on the same data
// directory, for "converges after a restart" tests.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "control/client/api_client.h"
#include "control/controllers/manager.h"
#include "control/server/api_server.h"

namespace sluice::testing {

class ControlPlane {
 public:
  struct Options {
    controllers::ManagerOptions manager;
    bool startControllers = true;
  };
  // `tag` makes the data directory unique (test name).
  explicit ControlPlane(const std::string& tag) : ControlPlane(tag, Options()) {}
  ControlPlane(const std::string& tag, Options options);
  ~ControlPlane();

  client::ApiClient& client() { return *client_; }
  server::ApiServer& server() { return *server_; }
  controllers::ManualClock& clock() { return clock_; }
  const std::filesystem::path& dir() const { return dir_; }

  void startControllers();
  void stopControllers();
  // Stops controllers and server, starts both again on the same store.
  void restart();

  // Polls `pred` every 20 ms until true or `timeout`; returns its last value.
  static bool eventually(const std::function<bool()>& pred,
                         std::chrono::milliseconds timeout = std::chrono::seconds(20));

 private:
  void startServer();

  std::filesystem::path dir_;
  Options options_;
  controllers::ManualClock clock_;
  std::unique_ptr<server::ApiServer> server_;
  std::unique_ptr<client::ApiClient> client_;
  std::unique_ptr<controllers::ControllerManager> manager_;
  uint16_t port_ = 0;
};

}  // namespace sluice::testing
