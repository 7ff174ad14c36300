#include "control/api/patch.h"

#include <algorithm>
#include <map>

#include "control/api/proto/options.pb.h"

namespace sluice::api {
namespace {

namespace pb = google::protobuf;

constexpr std::string_view kPatchDirective = "$patch";
constexpr std::string_view kRetainKeys = "$retainKeys";
constexpr std::string_view kSetElementOrder = "$setElementOrder/";
constexpr std::string_view kDeleteFromPrimitiveList = "$deleteFromPrimitiveList/";

bool startsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// What the schema says about one field of an object.
struct FieldMeta {
  const pb::Descriptor* schema = nullptr;  // element/message type to recurse with
  std::string mergeKey;
  bool mergeList = false;   // patchStrategy contains "merge"
  bool retainKeys = false;  // patchStrategy contains "retainKeys"
  bool mapOfMessages = false;
  bool replaceAtomically = false;  // IntOrString, Quantity: scalars in JSON
};

FieldMeta lookup(const pb::Descriptor* d, const std::string& key) {
  FieldMeta m;
  if (d == nullptr) return m;
  const pb::FieldDescriptor* f = d->FindFieldByName(key);
  if (f == nullptr) return m;
  const std::string& strategy = f->options().GetExtension(patch_strategy);
  m.mergeList = strategy.find("merge") != std::string::npos;
  m.retainKeys = strategy.find("retainKeys") != std::string::npos;
  m.mergeKey = f->options().GetExtension(merge_key);
  if (f->is_map()) {
    const pb::FieldDescriptor* v = f->message_type()->map_value();
    if (v->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      m.mapOfMessages = true;
      m.schema = v->message_type();
    }
    return m;
  }
  if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
    std::string_view full = f->message_type()->full_name();
    if (full == "sluice.api.IntOrString" || full == "sluice.api.Quantity") {
      m.replaceAtomically = true;
      return m;
    }
    if (full != "google.protobuf.Struct" && full != "google.protobuf.Value") m.schema = f->message_type();
  }
  return m;
}

void discardNulls(Json& j) {
  if (!j.is_object()) return;
  for (auto it = j.begin(); it != j.end();) {
    if (it->is_null()) {
      it = j.erase(it);
    } else {
      discardNulls(*it);
      ++it;
    }
  }
}

class StrategicMerge {
 public:
  Result<Json> mergeMap(Json original, Json patch, const pb::Descriptor* schema) {
    if (!original.is_object()) original = Json::object();
    if (auto it = patch.find(kPatchDirective); it != patch.end()) {
      if (!it->is_string()) return Error::invalid("invalid patch: $patch must be a string, got " + dumpJson(*it));
      std::string directive = it->get<std::string>();
      if (directive == "replace") {
        patch.erase(std::string(kPatchDirective));
        discardNulls(patch);
        return patch;
      }
      if (directive == "delete") return Json::object();
      if (directive != "merge") return Error::invalid("Unknown patch type: " + directive + " in map: " + dumpJson(patch));
      patch.erase(std::string(kPatchDirective));
    }
    if (auto it = patch.find(kRetainKeys); it != patch.end()) {
      if (!it->is_array()) return Error::invalid("invalid patch: $retainKeys must be a list");
      std::vector<std::string> keep;
      for (const auto& k : *it) {
        if (k.is_string()) keep.push_back(k.get<std::string>());
      }
      for (auto o = original.begin(); o != original.end();) {
        if (std::find(keep.begin(), keep.end(), o.key()) == keep.end()) {
          o = original.erase(o);
        } else {
          ++o;
        }
      }
      patch.erase(std::string(kRetainKeys));
    }

    // Lists with a $setElementOrder are merged together with their order.
    std::vector<std::string> keys;
    for (auto it = patch.begin(); it != patch.end(); ++it) keys.push_back(it.key());
    for (const auto& k : keys) {
      if (!startsWith(k, kSetElementOrder)) continue;
      std::string field = k.substr(kSetElementOrder.size());
      const Json& order = patch[k];
      if (!order.is_array()) return Error::invalid("invalid patch: " + k + " must be a list");
      FieldMeta meta = lookup(schema, field);
      Json originalList = original.contains(field) && original[field].is_array() ? original[field] : Json::array();
      bool patchHasList = patch.contains(field);
      if (patchHasList && patch[field].is_null()) continue;  // the list is deleted below
      Json patchList = patchHasList && patch[field].is_array() ? patch[field] : Json::array();
      Json merged;
      if (meta.mergeList || !patchHasList) {
        auto m = mergeList(originalList, patchList, meta, true);
        if (!m) return m;
        merged = std::move(*m);
      } else {
        merged = patchList;
      }
      auto ordered = normalizeOrder(merged, order, originalList, meta.mergeKey);
      if (!ordered) return ordered;
      original[field] = std::move(*ordered);
      patch.erase(field);
    }

    for (auto it = patch.begin(); it != patch.end(); ++it) {
      std::string k = it.key();
      Json patchV = it.value();
      if (startsWith(k, kSetElementOrder)) continue;
      if (startsWith(k, kDeleteFromPrimitiveList)) {
        std::string field = k.substr(kDeleteFromPrimitiveList.size());
        if (!original.contains(field) || !original[field].is_array() || !patchV.is_array()) continue;
        Json kept = Json::array();
        for (const auto& e : original[field]) {
          if (std::find(patchV.begin(), patchV.end(), e) == patchV.end()) kept.push_back(e);
        }
        original[field] = std::move(kept);
        continue;
      }
      if (patchV.is_null()) {
        original.erase(k);
        continue;
      }
      FieldMeta meta = lookup(schema, k);
      bool have = original.contains(k) && !original[k].is_null();
      Json current = have ? original[k] : Json();
      if (patchV.is_object() && !meta.replaceAtomically) {
        if (have && !current.is_object()) current = Json();
        if (meta.mapOfMessages) {
          auto m = mergePlainMap(current, patchV, meta.schema);
          if (!m) return m;
          original[k] = std::move(*m);
        } else {
          auto m = mergeMap(current.is_object() ? current : Json::object(), patchV, meta.schema);
          if (!m) return m;
          original[k] = std::move(*m);
        }
      } else if (patchV.is_array()) {
        if (meta.mergeList) {
          auto m = mergeList(current.is_array() ? current : Json::array(), patchV, meta, false);
          if (!m) return m;
          original[k] = std::move(*m);
        } else {
          // Replace: still strip directives from elements that are objects.
          Json replaced = Json::array();
          for (auto e : patchV) {
            if (e.is_object()) {
              if (stringField(e, kPatchDirective) == "delete") continue;
              auto m = mergeMap(Json::object(), e, meta.schema);
              if (!m) return m;
              replaced.push_back(std::move(*m));
            } else {
              replaced.push_back(e);
            }
          }
          original[k] = std::move(replaced);
        }
      } else {
        original[k] = patchV;
      }
    }
    return original;
  }

