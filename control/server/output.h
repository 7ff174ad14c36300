// Content negotiation for object responses: plain JSON objects and lists,
// or, when the client's Accept asks for it, a meta.k8s.io Table (kubectl get
// always asks) or PartialObjectMetadata (metadata-only clients).
#pragma once

#include <google/protobuf/message.h>

#include <string>
#include <vector>

#include "control/api/json_codec.h"
#include "control/api/registry.h"
#include "control/api/time_util.h"
#include "control/server/http_server.h"

namespace sluice::server {

using api::Json;

struct OutputFormat {
  enum class Kind : uint8_t { kObject, kTable, kPartialMetadata };
  Kind kind = Kind::kObject;
  std::string groupVersion = "meta.k8s.io/v1";  // of the Table / PartialObjectMetadata
  // Table rows carry "None", "Metadata" (default) or "Object" (?includeObject=).
  std::string includeObject = "Metadata";
};

OutputFormat negotiateOutput(const HttpRequest& req);

Json partialMetadataJson(const google::protobuf::Message& obj, const std::string& groupVersion);

// One Table row: the printer's cells, and the object as includeObject says.
Json tableRowJson(const api::ResourceType& type, const google::protobuf::Message& obj, const OutputFormat& fmt,
                  api::Clock::time_point now);

// One object in the requested form (a single-row Table for kTable).
Json renderObject(const api::ResourceType& type, const google::protobuf::Message& obj, const OutputFormat& fmt);

// A list in the requested form.
Json renderList(const api::ResourceType& type, const std::vector<const google::protobuf::Message*>& items,
                const OutputFormat& fmt, const std::string& resourceVersion, const std::string& continueToken,
                std::optional<int64_t> remaining);

}  // namespace sluice::server
