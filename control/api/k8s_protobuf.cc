#include "control/api/k8s_protobuf.h"
#include "control/util/rfc3339.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>

#include <chrono>
#include <memory>

#include "control/api/proto/k8s_wire.pb.h"
#include "control/api/time_util.h"

namespace sluice::api {
namespace {

namespace pb = google::protobuf;
using FD = pb::FieldDescriptor;

constexpr std::string_view kMagic{"k8s\0", 4};

Json scalar(const pb::Message& m, const pb::Reflection* r, const FD* f, int index) {
  bool rep = index >= 0;
  switch (f->cpp_type()) {
    case FD::CPPTYPE_INT32: return rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f);
    case FD::CPPTYPE_INT64: return rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f);
    case FD::CPPTYPE_BOOL: return rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f);
    case FD::CPPTYPE_STRING: return rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
    default: return nullptr;
  }
}

// The Times sluice represents: its time points count nanoseconds in an
// int64 (years 1678 to 2262); seconds past that would overflow converting
// (signed overflow: undefined). Kubernetes allows years 1-9999, but no
// cluster object carries a time outside this range.
constexpr int64_t kMaxTimeSeconds =
    std::chrono::duration_cast<std::chrono::seconds>(Clock::duration::max()).count() - 1;

// The first problem toJson() met; the transcoding fails with it.
struct Problem {
  std::string message;
};

// Wire messages are proto2: a field is written iff the sender set it, which
// is exactly what the JSON needs. Time, IntOrString and Quantity have their
// JSON forms.
Json toJson(const pb::Message& m, Problem& problem) {
  const pb::Descriptor* d = m.GetDescriptor();
  const pb::Reflection* r = m.GetReflection();
  if (d == k8swire::Time::descriptor()) {
    const auto& t = static_cast<const k8swire::Time&>(m);
    if (t.seconds() == 0 && t.nanos() == 0) return nullptr;  // the zero Time is null
    if (t.seconds() < -kMaxTimeSeconds || t.seconds() > kMaxTimeSeconds) {
      if (problem.message.empty()) {
        problem.message = "a Time of " + std::to_string(t.seconds()) +
                          " seconds is outside the years sluice represents (1678-2262)";
      }
      return nullptr;
    }
    return util::formatRfc3339(Clock::from_time_t(static_cast<std::time_t>(t.seconds())));
  }
  if (d == k8swire::IntOrString::descriptor()) {
    const auto& v = static_cast<const k8swire::IntOrString&>(m);
    if (v.type() == 1) return v.strval();
    return v.intval();
  }
  if (d == k8swire::Quantity::descriptor()) return static_cast<const k8swire::Quantity&>(m).value();
  Json out = Json::object();
  for (int i = 0; i < d->field_count(); ++i) {
    const FD* f = d->field(i);
    if (f->is_map()) {
      if (r->FieldSize(m, f) == 0) continue;
      Json obj = Json::object();
      const FD* kf = f->message_type()->map_key();
      const FD* vf = f->message_type()->map_value();
      for (int k = 0; k < r->FieldSize(m, f); ++k) {
        const pb::Message& e = r->GetRepeatedMessage(m, f, k);
        std::string key = e.GetReflection()->GetString(e, kf);
        obj[key] = vf->cpp_type() == FD::CPPTYPE_MESSAGE ? toJson(e.GetReflection()->GetMessage(e, vf), problem)
                                                          : scalar(e, e.GetReflection(), vf, -1);
      }
      out[f->name()] = std::move(obj);
    } else if (f->is_repeated()) {
      if (r->FieldSize(m, f) == 0) continue;
      Json arr = Json::array();
      for (int k = 0; k < r->FieldSize(m, f); ++k) {
        arr.push_back(f->cpp_type() == FD::CPPTYPE_MESSAGE ? toJson(r->GetRepeatedMessage(m, f, k), problem) : scalar(m, r, f, k));
      }
      out[f->name()] = std::move(arr);
    } else if (r->HasField(m, f)) {
      Json v = f->cpp_type() == FD::CPPTYPE_MESSAGE ? toJson(r->GetMessage(m, f), problem) : scalar(m, r, f, -1);
      if (!v.is_null()) out[f->name()] = std::move(v);
    }
  }
  return out;
}

}  // namespace

Result<Json> k8sProtobufToJson(std::string_view body) {
  if (body.substr(0, kMagic.size()) != kMagic) {
    return Error::invalid("protobuf body does not start with the Kubernetes magic number");
  }
  k8swire::Unknown unknown;
  if (!unknown.ParseFromArray(body.data() + kMagic.size(), static_cast<int>(body.size() - kMagic.size()))) {
    return Error::invalid("protobuf body is not a runtime.Unknown");
  }
  const std::string& kind = unknown.typemeta().kind();
  std::unique_ptr<pb::Message> obj;
  if (kind == "Pod") obj = std::make_unique<k8swire::Pod>();
  else if (kind == "Deployment") obj = std::make_unique<k8swire::Deployment>();
  else if (kind == "Service") obj = std::make_unique<k8swire::Service>();
  else if (kind == "Namespace") obj = std::make_unique<k8swire::Namespace>();
  else if (kind == "HorizontalPodAutoscaler" && unknown.typemeta().apiversion() == "autoscaling/v1") {
    obj = std::make_unique<k8swire::HorizontalPodAutoscalerV1>();
  } else {
    return Error::invalid("protobuf bodies are accepted for Pod, Deployment, Service, Namespace and "
                          "autoscaling/v1 HorizontalPodAutoscaler, not " + unknown.typemeta().apiversion() + " " + kind);
  }
  if (!obj->ParseFromString(unknown.raw())) return Error::invalid("protobuf body does not decode as " + kind);
  Problem problem;
  Json j = toJson(*obj, problem);
  if (!problem.message.empty()) return Error::invalid("protobuf body: " + problem.message);
  j["apiVersion"] = unknown.typemeta().apiversion();
  j["kind"] = kind;
  return j;
}

}  // namespace sluice::api
