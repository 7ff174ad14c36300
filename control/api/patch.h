// The three PATCH bodies Kubernetes accepts, applied to an object's JSON:
//   application/merge-patch+json           RFC 7386 JSON merge patch
//   application/json-patch+json            RFC 6902 JSON patch
//   application/strategic-merge-patch+json Kubernetes' strategic merge patch,
//     driven by the (merge_key)/(patch_strategy) options of the object's
//     message descriptor, with the directives kubectl sends: `$patch:
//     replace|delete|merge`, `$setElementOrder/<field>`, `$retainKeys`,
//     `$deleteFromPrimitiveList/<field>`.
// Every failure is a returned Error, never an exception or an assertion,
// whatever the patch and the document hold.
#pragma once

#include <google/protobuf/descriptor.h>

#include "control/api/json_codec.h"
#include "dataplane/result.h"

namespace sluice::api {

Result<Json> applyMergePatch(const Json& target, const Json& patch);
// RFC 6902 (json_patch.cc). Errors name the operation's index, op and
// path: kInvalidArgument for a malformed patch (not a list of operations, a
// missing member, a bad pointer: 400), kFailedPrecondition for an operation
// that does not apply to the document (a missing path, a parent that is not
// an object or array, a failed test: 422), kResourceExhausted past
// kube-apiserver's 10,000 operations (413).
Result<Json> applyJsonPatch(const Json& target, const Json& patch);
// `schema` is the object's message type (e.g. sluice.api.Deployment); keys it
// does not know are merged as plain JSON (the decoder then reports them).
Result<Json> applyStrategicMergePatch(const Json& original, const Json& patch,
                                      const google::protobuf::Descriptor* schema);

}  // namespace sluice::api
