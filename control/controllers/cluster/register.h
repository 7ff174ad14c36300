// The cluster controllers, added to the manager in dependency order.
#pragma once

#include <memory>
#include <vector>

#include "control/controllers/controller.h"

namespace sluice::controllers {

void addClusterControllers(const ControllerContext& ctx, std::vector<std::unique_ptr<Controller>>& out);

}  // namespace sluice::controllers
