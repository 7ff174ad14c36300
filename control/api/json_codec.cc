#include "control/api/json_codec.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/struct.pb.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "control/api/proto/options.pb.h"
#include "control/api/quantity.h"

namespace sluice::api {
namespace {

namespace pb = google::protobuf;
using FD = pb::FieldDescriptor;

constexpr std::string_view kIntOrString = "sluice.api.IntOrString";
constexpr std::string_view kQuantity = "sluice.api.Quantity";
constexpr std::string_view kStruct = "google.protobuf.Struct";
constexpr std::string_view kValue = "google.protobuf.Value";

std::string jsonTypeName(const Json& j) {
  switch (j.type()) {
    case Json::value_t::string: return "string";
    case Json::value_t::boolean: return "bool";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float: return "number";
    case Json::value_t::array: return "array";
    case Json::value_t::object: return "object";
    default: return "null";
  }
}

// The Go type name a Kubernetes user sees in decode errors.
std::string goTypeName(const FD* f, bool element) {
  if (f->is_map() && !element) {
    const FD* v = f->message_type()->map_value();
    return "map[string]" + goTypeName(v, true);
  }
  if (f->is_repeated() && !element) return "[]" + goTypeName(f, true);
  switch (f->cpp_type()) {
    case FD::CPPTYPE_INT32: return "int32";
    case FD::CPPTYPE_INT64: return "int64";
    case FD::CPPTYPE_UINT32: return "uint32";
    case FD::CPPTYPE_UINT64: return "uint64";
    case FD::CPPTYPE_DOUBLE: return "float64";
    case FD::CPPTYPE_FLOAT: return "float32";
    case FD::CPPTYPE_BOOL: return "bool";
    case FD::CPPTYPE_STRING: return "string";
    case FD::CPPTYPE_ENUM: return "string";
    case FD::CPPTYPE_MESSAGE: {
      std::string_view full = f->message_type()->full_name();
      if (full == kIntOrString) return "intstr.IntOrString";
      if (full == kQuantity) return "resource.Quantity";
      if (full == kStruct || full == kValue) return "interface {}";
      return "v1." + f->message_type()->name();
    }
  }
  return "unknown";
}

class Decoder {
 public:
  explicit Decoder(std::vector<std::string>* unknown) : unknown_(unknown) {}

  // `path` has indices (for unknown-field reports); `goPath` is dotted field
  // names only, as Go's errors print them; `owner` is the Go struct name.
  Result<void> message(const Json& j, pb::Message& msg, const std::string& path,
                       const std::string& goPath, const std::string& owner, const FD* via) {
    const pb::Descriptor* d = msg.GetDescriptor();
    std::string_view full = d->full_name();
    if (full == kStruct) return structValue(j, msg, path, goPath, owner, via);
    if (!j.is_object()) return typeError(j, owner, goPath, via);
    const pb::Reflection* r = msg.GetReflection();
    for (const auto& [key, value] : j.items()) {
      const FD* f = d->FindFieldByName(key);
      std::string childPath = path.empty() ? key : path + "." + key;
      if (f == nullptr) {
        if (unknown_ != nullptr) unknown_->push_back(childPath);
        continue;
      }
      if (value.is_null()) continue;  // null = unset, as Kubernetes decodes it
      std::string childGo = goPath.empty() ? key : goPath + "." + key;
      const std::string& childOwner = d->name();
      if (f->is_map()) {
        auto res = mapField(value, msg, r, f, childPath, childGo, childOwner);
        if (!res) return res;
      } else if (f->is_repeated()) {
        if (!value.is_array()) return typeError(value, childOwner, childGo, f);
        for (size_t i = 0; i < value.size(); ++i) {
          std::string elemPath = childPath + "[" + std::to_string(i) + "]";
          const Json& e = value[i];
          if (f->cpp_type() == FD::CPPTYPE_MESSAGE) {
            pb::Message* m = r->AddMessage(&msg, f);
            if (e.is_null()) continue;
            auto res = messageOrSpecial(e, *m, elemPath, childGo, childOwner, f);
            if (!res) return res;
          } else {
            auto res = addScalar(e, msg, r, f, childGo, childOwner);
            if (!res) return res;
          }
        }
      } else if (f->cpp_type() == FD::CPPTYPE_MESSAGE) {
        pb::Message* m = r->MutableMessage(&msg, f);
        auto res = messageOrSpecial(value, *m, childPath, childGo, childOwner, f);
        if (!res) return res;
      } else {
        auto res = setScalar(value, msg, r, f, childGo, childOwner);
        if (!res) return res;
      }
    }
    return okResult();
  }

