#include "control/server/output.h"

#include "control/api/object_meta.h"
#include "control/api/time_util.h"

namespace sluice::server {
namespace {

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  size_t e = s.find_last_not_of(" \t");
  if (b == std::string_view::npos) return "";
  return std::string(s.substr(b, e - b + 1));
}

}  // namespace

Json tableRowJson(const api::ResourceType& type, const google::protobuf::Message& obj, const OutputFormat& fmt,
                  api::Clock::time_point now) {
  Json row = {{"cells", type.printer().row(obj, now)}};
  if (fmt.includeObject == "Object") {
    row["object"] = type.encode(obj);
  } else if (fmt.includeObject != "None") {
    row["object"] = partialMetadataJson(obj, fmt.groupVersion);
  }
  return row;
}

OutputFormat negotiateOutput(const HttpRequest& req) {
  OutputFormat out;
  std::string include = req.queryParam("includeObject");
  if (!include.empty()) out.includeObject = include;
  std::string accept = req.header("accept");
  // The first acceptable media type wins, as in Kubernetes' negotiation.
  size_t start = 0;
  while (start <= accept.size()) {
    size_t comma = accept.find(',', start);
    std::string clause = accept.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? accept.size() + 1 : comma + 1;
    std::string as;
    std::string g;
    std::string v;
    std::string mediaType;
    size_t pos = 0;
    bool first = true;
    while (pos <= clause.size()) {
      size_t semi = clause.find(';', pos);
      std::string part = trim(clause.substr(pos, semi == std::string::npos ? std::string::npos : semi - pos));
      pos = semi == std::string::npos ? clause.size() + 1 : semi + 1;
      if (first) {
        mediaType = part;
        first = false;
        continue;
      }
      size_t eq = part.find('=');
      if (eq == std::string::npos) continue;
      std::string k = trim(part.substr(0, eq));
      std::string val = trim(part.substr(eq + 1));
      if (k == "as") as = val;
      if (k == "g") g = val;
      if (k == "v") v = val;
    }
    if (mediaType != "application/json" && mediaType != "*/*" && mediaType != "application/*") continue;
    if (as.empty()) return out;  // plain JSON acceptable first
    if (g == "meta.k8s.io" && (v == "v1" || v == "v1beta1")) {
      if (as == "Table") out.kind = OutputFormat::Kind::kTable;
      else if (as == "PartialObjectMetadata" || as == "PartialObjectMetadataList") out.kind = OutputFormat::Kind::kPartialMetadata;
      else continue;
      out.groupVersion = "meta.k8s.io/" + v;
      return out;
    }
  }
  return out;
}

Json partialMetadataJson(const google::protobuf::Message& obj, const std::string& groupVersion) {
  return {{"kind", "PartialObjectMetadata"},
          {"apiVersion", groupVersion},
          {"metadata", api::encodeJson(api::meta(obj))}};
}

Json renderObject(const api::ResourceType& type, const google::protobuf::Message& obj, const OutputFormat& fmt) {
  switch (fmt.kind) {
    case OutputFormat::Kind::kObject: return type.encode(obj);
    case OutputFormat::Kind::kPartialMetadata: return partialMetadataJson(obj, fmt.groupVersion);
    case OutputFormat::Kind::kTable: {
      Json t = {{"kind", "Table"},
                {"apiVersion", fmt.groupVersion},
                {"metadata", {{"resourceVersion", api::meta(obj).resourceversion()}}},
                {"columnDefinitions", api::columnDefinitionsJson(type.printer())},
                {"rows", Json::array({tableRowJson(type, obj, fmt, api::Clock::now())})}};
      return t;
    }
  }
  return nullptr;
}

Json renderList(const api::ResourceType& type, const std::vector<const google::protobuf::Message*>& items,
                const OutputFormat& fmt, const std::string& resourceVersion, const std::string& continueToken,
                std::optional<int64_t> remaining) {
  Json listMeta = {{"resourceVersion", resourceVersion}};
  if (!continueToken.empty()) listMeta["continue"] = continueToken;
  if (remaining) listMeta["remainingItemCount"] = *remaining;
  switch (fmt.kind) {
    case OutputFormat::Kind::kTable: {
      Json rows = Json::array();
      auto now = api::Clock::now();
      for (const auto* o : items) rows.push_back(tableRowJson(type, *o, fmt, now));
      return {{"kind", "Table"},
              {"apiVersion", fmt.groupVersion},
              {"metadata", listMeta},
              {"columnDefinitions", api::columnDefinitionsJson(type.printer())},
              {"rows", std::move(rows)}};
    }
    case OutputFormat::Kind::kPartialMetadata: {
      Json arr = Json::array();
      for (const auto* o : items) arr.push_back(partialMetadataJson(*o, fmt.groupVersion));
      return {{"kind", "PartialObjectMetadataList"},
              {"apiVersion", fmt.groupVersion},
              {"metadata", listMeta},
              {"items", std::move(arr)}};
    }
    case OutputFormat::Kind::kObject: break;
  }
  Json arr = Json::array();
  for (const auto* o : items) arr.push_back(type.encode(*o));
  return {{"kind", type.listKind()},
          {"apiVersion", type.apiVersion()},
          {"metadata", listMeta},
          {"items", std::move(arr)}};
}

}  // namespace sluice::server
