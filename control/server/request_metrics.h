// kube-apiserver's request and storage metrics, under its names and label
// sets, so dashboards and alerts written for Kubernetes read sluice:
//   apiserver_request_total{verb,group,version,resource,subresource,scope,component,code}
//   apiserver_request_duration_seconds{verb,group,version,resource,subresource,scope,component}
//     (not for WATCH and CONNECT, which last as long as the client wants)
//   apiserver_current_inflight_requests{request_kind="readOnly"|"mutating"}
//   apiserver_longrunning_requests{verb,group,version,resource,subresource,scope,component}
//   apiserver_registered_watchers{group,version,kind}
//   apiserver_storage_objects{resource}
//   apiserver_storage_request_duration_seconds{operation,type},
//   apiserver_storage_request_errors_total
//     (instrumented_store.h: etcd_request_duration_seconds' role, named
//     for the store rather than etcd since the default store is SQLite)
// Verbs as kube-apiserver's RequestInfo: GET/LIST/WATCH, POST, PUT, PATCH,
// APPLY, DELETE/DELETECOLLECTION, CONNECT (exec, attach, portforward,
// proxy). Non-resource paths (/healthz, /metrics, discovery) have an empty
// resource and the path as subresource, as kube-apiserver reports them.
#pragma once

#include <chrono>
#include <string>

#include "control/server/http_server.h"

namespace sluice::server {

struct RequestInfo {
  std::string verb;
  std::string group;
  std::string version;
  std::string resource;
  std::string subresource;
  std::string scope;  // "resource", "namespace", "cluster", or "" (non-resource)
  bool longRunning = false;
};

RequestInfo requestInfo(const HttpRequest& req);

// Counts a finished request (and its duration unless long-running).
void recordRequest(const RequestInfo& info, int code, std::chrono::steady_clock::duration took);

}  // namespace sluice::server