 private:
  Result<void> messageOrSpecial(const Json& j, pb::Message& m, const std::string& path,
                                const std::string& goPath, const std::string& owner,
                                const FD* f) {
    std::string_view full = m.GetDescriptor()->full_name();
    if (full == kIntOrString) {
      const pb::Reflection* r = m.GetReflection();
      const pb::Descriptor* d = m.GetDescriptor();
      if (j.is_string()) {
        r->SetString(&m, d->FindFieldByName("strVal"), j.get<std::string>());
        return okResult();
      }
      if (j.is_number_integer() || j.is_number_unsigned()) {
        int64_t v = j.get<int64_t>();
        if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
          return typeError(j, owner, goPath, f);
        }
        r->SetInt32(&m, d->FindFieldByName("intVal"), static_cast<int32_t>(v));
        return okResult();
      }
      return typeError(j, owner, goPath, f);
    }
    if (full == kQuantity) {
      std::string text;
      if (j.is_string()) {
        text = j.get<std::string>();
      } else if (j.is_number_integer()) {
        text = std::to_string(j.get<int64_t>());
      } else if (j.is_number_unsigned()) {
        text = std::to_string(j.get<uint64_t>());
      } else if (j.is_number_float()) {
        text = j.dump();
      } else {
        return typeError(j, owner, goPath, f);
      }
      auto q = parseQuantity(text);
      if (!q) return q.error();
      m.GetReflection()->SetString(&m, m.GetDescriptor()->FindFieldByName("value"),
                                   q->canonical());
      return okResult();
    }
    if (full == kValue) {
      auto* v = dynamic_cast<pb::Value*>(&m);
      if (v == nullptr) return Error::internal("google.protobuf.Value is not generated");
      toValue(j, *v);
      return okResult();
    }
    return message(j, m, path, goPath, owner, f);
  }

  Result<void> structValue(const Json& j, pb::Message& msg, const std::string& /*path*/,
                           const std::string& goPath, const std::string& owner, const FD* via) {
    auto* s = dynamic_cast<pb::Struct*>(&msg);
    if (s == nullptr) return Error::internal("google.protobuf.Struct is not generated");
    if (!j.is_object()) return typeError(j, owner, goPath, via);
    for (const auto& [key, value] : j.items()) toValue(value, (*s->mutable_fields())[key]);
    return okResult();
  }

  static void toValue(const Json& j, pb::Value& v) {
    switch (j.type()) {
      case Json::value_t::null: v.set_null_value(pb::NULL_VALUE); break;
      case Json::value_t::boolean: v.set_bool_value(j.get<bool>()); break;
      case Json::value_t::string: v.set_string_value(j.get<std::string>()); break;
      case Json::value_t::number_integer:
      case Json::value_t::number_unsigned:
      case Json::value_t::number_float: v.set_number_value(j.get<double>()); break;
      case Json::value_t::array: {
        auto* l = v.mutable_list_value();
        for (const auto& e : j) toValue(e, *l->add_values());
        break;
      }
      case Json::value_t::object: {
        auto* s = v.mutable_struct_value();
        for (const auto& [k, e] : j.items()) toValue(e, (*s->mutable_fields())[k]);
        break;
      }
      default: v.set_null_value(pb::NULL_VALUE); break;
    }
  }

