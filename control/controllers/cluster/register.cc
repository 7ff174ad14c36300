#include "control/controllers/cluster/register.h"

namespace sluice::controllers {

void addClusterControllers(const ControllerContext& /*ctx*/, std::vector<std::unique_ptr<Controller>>& /*out*/) {}

}  // namespace sluice::controllers
