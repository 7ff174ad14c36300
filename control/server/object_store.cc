#include "control/server/object_store.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "control/api/json_codec.h"
#include "control/api/object_meta.h"

namespace sluice::server {
namespace {

// Protobuf's default parse depth is 100 messages, but free-form fields
// (google.protobuf.Struct: pod affinity, ...) take three messages per JSON
// level (Struct, its map entry, Value): an object accepted at the request
// body's depth limit (api::kMaxJsonDepth) would be stored and then never
// read back, failing every list of its kind. This covers that depth three
// times over plus the typed levels around it.
constexpr int kStoredRecursionLimit = 3 * static_cast<int>(api::kMaxJsonDepth) + 100;

}  // namespace

std::string ObjectStore::key(const api::ResourceType& type, std::string_view ns, std::string_view name) {
  std::string k = "/registry/" + type.storageName() + "/";
  if (type.namespaced) {
    k += ns;
    k += '/';
  }
  k += name;
  return k;
}

std::string ObjectStore::prefix(const api::ResourceType& type, std::string_view ns) {
  std::string p = "/registry/" + type.storageName() + "/";
  if (type.namespaced && !ns.empty()) {
    p += ns;
    p += '/';
  }
  return p;
}

std::string ObjectStore::encode(const google::protobuf::Message& obj) {
  // Deterministic, so that equal objects give equal bytes (no-op updates are
  // detected by comparing encodings; map order would otherwise vary).
  std::string out;
  {
    google::protobuf::io::StringOutputStream raw(&out);
    google::protobuf::io::CodedOutputStream coded(&raw);
    coded.SetSerializationDeterministic(true);
    const api::ObjectMeta& m = api::meta(obj);
    if (m.resourceversion().empty()) {
      obj.SerializeToCodedStream(&coded);
    } else {
      std::unique_ptr<google::protobuf::Message> copy(obj.New());
      copy->CopyFrom(obj);
      api::mutableMeta(*copy).clear_resourceversion();
      copy->SerializeToCodedStream(&coded);
    }
  }
  return out;
}

Result<ObjectStore::Object> ObjectStore::decode(const api::ResourceType& type, const store::KeyValue& kv) const {
  Object o;
  o.msg = type.newObject();
  google::protobuf::io::ArrayInputStream raw(kv.value.data(), static_cast<int>(kv.value.size()));
  google::protobuf::io::CodedInputStream coded(&raw);
  coded.SetRecursionLimit(kStoredRecursionLimit);
  if (!o.msg->ParseFromCodedStream(&coded) || !coded.ConsumedEntireMessage()) {
    return Error::internal("stored object " + kv.key + " does not decode as " + type.kind);
  }
  o.modRevision = kv.modRevision;
  o.encoded = kv.value;
  api::mutableMeta(*o.msg).set_resourceversion(std::to_string(kv.modRevision));
  api::setTypeMeta(*o.msg, type.apiVersion(), type.kind);
  return o;
}

Result<std::optional<ObjectStore::Object>> ObjectStore::get(const api::ResourceType& type, std::string_view ns,
                                                            std::string_view name) {
  auto kv = store_.get(key(type, ns, name));
  if (!kv) return kv.error();
  if (!kv->has_value()) return std::optional<Object>();
  auto o = decode(type, **kv);
  if (!o) return o.error();
  return std::optional<Object>(std::move(*o));
}

Result<int64_t> ObjectStore::create(const api::ResourceType& type, google::protobuf::Message& obj) {
  const api::ObjectMeta& m = api::meta(obj);
  auto rev = store_.create(key(type, m.namespace_(), m.name()), encode(obj));
  if (!rev) return rev.error();
  api::mutableMeta(obj).set_resourceversion(std::to_string(*rev));
  return *rev;
}

Result<int64_t> ObjectStore::update(const api::ResourceType& type, google::protobuf::Message& obj,
                                    int64_t expectedModRevision) {
  const api::ObjectMeta& m = api::meta(obj);
  auto kv = store_.update(key(type, m.namespace_(), m.name()), encode(obj), expectedModRevision);
  if (!kv) return kv.error();
  api::mutableMeta(obj).set_resourceversion(std::to_string(kv->modRevision));
  return kv->modRevision;
}

Result<store::KeyValue> ObjectStore::remove(const api::ResourceType& type, std::string_view ns,
                                            std::string_view name, int64_t expectedModRevision) {
  return store_.remove(key(type, ns, name), expectedModRevision);
}

}  // namespace sluice::server
