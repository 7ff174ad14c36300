#include "control/controllers/workloads/register.h"

namespace sluice::controllers {

void addWorkloadControllers(const ControllerContext& /*ctx*/, std::vector<std::unique_ptr<Controller>>& /*out*/) {}

}  // namespace sluice::controllers
