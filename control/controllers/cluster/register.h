// The cluster controllers, added to the manager in dependency order.
#pragma once

#include <memory>
#include <vector>

#include "control/controllers/cluster/node_ipam.h"
#include "control/controllers/controller.h"

namespace sluice::controllers {

// Errors: invalid node IPAM options (naming the flag).
Result<void> addClusterControllers(const ControllerContext& ctx, const NodeIpamOptions& nodeIpam,
                                   std::vector<std::unique_ptr<Controller>>& out);

}  // namespace sluice::controllers
