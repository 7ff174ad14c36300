// Responses and Kubernetes Status errors. Every failure the API server
// returns is a meta/v1 Status whose reason, code and message match what
// Kubernetes sends for the same case, so kubectl's error printing (and
// client-go's apierrors.IsNotFound/IsConflict/...) behave as with a real
// cluster.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "control/api/field_errors.h"
#include "control/api/json_codec.h"
#include "control/api/registry.h"
#include "dataplane/result.h"

namespace sluice::server {

using api::Json;

struct Response {
  int status = 200;
  std::string contentType = "application/json";
  std::string body;
  std::vector<std::string> warnings;  // sent as `Warning: 299 - "..."`

  static Response json(int status, const Json& body);
};

Json statusJson(int code, std::string_view reason, const std::string& message, Json details = nullptr);
Response statusResponse(int code, std::string_view reason, const std::string& message, Json details = nullptr);

// `pods "web" not found` (details: name, group, kind = resource).
Response notFound(const api::ResourceType& type, std::string_view name);
Response alreadyExists(const api::ResourceType& type, std::string_view name);
// Operation cannot be fulfilled on pods "web": <why>
Response conflict(const api::ResourceType& type, std::string_view name, std::string_view why);
// Pod "web" is invalid: <errors>; details carry one cause per field error.
Response invalid(const api::ResourceType& type, std::string_view name, const api::FieldErrors& errs);
Response forbidden(const api::ResourceType& type, std::string_view name, std::string_view why);
Response badRequest(const std::string& message);
Response gone(const std::string& message);
Response internalError(const std::string& message);
Response methodNotSupported(std::string_view method, const std::string& what);

// Maps a store/library Error onto the Status Kubernetes would send.
Response fromError(const Error& e, const api::ResourceType* type, std::string_view name);

// The conflict message for a stale resourceVersion.
inline constexpr std::string_view kStaleObject =
    "the object has been modified; please apply your changes to the latest version and try again";

}  // namespace sluice::server