 private:
  // map<string, Message> fields (resources.limits): per-key merge.
  Result<Json> mergePlainMap(Json original, const Json& patch, const pb::Descriptor* valueSchema) {
    if (!original.is_object()) original = Json::object();
    for (auto it = patch.begin(); it != patch.end(); ++it) {
      if (it->is_null()) {
        original.erase(it.key());
      } else if (it->is_object() && valueSchema != nullptr && original.contains(it.key())) {
        auto m = mergeMap(original[it.key()], *it, valueSchema);
        if (!m) return m;
        original[it.key()] = std::move(*m);
      } else {
        original[it.key()] = *it;
      }
    }
    return original;
  }

  static std::optional<Json> keyOf(const Json& e, const std::string& mergeKey) {
    if (!e.is_object()) return std::nullopt;
    auto it = e.find(mergeKey);
    if (it == e.end()) return std::nullopt;
    return *it;
  }

  Result<Json> mergeList(Json original, const Json& patch, const FieldMeta& meta, bool withOrder) {
    (void)withOrder;
    bool maps = !meta.mergeKey.empty();
    if (!maps) {
      // Primitive list with merge strategy: union, keeping original order.
      for (const auto& e : patch) {
        if (e.is_object() && e.contains(std::string(kPatchDirective))) continue;
        if (std::find(original.begin(), original.end(), e) == original.end()) original.push_back(e);
      }
      return original;
    }
    // `$patch: replace` as an element replaces the whole list.
    for (const auto& e : patch) {
      if (e.is_object() && stringField(e, kPatchDirective) == "replace") {
        Json out = Json::array();
        for (const auto& p : patch) {
          if (p.is_object() && p.contains(std::string(kPatchDirective))) continue;
          auto m = mergeMap(Json::object(), p, meta.schema);
          if (!m) return m;
          out.push_back(std::move(*m));
        }
        return out;
      }
    }
    for (const auto& e : patch) {
      if (!e.is_object()) {
        return Error::invalid("invalid patch: list of maps expected for field with merge key " + meta.mergeKey);
      }
      auto k = keyOf(e, meta.mergeKey);
      std::string directive = stringField(e, kPatchDirective);
      if (!k) {
        return Error::invalid("map: " + dumpJson(e) + " does not contain declared merge key: " + meta.mergeKey);
      }
      auto pos = std::find_if(original.begin(), original.end(),
                              [&](const Json& o) { return keyOf(o, meta.mergeKey) == k; });
      if (directive == "delete") {
        original.erase(std::remove_if(original.begin(), original.end(),
                                      [&](const Json& o) { return keyOf(o, meta.mergeKey) == k; }),
                       original.end());
        continue;
      }
      if (pos != original.end()) {
        auto m = mergeMap(*pos, e, meta.schema);
        if (!m) return m;
        *pos = std::move(*m);
      } else {
        auto m = mergeMap(Json::object(), e, meta.schema);
        if (!m) return m;
        original.push_back(std::move(*m));
      }
    }
    return original;
  }

