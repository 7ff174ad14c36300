#include "control/server/responses.h"

namespace sluice::server {

Response Response::json(int status, const Json& body) {
  Response r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  return r;
}

Json statusJson(int code, std::string_view reason, const std::string& message, Json details) {
  Json s = {{"kind", "Status"},
            {"apiVersion", "v1"},
            {"metadata", Json::object()},
            {"status", code < 400 ? "Success" : "Failure"},
            {"message", message},
            {"code", code}};
  if (!reason.empty()) s["reason"] = std::string(reason);
  if (!details.is_null()) s["details"] = std::move(details);
  return s;
}

Response statusResponse(int code, std::string_view reason, const std::string& message, Json details) {
  return Response::json(code, statusJson(code, reason, message, std::move(details)));
}

namespace {

Json resourceDetails(const api::ResourceType& type, std::string_view name) {
  Json d = {{"name", std::string(name)}, {"kind", type.resource}};
  if (!type.group.empty()) d["group"] = type.group;
  return d;
}

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

}  // namespace

Response notFound(const api::ResourceType& type, std::string_view name) {
  return statusResponse(404, "NotFound", type.qualifiedResource() + " " + quoted(name) + " not found",
                        resourceDetails(type, name));
}

Response alreadyExists(const api::ResourceType& type, std::string_view name) {
  return statusResponse(409, "AlreadyExists", type.qualifiedResource() + " " + quoted(name) + " already exists",
                        resourceDetails(type, name));
}

Response conflict(const api::ResourceType& type, std::string_view name, std::string_view why) {
  return statusResponse(409, "Conflict",
                        "Operation cannot be fulfilled on " + type.qualifiedResource() + " " + quoted(name) +
                            ": " + std::string(why),
                        resourceDetails(type, name));
}

Response invalid(const api::ResourceType& type, std::string_view name, const api::FieldErrors& errs) {
  std::string qualifiedKind = type.group.empty() ? type.kind : type.kind + "." + type.group;
  Json causes = Json::array();
  for (const auto& e : errs.errors()) {
    causes.push_back({{"reason", std::string(e.reason())}, {"message", e.body()}, {"field", e.field}});
  }
  Json details = {{"name", std::string(name)}, {"kind", type.kind}, {"causes", causes}};
  if (!type.group.empty()) details["group"] = type.group;
  return statusResponse(422, "Invalid", qualifiedKind + " " + quoted(name) + " is invalid: " + errs.summary(),
                        std::move(details));
}

Response forbidden(const api::ResourceType& type, std::string_view name, std::string_view why) {
  return statusResponse(403, "Forbidden",
                        type.qualifiedResource() + " " + quoted(name) + " is forbidden: " + std::string(why),
                        resourceDetails(type, name));
}

Response badRequest(const std::string& message) { return statusResponse(400, "BadRequest", message); }

Response gone(const std::string& message) { return statusResponse(410, "Expired", message); }

Response internalError(const std::string& message) {
  return statusResponse(500, "InternalError", "Internal error occurred: " + message,
                        Json{{"causes", Json::array({{{"message", message}}})}});
}

Response methodNotSupported(std::string_view method, const std::string& what) {
  return statusResponse(405, "MethodNotAllowed",
                        "the server does not allow this method on the requested resource (" +
                            std::string(method) + " " + what + ")");
}

Response fromError(const Error& e, const api::ResourceType* type, std::string_view name) {
  switch (e.code) {
    case ErrorCode::kNotFound:
      return type != nullptr ? notFound(*type, name) : statusResponse(404, "NotFound", e.message);
    case ErrorCode::kAlreadyExists:
      return type != nullptr ? alreadyExists(*type, name) : statusResponse(409, "AlreadyExists", e.message);
    case ErrorCode::kAborted:
      return type != nullptr ? conflict(*type, name, kStaleObject) : statusResponse(409, "Conflict", e.message);
    case ErrorCode::kOutOfRange: return gone(e.message);
    case ErrorCode::kInvalidArgument: return badRequest(e.message);
    case ErrorCode::kFailedPrecondition:
      return type != nullptr ? forbidden(*type, name, e.message) : statusResponse(403, "Forbidden", e.message);
    case ErrorCode::kUnavailable:
      return statusResponse(503, "ServiceUnavailable", e.message);
    case ErrorCode::kResourceExhausted:
      return statusResponse(429, "TooManyRequests", e.message);
    case ErrorCode::kInternal: break;
  }
  return internalError(e.message);
}

}  // namespace sluice::server
