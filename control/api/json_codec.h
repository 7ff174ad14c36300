// The JSON <-> protobuf codec for Kubernetes objects, driven by the message
// descriptors (field names ARE the Kubernetes JSON names).
//
// Not protobuf's JsonFormat, because Kubernetes JSON differs: int64 are JSON
// numbers (JsonFormat prints strings, kubectl wants numbers); IntOrString
// (`targetPort: 80` | `"http"`) and Quantity (`cpu: 1` | `"500m"`) are one
// field with two JSON types; empty fields are omitted (omitempty) unless the
// Go field lacks omitempty ((emit_zero) option); `null` means unset; and an
// unknown field must be reported with its full path
// (`spec.containers[0].imagePullPolicyy`) so the server can honour
// fieldValidation=Strict|Warn|Ignore exactly as Kubernetes does.
#pragma once

#include <google/protobuf/message.h>

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/result.h"

namespace sluice::api {

using Json = nlohmann::json;

// Decodes `json` into `msg` (which is cleared first). A JSON type that does
// not fit the field is an error whose message is Go's encoding/json wording
// ("json: cannot unmarshal string into Go struct field
// ContainerPort.spec.containers.ports.containerPort of type int32"), since
// that is what kubectl users see from Kubernetes. Unknown fields are not
// errors here: their paths are appended to `unknownFields` (if non-null) in
// document order, for the caller's validation policy.
Result<void> decodeJson(const Json& json, google::protobuf::Message& msg,
                        std::vector<std::string>* unknownFields);

// Encodes with Kubernetes' omitempty rules. Messages that are present are
// always written (`resources: {}`, `emptyDir: {}` are meaningful).
Json encodeJson(const google::protobuf::Message& msg);

// Deepest nesting of objects and arrays accepted in a request body. Go's
// decoder stops at 10,000; typed Kubernetes objects need ~20 levels, and at
// 100 every recursive routine over a document (patches, this codec,
// protobuf's parser with ObjectStore's recursion limit) stays far from the
// end of a thread's stack, and a stored object always parses back.
inline constexpr size_t kMaxJsonDepth = 100;

// Parses request text; the error is the message Kubernetes gives for
// malformed JSON bodies (also past kMaxJsonDepth).
Result<Json> parseJson(std::string_view text);

// Serializes a document for a response or a log: invalid UTF-8 (which can
// arrive in a protobuf body or a URL) is replaced, never thrown.
std::string dumpJson(const Json& j);

// obj[key] when `obj` is an object holding a string there, else `fallback`:
// for reading client documents without value()'s type_error exceptions.
std::string stringField(const Json& obj, std::string_view key, std::string fallback = "");

// The member at `path` (object keys), or nullptr if a step is missing or
// not an object: never inserts, throws or asserts as operator[] does.
const Json* findPath(const Json& j, std::initializer_list<std::string_view> path);

}  // namespace sluice::api
