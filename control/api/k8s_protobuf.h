// Request bodies in Kubernetes' protobuf encoding
// (application/vnd.kubernetes.protobuf: "k8s\0" + runtime.Unknown wrapping
// the object), as kubectl 1.33's typed clients send for `kubectl create
// deployment|service|namespace`. They are transcoded to the object's JSON,
// so they take exactly the path a JSON body takes.
#pragma once

#include <string_view>

#include "control/api/json_codec.h"
#include "dataplane/result.h"

namespace sluice::api {

inline constexpr std::string_view kProtobufContentType = "application/vnd.kubernetes.protobuf";

// Supported kinds: Pod, Deployment, Service, Namespace (the fields their
// kubectl generators set). Others are kInvalidArgument (the server answers
// 415, and clients retry with JSON only if they can).
Result<Json> k8sProtobufToJson(std::string_view body);

}  // namespace sluice::api
