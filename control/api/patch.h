// The three PATCH bodies Kubernetes accepts, applied to an object's JSON:
//   application/merge-patch+json           RFC 7386 JSON merge patch
//   application/json-patch+json            RFC 6902 JSON patch
//   application/strategic-merge-patch+json Kubernetes' strategic merge patch,
//     driven by the (merge_key)/(patch_strategy) options of the object's
//     message descriptor, with the directives kubectl sends: `$patch:
//     replace|delete|merge`, `$setElementOrder/<field>`, `$retainKeys`,
//     `$deleteFromPrimitiveList/<field>`.
// Errors are kInvalidArgument with the reason, for a 422 (bad patch
// semantics) or 400 (malformed) by the caller.
#pragma once

#include <google/protobuf/descriptor.h>

#include "control/api/json_codec.h"
#include "dataplane/result.h"

namespace sluice::api {

Result<Json> applyMergePatch(const Json& target, const Json& patch);
Result<Json> applyJsonPatch(const Json& target, const Json& patch);
// `schema` is the object's message type (e.g. sluice.api.Deployment); keys it
// does not know are merged as plain JSON (the decoder then reports them).
Result<Json> applyStrategicMergePatch(const Json& original, const Json& patch,
                                      const google::protobuf::Descriptor* schema);

}  // namespace sluice::api