  Result<void> mapField(const Json& j, pb::Message& msg, const pb::Reflection* r, const FD* f,
                        const std::string& path, const std::string& goPath,
                        const std::string& owner) {
    if (!j.is_object()) return typeError(j, owner, goPath, f);
    const FD* keyField = f->message_type()->map_key();
    const FD* valueField = f->message_type()->map_value();
    for (const auto& [key, value] : j.items()) {
      pb::Message* entry = r->AddMessage(&msg, f);
      const pb::Reflection* er = entry->GetReflection();
      er->SetString(entry, keyField, key);
      if (value.is_null()) continue;
      if (valueField->cpp_type() == FD::CPPTYPE_MESSAGE) {
        auto res = messageOrSpecial(value, *er->MutableMessage(entry, valueField),
                                    path + "." + key, goPath, owner, f);
        if (!res) return res;
      } else {
        // Go reports a bad map value against the map field itself.
        if (!value.is_string() && valueField->cpp_type() == FD::CPPTYPE_STRING) {
          return Error::invalid("json: cannot unmarshal " + jsonTypeName(value) +
                                " into Go struct field " + owner + "." + goPath + " of type " +
                                goTypeName(valueField, true));
        }
        auto res = setScalar(value, *entry, er, valueField, goPath, owner);
        if (!res) return res;
      }
    }
    return okResult();
  }

  Result<void> setScalar(const Json& j, pb::Message& msg, const pb::Reflection* r, const FD* f,
                         const std::string& goPath, const std::string& owner) {
    switch (f->cpp_type()) {
      case FD::CPPTYPE_STRING:
        if (!j.is_string()) return typeError(j, owner, goPath, f);
        r->SetString(&msg, f, j.get<std::string>());
        return okResult();
      case FD::CPPTYPE_BOOL:
        if (!j.is_boolean()) return typeError(j, owner, goPath, f);
        r->SetBool(&msg, f, j.get<bool>());
        return okResult();
      case FD::CPPTYPE_INT32:
      case FD::CPPTYPE_INT64:
      case FD::CPPTYPE_UINT32:
      case FD::CPPTYPE_UINT64: {
        auto v = integer(j, f);
        if (!v) return typeError(j, owner, goPath, f);
        if (f->cpp_type() == FD::CPPTYPE_INT32) r->SetInt32(&msg, f, static_cast<int32_t>(*v));
        if (f->cpp_type() == FD::CPPTYPE_INT64) r->SetInt64(&msg, f, *v);
        if (f->cpp_type() == FD::CPPTYPE_UINT32) r->SetUInt32(&msg, f, static_cast<uint32_t>(*v));
        if (f->cpp_type() == FD::CPPTYPE_UINT64) r->SetUInt64(&msg, f, static_cast<uint64_t>(*v));
        return okResult();
      }
      case FD::CPPTYPE_DOUBLE:
      case FD::CPPTYPE_FLOAT:
        if (!j.is_number()) return typeError(j, owner, goPath, f);
        if (f->cpp_type() == FD::CPPTYPE_DOUBLE) r->SetDouble(&msg, f, j.get<double>());
        else r->SetFloat(&msg, f, j.get<float>());
        return okResult();
      default:
        return typeError(j, owner, goPath, f);
    }
  }

  Result<void> addScalar(const Json& j, pb::Message& msg, const pb::Reflection* r, const FD* f,
                         const std::string& goPath, const std::string& owner) {
    switch (f->cpp_type()) {
      case FD::CPPTYPE_STRING:
        if (!j.is_string()) return typeError(j, owner, goPath, f, true);
        r->AddString(&msg, f, j.get<std::string>());
        return okResult();
      case FD::CPPTYPE_BOOL:
        if (!j.is_boolean()) return typeError(j, owner, goPath, f, true);
        r->AddBool(&msg, f, j.get<bool>());
        return okResult();
      case FD::CPPTYPE_INT32:
      case FD::CPPTYPE_INT64: {
        auto v = integer(j, f);
        if (!v) return typeError(j, owner, goPath, f, true);
        if (f->cpp_type() == FD::CPPTYPE_INT32) r->AddInt32(&msg, f, static_cast<int32_t>(*v));
        else r->AddInt64(&msg, f, *v);
        return okResult();
      }
      default:
        return typeError(j, owner, goPath, f, true);
    }
  }

