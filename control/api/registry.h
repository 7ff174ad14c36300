// The resource registry: every kind the API server serves, with its REST
// names (group, version, plural, short names), scope, subresources, and its
// strategy (defaulting, create/update preparation, validation, field
// selectors). The server, discovery and OpenAPI are generated from it, so a
// kind is added in one place.
#pragma once

#include <google/protobuf/message.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/api/field_errors.h"
#include "control/api/tables.h"

namespace sluice::api {

// Per-kind behaviour, as Kubernetes' registry strategies. Every method gets
// the kind's own message type.
class ResourceStrategy {
 public:
  virtual ~ResourceStrategy() = default;

  // SetDefaults_*: applied on create and on every update.
  virtual void applyDefaults(google::protobuf::Message& /*obj*/) const {}
  // Create: clears what clients may not set (status, mostly) and fills what
  // the server owns at birth (pod phase Pending, namespace phase Active).
  virtual void prepareForCreate(google::protobuf::Message& obj) const;
  // Update of the main resource: fields owned by the status subresource are
  // kept from `old`.
  virtual void prepareForUpdate(google::protobuf::Message& obj, const google::protobuf::Message& old) const;
  // Update through /status: only status changes; the rest is `old`'s.
  virtual void prepareForStatusUpdate(google::protobuf::Message& obj,
                                      const google::protobuf::Message& old) const;

  virtual void validate(const google::protobuf::Message& obj, FieldErrors& errs) const = 0;
  virtual void validateUpdate(const google::protobuf::Message& obj,
                              const google::protobuf::Message& old, FieldErrors& errs) const = 0;

  // Field selector support: metadata.name and metadata.namespace always, plus
  // these (e.g. spec.nodeName, status.phase for pods).
  virtual std::vector<std::string> selectableFields() const { return {}; }
  virtual std::optional<std::string> fieldValue(const google::protobuf::Message& /*obj*/,
                                                std::string_view /*field*/) const {
    return std::nullopt;
  }

 protected:
  // Whether the kind has a status subresource (status is then kept on main
  // updates and cleared on create).
  virtual bool hasStatus() const { return true; }
};

struct ResourceType {
  std::string group;    // "" for core
  std::string version;  // "v1"
  std::string kind;     // "Pod"
  std::string resource; // "pods"
  std::string singular; // "pod"
  std::vector<std::string> shortNames;
  std::vector<std::string> categories;
  std::vector<std::string> verbs;
  bool namespaced = true;
  bool statusSubresource = false;
  bool scaleSubresource = false;
  const google::protobuf::Message* prototype = nullptr;
  std::unique_ptr<ResourceStrategy> strategy;
  // The store's name for the resource when `resource` alone would clash
  // with another group's (metrics.k8s.io "pods"); empty: `resource`.
  std::string storageResource;
  // For a kind served in two versions from one stored message: turns the
  // stored form into this version's before it is encoded; nullptr: none.
  void (*toVersion)(google::protobuf::Message& obj) = nullptr;

  std::string apiVersion() const { return group.empty() ? version : group + "/" + version; }
  std::string listKind() const { return kind + "List"; }
  std::unique_ptr<google::protobuf::Message> newObject() const {
    return std::unique_ptr<google::protobuf::Message>(prototype->New());
  }
  // "pods" or "deployments.apps", as Kubernetes names a resource in errors.
  std::string qualifiedResource() const { return group.empty() ? resource : resource + "." + group; }
  const TablePrinter& printer() const { return tablePrinterFor(kind); }
  const std::string& storageName() const { return storageResource.empty() ? resource : storageResource; }
  // The object's JSON in this version (applies toVersion).
  Json encode(const google::protobuf::Message& obj) const;
  // Field selector value for any field, including the metadata ones.
  std::optional<std::string> fieldValue(const google::protobuf::Message& obj, std::string_view field) const;
  std::vector<std::string> selectableFields() const;
};

struct GroupVersion {
  std::string group;
  std::string version;
  std::string apiVersion() const { return group.empty() ? version : group + "/" + version; }
};

class Registry {
 public:
  // The kinds sluice serves. Built once; immutable and thread-safe after.
  static const Registry& builtin();

  const ResourceType* find(std::string_view group, std::string_view version,
                           std::string_view resource) const;
  const ResourceType* findKind(std::string_view apiVersion, std::string_view kind) const;
  const std::vector<std::unique_ptr<ResourceType>>& all() const { return types_; }
  // Served group versions in discovery order (core first, then groups with
  // their preferred version first).
  const std::vector<GroupVersion>& groupVersions() const { return groupVersions_; }
  std::vector<const ResourceType*> inGroupVersion(std::string_view group, std::string_view version) const;

 private:
  Registry();
  void addClusterKinds();
  std::vector<std::unique_ptr<ResourceType>> types_;
  std::vector<GroupVersion> groupVersions_;
};

}  // namespace sluice::api
