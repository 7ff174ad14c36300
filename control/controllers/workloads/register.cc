#include "control/controllers/workloads/register.h"

#include "control/controllers/workloads/deployment_controller.h"
#include "control/controllers/workloads/gc_controller.h"
#include "control/controllers/workloads/replicaset_controller.h"

namespace sluice::controllers {

void addWorkloadControllers(const ControllerContext& ctx, std::vector<std::unique_ptr<Controller>>& out) {
  out.push_back(std::make_unique<workloads::DeploymentController>(ctx));
  out.push_back(std::make_unique<workloads::ReplicaSetController>(ctx));
  out.push_back(std::make_unique<workloads::GarbageCollector>(ctx));
}

}  // namespace sluice::controllers
