// Fuzz target for what the API server parses from clients (control/api):
// JSON, JSON patch, merge and strategic merge patch, YAML bodies, label
// and field selectors, quantities, and decoding into typed objects. The
// first byte picks the parser, the rest is its text. Invariant: every input
// is a value or an Error, never an exception, an assertion or a crash: in
// `sluice up` any of those would take the controllers and the agent down
// with the server.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <string_view>

#include "control/api/json_codec.h"
#include "control/api/patch.h"
#include "control/api/proto/apps.pb.h"
#include "control/api/proto/core.pb.h"
#include "control/api/quantity.h"
#include "control/api/selector.h"
#include "control/api/yaml_codec.h"

namespace {

using namespace sluice::api;

// Names the violated invariant before trapping (traps merge, lines blur).
[[noreturn]] void fail(int mode, const char* what) {
  std::fprintf(stderr, "api_input_fuzz: mode %d: exception escaped: %s\n", mode, what);
  __builtin_trap();
}

const Json& target() {
  static const Json kDeployment = Json::parse(R"({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a/b"]},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
      "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
      "template": {"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
                                 "env": [{"name": "A", "value": "1"}]}]}}}})");
  return kDeployment;
}

// A patched or decoded document must also survive decoding as the kind and
// encoding back, as the server does next.
void roundTrip(const Json& j) {
  Deployment d;
  if (decodeJson(j, d, nullptr).ok()) (void)dumpJson(encodeJson(d));
}

void run(int mode, std::string_view text) {
  switch (mode) {
    case 0: {  // JSON patch
      auto p = parseJson(text);
      if (!p) return;
      if (auto r = applyJsonPatch(target(), *p); r.ok()) roundTrip(*r);
      return;
    }
    case 1: {  // merge patch
      auto p = parseJson(text);
      if (!p) return;
      if (auto r = applyMergePatch(target(), *p); r.ok()) roundTrip(*r);
      return;
    }
    case 2: {  // strategic merge patch
      auto p = parseJson(text);
      if (!p) return;
      if (auto r = applyStrategicMergePatch(target(), *p, Deployment::descriptor()); r.ok())
        roundTrip(*r);
      return;
    }
    case 3: {  // selectors
      if (auto s = Selector::parse(text); s.ok()) {
        std::map<std::string, std::string> labels = {{"app", "web"}, {"n", "7"}};
        (void)s->matches(labels);
        (void)Selector::parse(s->toString());
      }
      if (auto f = FieldSelector::parse(text); f.ok()) {
        (void)f->matches([](std::string_view) { return std::optional<std::string>("x"); });
      }
      return;
    }
    case 4: {  // quantities
      if (auto q = parseQuantity(text); q.ok()) (void)q->canonical();
      return;
    }
    case 5: {  // YAML bodies
      if (auto y = parseYaml(text); y.ok()) {
        Pod pod;
        if (decodeJson(*y, pod, nullptr).ok()) (void)dumpJson(encodeJson(pod));
      }
      return;
    }
    default: {  // JSON bodies into typed objects
      auto j = parseJson(text);
      if (!j) return;
      Pod pod;
      std::vector<std::string> unknown;
      if (decodeJson(*j, pod, &unknown).ok()) (void)dumpJson(encodeJson(pod));
      Service svc;
      if (decodeJson(*j, svc, &unknown).ok()) (void)dumpJson(encodeJson(svc));
      roundTrip(*j);
      return;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  int mode = data[0] % 7;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    run(mode, text);
  } catch (const std::exception& e) {
    fail(mode, e.what());
  } catch (...) {
    fail(mode, "unknown exception");
  }
  return 0;
}
