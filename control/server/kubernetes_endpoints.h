// The `kubernetes` Service's backends, as kube-apiserver's endpoint
// reconciler keeps them: Endpoints default/kubernetes and EndpointSlice
// default/kubernetes name this server's advertise address and secure port
// (port "https"). The Service has no selector, so no controller writes
// them; the server does, on start and then periodically, re-creating them
// if deleted and restoring them if edited.
//
// The Endpoints carry endpointslice.kubernetes.io/skip-mirror=true and the
// slice only kubernetes.io/service-name=kubernetes, as kube-apiserver
// writes them (its EndpointsAdapter), so neither the EndpointSlice nor the
// mirroring controller claims them.
#pragma once

#include <cstdint>
#include <string>

#include "control/server/object_store.h"
#include "control/server/rest_handler.h"

namespace sluice::server {

// Creates or rewrites both objects when they differ from `address`:`port`.
// Only a lost compare-and-swap (a concurrent edit) fails with kAborted; the
// next call repairs it.
Result<void> reconcileKubernetesEndpoints(ObjectStore& objects, RestHandler& rest, const std::string& address,
                                          uint16_t port);

}  // namespace sluice::server
