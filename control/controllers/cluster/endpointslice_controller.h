// The EndpointSlice controller (discovery.k8s.io/v1), as kube-proxy
// consumes it: for every Service with a selector, slices labelled
// kubernetes.io/service-name and managed-by endpointslice-controller.k8s.io,
// owned by the Service, one address type per IP family, at most 100
// endpoints each, grouped by resolved ports. Each endpoint carries
// ready/serving/terminating, so the dataplane drains terminating pods.
// A pod change rewrites only the slice holding that pod: endpoints stay in
// the slice they are in, new ones fill slices with room first.
#pragma once

#include "control/controllers/cluster/endpoints_common.h"

namespace sluice::controllers {

inline constexpr const char* kServiceNameLabel = "kubernetes.io/service-name";
inline constexpr const char* kManagedByLabel = "endpointslice.kubernetes.io/managed-by";
inline constexpr const char* kSliceControllerName = "endpointslice-controller.k8s.io";

class EndpointSliceController final : public ServiceEndpointsController {
 public:
  // --max-endpoints-per-slice's default.
  static constexpr size_t kMaxEndpointsPerSlice = 100;

  explicit EndpointSliceController(const ControllerContext& ctx);

 protected:
  Result<void> reconcile(const std::string& key) override;

 private:
  void onSlice(const client::ObjectPtr& slice, bool deleted);
  // The Service's managed slices: the informer's, or what this controller
  // last wrote when the informer has not caught up yet (so a quick second
  // sync neither duplicates a slice it just created nor edits a stale one).
  std::vector<client::ObjectPtr> slicesOf(const std::string& serviceKey);
  void wrote(const std::string& serviceKey, const Json& slice, bool deleted);

  client::Informer& slices_;
  mutable std::mutex mu_;
  // Managed slice keys by their Service's key.
  std::unordered_map<std::string, std::set<std::string>> byService_;
  std::unordered_map<std::string, client::ObjectPtr> written_;
};

}  // namespace sluice::controllers
