// The Endpoints (v1) controller: for every Service with a selector, one
// Endpoints object of the same name listing its pods — ready ones under
// `addresses`, the rest under `notReadyAddresses` (all under `addresses`
// with publishNotReadyAddresses), terminating pods left out — grouped into
// subsets by their resolved ports. Services without a selector keep their
// user-managed Endpoints. As kube-controller-manager's endpoint controller.
#pragma once

#include "control/controllers/cluster/endpoints_common.h"

namespace sluice::controllers {

class EndpointsController final : public ServiceEndpointsController {
 public:
  // Kubernetes truncates Endpoints at this many addresses (maxCapacity) and
  // annotates them; EndpointSlices carry the rest.
  static constexpr size_t kMaxAddresses = 1000;

  explicit EndpointsController(const ControllerContext& ctx);

 protected:
  Result<void> reconcile(const std::string& key) override;

 private:
  client::Informer& endpoints_;
};

}  // namespace sluice::controllers