  // An integer that fits the field, or nullopt. Go rejects fractions and
  // out-of-range numbers alike.
  static std::optional<int64_t> integer(const Json& j, const FD* f) {
    int64_t v = 0;
    if (j.is_number_integer()) {
      v = j.get<int64_t>();
    } else if (j.is_number_unsigned()) {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
      v = static_cast<int64_t>(u);
    } else {
      return std::nullopt;
    }
    switch (f->cpp_type()) {
      case FD::CPPTYPE_INT32:
        if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
          return std::nullopt;
        }
        break;
      case FD::CPPTYPE_UINT32:
        if (v < 0 || v > std::numeric_limits<uint32_t>::max()) return std::nullopt;
        break;
      case FD::CPPTYPE_UINT64:
        if (v < 0) return std::nullopt;
        break;
      default: break;
    }
    return v;
  }

  static Error typeError(const Json& j, const std::string& owner, const std::string& goPath,
                         const FD* f, bool element = false) {
    std::string what = jsonTypeName(j);
    if (j.is_number()) what += " " + j.dump();
    std::string type = f == nullptr ? "object" : goTypeName(f, element);
    if (goPath.empty()) return Error::invalid("json: cannot unmarshal " + what + " into Go value of type " + type);
    return Error::invalid("json: cannot unmarshal " + what + " into Go struct field " + owner +
                          "." + goPath + " of type " + type);
  }

  std::vector<std::string>* unknown_;
};

class Encoder {
 public:
  static Json message(const pb::Message& msg) {
    const pb::Descriptor* d = msg.GetDescriptor();
    std::string_view full = d->full_name();
    const pb::Reflection* r = msg.GetReflection();
    if (full == kIntOrString) {
      const FD* s = d->FindFieldByName("strVal");
      if (r->HasField(msg, s)) return r->GetString(msg, s);
      return r->GetInt32(msg, d->FindFieldByName("intVal"));
    }
    if (full == kQuantity) {
      std::string v = r->GetString(msg, d->FindFieldByName("value"));
      return v.empty() ? Json("0") : Json(v);
    }
    if (full == kStruct) {
      const auto& s = dynamic_cast<const pb::Struct&>(msg);
      Json out = Json::object();
      for (const auto& [k, v] : s.fields()) out[k] = value(v);
      return out;
    }
    if (full == kValue) return value(dynamic_cast<const pb::Value&>(msg));

    Json out = Json::object();
    for (int i = 0; i < d->field_count(); ++i) {
      const FD* f = d->field(i);
      const std::string& name = f->name();
      if (f->is_map()) {
        if (r->FieldSize(msg, f) == 0) continue;
        Json m = Json::object();
        const FD* kf = f->message_type()->map_key();
        const FD* vf = f->message_type()->map_value();
        for (int k = 0; k < r->FieldSize(msg, f); ++k) {
          const pb::Message& entry = r->GetRepeatedMessage(msg, f, k);
          const pb::Reflection* er = entry.GetReflection();
          std::string key = er->GetString(entry, kf);
          m[key] = vf->cpp_type() == FD::CPPTYPE_MESSAGE ? message(er->GetMessage(entry, vf))
                                                          : scalar(entry, er, vf);
        }
        out[name] = std::move(m);
      } else if (f->is_repeated()) {
        int n = r->FieldSize(msg, f);
        if (n == 0) continue;
        Json a = Json::array();
        for (int k = 0; k < n; ++k) a.push_back(repeatedElement(msg, r, f, k));
        out[name] = std::move(a);
      } else if (f->cpp_type() == FD::CPPTYPE_MESSAGE) {
        if (!r->HasField(msg, f)) continue;
        out[name] = message(r->GetMessage(msg, f));
      } else if (f->has_presence()) {
        if (!r->HasField(msg, f)) continue;
        out[name] = scalar(msg, r, f);
      } else {
        if (!r->HasField(msg, f) && !f->options().GetExtension(emit_zero)) continue;
        out[name] = scalar(msg, r, f);
      }
    }
    return out;
  }

 private:
  static Json value(const pb::Value& v) {
    switch (v.kind_case()) {
      case pb::Value::kBoolValue: return v.bool_value();
      case pb::Value::kStringValue: return v.string_value();
      case pb::Value::kNumberValue: {
        double n = v.number_value();
        // Integral numbers print as integers, as they came in.
        if (std::nearbyint(n) == n && std::fabs(n) < 9.007199254740992e15) {
          return static_cast<int64_t>(n);
        }
        return n;
      }
      case pb::Value::kListValue: {
        Json a = Json::array();
        for (const auto& e : v.list_value().values()) a.push_back(value(e));
        return a;
      }
      case pb::Value::kStructValue: {
        Json o = Json::object();
        for (const auto& [k, e] : v.struct_value().fields()) o[k] = value(e);
        return o;
      }
      default: return nullptr;
    }
  }

