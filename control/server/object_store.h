// Objects in the Store. Keys are "/registry/<resource>/<namespace>/<name>"
// ("/registry/<resource>/<name>" for cluster-scoped kinds), so a namespace or
// a whole resource is one prefix range. Values are the object's protobuf
// encoding with metadata.resourceVersion cleared: the resourceVersion IS the
// key's modRevision, filled in on every read, as Kubernetes does over etcd.
#pragma once

#include <google/protobuf/message.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "control/api/registry.h"
#include "control/store/store.h"

namespace sluice::server {

class ObjectStore {
 public:
  explicit ObjectStore(store::Store& store) : store_(store) {}

  store::Store& raw() { return store_; }

  static std::string key(const api::ResourceType& type, std::string_view ns, std::string_view name);
  // All objects of a type in `ns`, or in every namespace when `ns` is empty.
  static std::string prefix(const api::ResourceType& type, std::string_view ns);
  static std::string encode(const google::protobuf::Message& obj);

  struct Object {
    std::unique_ptr<google::protobuf::Message> msg;
    int64_t modRevision = 0;
    std::string encoded;  // as stored, for no-op detection
  };

  // Decodes a stored value and sets its resourceVersion.
  Result<Object> decode(const api::ResourceType& type, const store::KeyValue& kv) const;
  Result<std::optional<Object>> get(const api::ResourceType& type, std::string_view ns, std::string_view name);
  // Writes `obj` (its resourceVersion is ignored) and sets the new one.
  Result<int64_t> create(const api::ResourceType& type, google::protobuf::Message& obj);
  // Compare-and-swap on `expectedModRevision` (kAborted when stale).
  Result<int64_t> update(const api::ResourceType& type, google::protobuf::Message& obj,
                         int64_t expectedModRevision);
  Result<store::KeyValue> remove(const api::ResourceType& type, std::string_view ns, std::string_view name,
                                 int64_t expectedModRevision);

 private:
  store::Store& store_;
};

}  // namespace sluice::server
