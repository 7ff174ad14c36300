// Field access on Kubernetes objects as JSON (what the REST client and the
// informers carry), tolerant of absent and null fields, which the wire
// treats alike: the one home of these accessors for every controller, the
// agent and the server.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace sluice::util {

using Json = nlohmann::json;

// metadata as an object (never null).
const Json& metaOf(const Json& obj);
// metadata.labels as an object (never null).
const Json& labelsOf(const Json& obj);
// metadata.annotations[key], "" when absent or not a string.
std::string annotation(const Json& obj, const std::string& key);
// obj[key] if it is an array, else an empty array.
Json arrayOf(const Json& obj, const char* key);
// status.conditions[] of this type, or nullptr.
const Json* findCondition(const Json& obj, std::string_view type);
// A pod's Ready condition is True (k8s.io/kubernetes/pkg/api/v1/pod).
bool podReady(const Json& pod);

}  // namespace sluice::util
