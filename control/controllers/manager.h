// ControllerManager: runs every controller of `sluice server` against an API
// server through the REST client, as kube-controller-manager does.
#pragma once

#include <memory>
#include <vector>

#include "control/controllers/cluster/node_ipam.h"
#include "control/controllers/controller.h"

namespace sluice::controllers {

struct ManagerOptions {
  int workers = 2;
  const Clock* clock = nullptr;  // nullptr: the system clock
  // Disable some controllers (tests of one controller in isolation).
  std::vector<std::string> disabled;
  // When non-empty, run only these controllers (tests of one part).
  std::vector<std::string> only;
  // Pod CIDRs for Nodes (`sluice server --cluster-cidr`); off when empty.
  NodeIpamOptions nodeIpam;
};

class ControllerManager {
 public:
  static Result<std::unique_ptr<ControllerManager>> start(client::ApiClient& client, ManagerOptions options = {});
  ~ControllerManager();
  void stop();
  std::vector<std::string> names() const;

 private:
  ControllerManager(client::ApiClient& client, ManagerOptions options);
  ManagerOptions options_;
  SystemClock systemClock_;
  SharedInformers informers_;
  std::vector<std::unique_ptr<Controller>> controllers_;
  // Disabled controllers: never started, but kept alive because their
  // constructors registered informer handlers that capture them.
  std::vector<std::unique_ptr<Controller>> idle_;
};

}  // namespace sluice::controllers
