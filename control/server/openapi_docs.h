// What the OpenAPI generator (openapi.cc) cannot read from the protobuf
// descriptors: the descriptions `kubectl explain` prints (the .proto files
// carry implementation notes, not user documentation, so kinds and their
// major fields get short descriptions from a table here), and the schemas of
// the fields the object model keeps as free-form JSON (google.protobuf.Struct:
// affinity, dnsConfig, topologySpreadConstraints, ...), written out as
// Kubernetes defines them so that explain, client-side validation and
// strategic merge patches computed from the schema see real structure there.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "control/api/json_codec.h"

namespace sluice::server::openapi {

// The description of a message ("Container") or of one of its fields
// (message "Container", field "ports"); empty if there is none. Fields common
// to every object (apiVersion, kind, metadata, spec, status) have one
// regardless of the message.
std::string_view description(std::string_view message, std::string_view field = {});

// The definition name of the schema for a Struct-typed field ("PodSpec",
// "affinity" → "io.k8s.api.core.v1.Affinity"), or empty: then the field is a
// free-form object.
std::string_view structFieldDefinition(std::string_view message, std::string_view field);

// Hand-written definitions in v2 form ("#/definitions/..." references) by
// name: the Struct field schemas above and the primitive wrapper types
// (Time, MicroTime, IntOrString, Quantity). They may reference generated
// definitions by their Kubernetes names (e.g. ...meta.v1.LabelSelector).
const std::map<std::string, api::Json>& extraDefinitions();

}  // namespace sluice::server::openapi
