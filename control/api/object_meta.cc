#include "control/api/object_meta.h"

#include <google/protobuf/descriptor.h>

namespace sluice::api {

namespace pb = google::protobuf;

bool isObjectMessage(const pb::Descriptor* d) {
  const pb::FieldDescriptor* k = d->FindFieldByNumber(1);
  const pb::FieldDescriptor* v = d->FindFieldByNumber(2);
  const pb::FieldDescriptor* m = d->FindFieldByNumber(3);
  return k != nullptr && k->name() == "kind" && v != nullptr && v->name() == "apiVersion" &&
         m != nullptr && m->name() == "metadata" &&
         m->message_type() == ObjectMeta::descriptor();
}

ObjectMeta& mutableMeta(pb::Message& obj) {
  const pb::FieldDescriptor* f = obj.GetDescriptor()->FindFieldByNumber(3);
  return static_cast<ObjectMeta&>(*obj.GetReflection()->MutableMessage(&obj, f));
}

const ObjectMeta& meta(const pb::Message& obj) {
  const pb::FieldDescriptor* f = obj.GetDescriptor()->FindFieldByNumber(3);
  return static_cast<const ObjectMeta&>(obj.GetReflection()->GetMessage(obj, f));
}

std::string kindOf(const pb::Message& obj) {
  return obj.GetReflection()->GetString(obj, obj.GetDescriptor()->FindFieldByNumber(1));
}

std::string apiVersionOf(const pb::Message& obj) {
  return obj.GetReflection()->GetString(obj, obj.GetDescriptor()->FindFieldByNumber(2));
}

void setTypeMeta(pb::Message& obj, std::string_view apiVersion, std::string_view kind) {
  const pb::Reflection* r = obj.GetReflection();
  r->SetString(&obj, obj.GetDescriptor()->FindFieldByNumber(1), std::string(kind));
  r->SetString(&obj, obj.GetDescriptor()->FindFieldByNumber(2), std::string(apiVersion));
}

pb::Message* mutableChildMessage(pb::Message& obj, std::string_view name) {
  const pb::FieldDescriptor* f = obj.GetDescriptor()->FindFieldByName(std::string(name));
  if (f == nullptr || f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE || f->is_repeated()) {
    return nullptr;
  }
  return obj.GetReflection()->MutableMessage(&obj, f);
}

const pb::Message* childMessage(const pb::Message& obj, std::string_view name) {
  const pb::FieldDescriptor* f = obj.GetDescriptor()->FindFieldByName(std::string(name));
  if (f == nullptr || f->cpp_type() != pb::FieldDescriptor::CPPTYPE_MESSAGE || f->is_repeated()) {
    return nullptr;
  }
  return &obj.GetReflection()->GetMessage(obj, f);
}

std::string objectKey(const pb::Message& obj) {
  const ObjectMeta& m = meta(obj);
  return m.namespace_().empty() ? m.name() : m.namespace_() + "/" + m.name();
}

}  // namespace sluice::api
