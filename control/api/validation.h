// Validation as Kubernetes' pkg/apis/*/validation does it for the fields
// sluice models: same rules, same field paths, same messages. Each function
// appends to `errs`; an empty list means valid. Defaults are applied first,
// so "unset" and "defaulted" need not be told apart here.
#pragma once

#include <string>
#include <string_view>

#include "control/api/field_errors.h"
#include "control/api/names.h"
#include "control/api/proto/apps.pb.h"
#include "control/api/proto/core.pb.h"
#include "control/api/proto/discovery.pb.h"
#include "control/api/proto/meta.pb.h"

namespace sluice::api {

// How an object's name is checked (differs per kind, as in Kubernetes).
enum class NameRule : uint8_t { kDns1123Subdomain, kDns1123Label, kDns1035Label, kPathSegment };

void validateObjectMeta(const ObjectMeta& meta, bool namespaced, NameRule rule, FieldErrors& errs);
// Immutable metadata on update (name, namespace, uid, creationTimestamp).
void validateObjectMetaUpdate(const ObjectMeta& meta, const ObjectMeta& old, FieldErrors& errs);
void validateLabels(const google::protobuf::Map<std::string, std::string>& labels,
                    const std::string& path, FieldErrors& errs);
void validateLabelSelector(const LabelSelector& sel, const std::string& path, FieldErrors& errs);

void validatePodSpec(const PodSpec& spec, const std::string& path, FieldErrors& errs);
void validatePod(const Pod& pod, FieldErrors& errs);
void validatePodUpdate(const Pod& pod, const Pod& old, FieldErrors& errs);

void validateService(const Service& svc, FieldErrors& errs);
void validateServiceUpdate(const Service& svc, const Service& old, FieldErrors& errs);

void validateReplicaSet(const ReplicaSet& rs, FieldErrors& errs);
void validateReplicaSetUpdate(const ReplicaSet& rs, const ReplicaSet& old, FieldErrors& errs);
void validateDeployment(const Deployment& d, FieldErrors& errs);
void validateDeploymentUpdate(const Deployment& d, const Deployment& old, FieldErrors& errs);

void validateNamespace(const Namespace& ns, FieldErrors& errs);
void validateNode(const Node& node, FieldErrors& errs);
void validateEndpoints(const Endpoints& ep, FieldErrors& errs);
void validateEndpointSlice(const EndpointSlice& slice, FieldErrors& errs);
void validateEvent(const Event& ev, FieldErrors& errs);

// Go's %#v of a map[string]string / LabelSelector, as Kubernetes puts them in
// messages ("map[string]string{\"app\":\"web\"}").
std::string goMapString(const google::protobuf::Map<std::string, std::string>& m);
std::string goSelectorString(const LabelSelector& sel);

}  // namespace sluice::api
