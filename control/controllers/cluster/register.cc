#include "control/controllers/cluster/register.h"

#include "control/controllers/cluster/endpoints_controller.h"
#include "control/controllers/cluster/endpointslice_controller.h"
#include "control/controllers/cluster/hpa_controller.h"
#include "control/controllers/cluster/node_lifecycle.h"
#include "control/controllers/cluster/scheduler.h"

namespace sluice::controllers {

Result<void> addClusterControllers(const ControllerContext& ctx, const NodeIpamOptions& nodeIpam,
                                   std::vector<std::unique_ptr<Controller>>& out) {
  out.push_back(std::make_unique<EndpointsController>(ctx));
  out.push_back(std::make_unique<EndpointSliceController>(ctx));
  out.push_back(std::make_unique<Scheduler>(ctx));
  out.push_back(std::make_unique<NodeLifecycleController>(ctx));
  out.push_back(std::make_unique<HpaController>(ctx));
  if (!nodeIpam.clusterCidr.empty()) {
    auto ipam = NodeIpamController::create(ctx, nodeIpam);
    if (!ipam) return ipam.error();
    out.push_back(std::move(*ipam));
  }
  return okResult();
}

}  // namespace sluice::controllers
