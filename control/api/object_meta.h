// Access to what every stored object shares, through reflection: each
// top-level message has `kind` (1), `apiVersion` (2) and `metadata` (3), as
// Kubernetes' TypeMeta and ObjectMeta.
#pragma once

#include <google/protobuf/message.h>

#include <string>
#include <string_view>

#include "control/api/proto/meta.pb.h"

namespace sluice::api {

// Precondition for all: `obj` is a top-level object message (it has the
// three fields). Checked by the registry when types are registered.
bool isObjectMessage(const google::protobuf::Descriptor* d);

ObjectMeta& mutableMeta(google::protobuf::Message& obj);
const ObjectMeta& meta(const google::protobuf::Message& obj);

std::string kindOf(const google::protobuf::Message& obj);
std::string apiVersionOf(const google::protobuf::Message& obj);
void setTypeMeta(google::protobuf::Message& obj, std::string_view apiVersion, std::string_view kind);

// The message field named `name` (spec, status), or nullptr if the type has none.
google::protobuf::Message* mutableChildMessage(google::protobuf::Message& obj, std::string_view name);
const google::protobuf::Message* childMessage(const google::protobuf::Message& obj, std::string_view name);

// "ns/name" or "name" for messages.
std::string objectKey(const google::protobuf::Message& obj);

}  // namespace sluice::api