  static Json scalar(const pb::Message& msg, const pb::Reflection* r, const FD* f) {
    switch (f->cpp_type()) {
      case FD::CPPTYPE_INT32: return r->GetInt32(msg, f);
      case FD::CPPTYPE_INT64: return r->GetInt64(msg, f);
      case FD::CPPTYPE_UINT32: return r->GetUInt32(msg, f);
      case FD::CPPTYPE_UINT64: return r->GetUInt64(msg, f);
      case FD::CPPTYPE_DOUBLE: return r->GetDouble(msg, f);
      case FD::CPPTYPE_FLOAT: return r->GetFloat(msg, f);
      case FD::CPPTYPE_BOOL: return r->GetBool(msg, f);
      case FD::CPPTYPE_STRING: return r->GetString(msg, f);
      case FD::CPPTYPE_ENUM: return r->GetEnum(msg, f)->name();
      default: return nullptr;
    }
  }

  static Json repeatedElement(const pb::Message& msg, const pb::Reflection* r, const FD* f, int k) {
    switch (f->cpp_type()) {
      case FD::CPPTYPE_INT32: return r->GetRepeatedInt32(msg, f, k);
      case FD::CPPTYPE_INT64: return r->GetRepeatedInt64(msg, f, k);
      case FD::CPPTYPE_UINT32: return r->GetRepeatedUInt32(msg, f, k);
      case FD::CPPTYPE_UINT64: return r->GetRepeatedUInt64(msg, f, k);
      case FD::CPPTYPE_DOUBLE: return r->GetRepeatedDouble(msg, f, k);
      case FD::CPPTYPE_FLOAT: return r->GetRepeatedFloat(msg, f, k);
      case FD::CPPTYPE_BOOL: return r->GetRepeatedBool(msg, f, k);
      case FD::CPPTYPE_STRING: return r->GetRepeatedString(msg, f, k);
      case FD::CPPTYPE_ENUM: return r->GetRepeatedEnum(msg, f, k)->name();
      case FD::CPPTYPE_MESSAGE: return message(r->GetRepeatedMessage(msg, f, k));
    }
    return nullptr;
  }
};

}  // namespace

Result<void> decodeJson(const Json& json, pb::Message& msg, std::vector<std::string>* unknownFields) {
  msg.Clear();
  Decoder decoder(unknownFields);
  return decoder.message(json, msg, "", "", msg.GetDescriptor()->name(), nullptr);
}

Json encodeJson(const pb::Message& msg) { return Encoder::message(msg); }

namespace {

// The deepest nesting of `text` (outside strings), stopping early once past
// `limit`. The parser itself is iterative; what recurses is everything that
// walks the document afterwards.
size_t nestingDepth(std::string_view text, size_t limit) {
  size_t depth = 0;
  size_t deepest = 0;
  bool inString = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (inString) {
      if (c == '\\') ++i;
      else if (c == '"') inString = false;
    } else if (c == '"') {
      inString = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

}  // namespace

Result<Json> parseJson(std::string_view text) {
  if (nestingDepth(text, kMaxJsonDepth) > kMaxJsonDepth) {
    return Error::invalid("couldn't get version/kind; json parse error: exceeded max depth of " +
                          std::to_string(kMaxJsonDepth));
  }
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Error::invalid("couldn't get version/kind; json parse error: invalid JSON in request body");
  }
  return j;
}

std::string dumpJson(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

const Json* findPath(const Json& j, std::initializer_list<std::string_view> path) {
  const Json* cur = &j;
  for (std::string_view key : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(std::string(key));
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}

std::string stringField(const Json& obj, std::string_view key, std::string fallback) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(std::string(key));
  if (it == obj.end() || !it->is_string()) return fallback;
  return it->get<std::string>();
}

}  // namespace sluice::api
