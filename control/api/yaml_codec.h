// YAML request bodies (Content-Type: application/yaml), which kube-apiserver
// decodes for create and update as sigs.k8s.io/yaml does: the document is
// converted to JSON and decoded like a JSON body. Scalars resolve as in
// go-yaml v2 (YAML 1.1: yes/no/on/off are booleans, 0x1F and 017 integers);
// quoted scalars stay strings.
//
// Hostile documents are errors, never exceptions or unbounded work:
// yaml-cpp's parse errors are caught, nesting is limited to kMaxJsonDepth,
// and aliases may not expand the document past a few nodes per input byte
// (the "billion laughs" of nested anchors).
#pragma once

#include <string_view>

#include "control/api/json_codec.h"
#include "dataplane/result.h"

namespace sluice::api {

// The first document of `text` as JSON; kInvalidArgument with the reason.
Result<Json> parseYaml(std::string_view text);

}  // namespace sluice::api
