#include "control/util/json_fields.h"

namespace sluice::util {

namespace {
const Json& emptyObject() {
  static const Json kEmpty = Json::object();
  return kEmpty;
}
}  // namespace

const Json& metaOf(const Json& obj) {
  if (!obj.is_object()) return emptyObject();
  auto m = obj.find("metadata");
  return m != obj.end() && m->is_object() ? *m : emptyObject();
}

const Json& labelsOf(const Json& obj) {
  const Json& m = metaOf(obj);
  auto l = m.find("labels");
  return l != m.end() && l->is_object() ? *l : emptyObject();
}

std::string annotation(const Json& obj, const std::string& key) {
  const Json& m = metaOf(obj);
  auto a = m.find("annotations");
  if (a == m.end() || !a->is_object()) return "";
  auto v = a->find(key);
  return v != a->end() && v->is_string() ? v->get<std::string>() : "";
}

Json arrayOf(const Json& obj, const char* key) {
  if (!obj.is_object()) return Json::array();
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_array()) return Json::array();
  return *it;
}

const Json* findCondition(const Json& obj, std::string_view type) {
  if (!obj.is_object()) return nullptr;
  auto st = obj.find("status");
  if (st == obj.end() || !st->is_object()) return nullptr;
  auto cs = st->find("conditions");
  if (cs == st->end() || !cs->is_array()) return nullptr;
  for (const auto& c : *cs) {
    if (c.is_object() && c.value("type", "") == type) return &c;
  }
  return nullptr;
}

bool podReady(const Json& pod) {
  const Json* c = findCondition(pod, "Ready");
  return c != nullptr && c->value("status", "") == "True";
}

}  // namespace sluice::util
