// Fuzz target for Kubernetes protobuf request bodies
// (application/vnd.kubernetes.protobuf, control/api/k8s_protobuf.h): the
// input is the body as kubectl's typed clients send it ("k8s\0" +
// runtime.Unknown). Whatever transcodes to JSON then takes the JSON path
// the server takes (decode into the kind, encode, dump), as in
// control/server/rest_write.cc.
//
// Invariants, else the process traps: no exception escapes and nothing
// crashes; a body that transcodes is an object naming the apiVersion and
// kind it came with, and its dump parses back to the same document.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "control/api/json_codec.h"
#include "control/api/k8s_protobuf.h"
#include "control/api/proto/apps.pb.h"
#include "control/api/proto/autoscaling.pb.h"
#include "control/api/proto/core.pb.h"

namespace {

using namespace sluice::api;  // NOLINT(google-build-using-namespace)

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "k8s_protobuf_fuzz invariant violated: %s\n", what);
  __builtin_trap();
}

template <typename Message>
void decodeAs(const Json& j) {
  Message m;
  std::vector<std::string> unknown;
  if (decodeJson(j, m, &unknown).ok()) (void)dumpJson(encodeJson(m));
}

void run(std::string_view body) {
  auto j = k8sProtobufToJson(body);
  if (!j) return;
  require(j->is_object(), "an object");
  require((*j)["kind"].is_string() && (*j)["apiVersion"].is_string(), "kind and apiVersion");
  const std::string text = dumpJson(*j);
  auto again = parseJson(text);
  require(again.ok(), "the dump parses");
  require(dumpJson(*again) == text, "the dump round-trips");
  const std::string kind = (*j)["kind"];
  if (kind == "Pod") decodeAs<Pod>(*j);
  if (kind == "Deployment") decodeAs<Deployment>(*j);
  if (kind == "Service") decodeAs<Service>(*j);
  if (kind == "Namespace") decodeAs<Namespace>(*j);
  if (kind == "HorizontalPodAutoscaler") decodeAs<HorizontalPodAutoscaler>(*j);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    run(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "k8s_protobuf_fuzz: exception escaped: %s\n", e.what());
    __builtin_trap();
  } catch (...) {
    std::fprintf(stderr, "k8s_protobuf_fuzz: unknown exception escaped\n");
    __builtin_trap();
  }
  return 0;
}