  // Orders a merged list: elements named in `order` by their place there,
  // interleaved with server-only elements by their place in `serverList`.
  static Result<Json> normalizeOrder(const Json& merged, const Json& order, const Json& serverList,
                                     const std::string& mergeKey) {
    auto ident = [&](const Json& e) -> Json {
      if (mergeKey.empty()) return e;
      auto k = keyOf(e, mergeKey);
      return k ? *k : Json();
    };
    auto indexIn = [&](const Json& list, const Json& id) -> long {
      for (size_t i = 0; i < list.size(); ++i) {
        if (ident(list[i]) == id) return static_cast<long>(i);
      }
      return -1;
    };
    std::vector<Json> inPatch;
    std::vector<Json> serverOnly;
    for (const auto& e : merged) {
      (indexIn(order, ident(e)) >= 0 ? inPatch : serverOnly).push_back(e);
    }
    std::stable_sort(inPatch.begin(), inPatch.end(), [&](const Json& a, const Json& b) {
      return indexIn(order, ident(a)) < indexIn(order, ident(b));
    });
    std::stable_sort(serverOnly.begin(), serverOnly.end(), [&](const Json& a, const Json& b) {
      return indexIn(serverList, ident(a)) < indexIn(serverList, ident(b));
    });
    Json out = Json::array();
    size_t j = 0;
    for (const auto& l : serverOnly) {
      long li = indexIn(serverList, ident(l));
      while (j < inPatch.size() && !(indexIn(serverList, ident(inPatch[j])) > li)) out.push_back(inPatch[j++]);
      out.push_back(l);
    }
    while (j < inPatch.size()) out.push_back(inPatch[j++]);
    return out;
  }
};

Json mergePatchValue(const Json& target, const Json& patch) {
  if (!patch.is_object()) return patch;
  Json result = target.is_object() ? target : Json::object();
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    if (it->is_null()) {
      result.erase(it.key());
    } else {
      result[it.key()] = mergePatchValue(result.contains(it.key()) ? result[it.key()] : Json(), *it);
    }
  }
  return result;
}

}  // namespace

Result<Json> applyMergePatch(const Json& target, const Json& patch) {
  if (!patch.is_object()) return Error::invalid("merge patch must be a JSON object");
  return mergePatchValue(target, patch);
}

Result<Json> applyStrategicMergePatch(const Json& original, const Json& patch,
                                      const pb::Descriptor* schema) {
  if (!patch.is_object()) return Error::invalid("strategic merge patch must be a JSON object");
  StrategicMerge smp;
  return smp.mergeMap(original, patch, schema);
}

}  // namespace sluice::api
