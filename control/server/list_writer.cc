#include "control/server/list_writer.h"

#include "control/api/json_codec.h"
#include "control/api/tables.h"

namespace sluice::server {
namespace {

// JSON of a string value, quoted and escaped.
std::string jsonString(const std::string& s) { return api::dumpJson(api::Json(s)); }

}  // namespace

ListWriter::ListWriter(const api::ResourceType& type, const OutputFormat& format)
    : type_(type), format_(format), now_(api::Clock::now()) {
  switch (format_.kind) {
    case OutputFormat::Kind::kTable:
      buffer_ =
          "{\"kind\":\"Table\",\"apiVersion\":" + jsonString(format_.groupVersion) +
          ",\"columnDefinitions\":" + api::dumpJson(api::columnDefinitionsJson(type_.printer())) +
          ",\"rows\":[";
      break;
    case OutputFormat::Kind::kPartialMetadata:
      buffer_ = "{\"kind\":\"PartialObjectMetadataList\",\"apiVersion\":" +
                jsonString(format_.groupVersion) + ",\"items\":[";
      break;
    case OutputFormat::Kind::kObject:
      buffer_ = "{\"kind\":" + jsonString(type_.listKind()) +
                ",\"apiVersion\":" + jsonString(type_.apiVersion()) + ",\"items\":[";
      break;
  }
}

void ListWriter::add(const google::protobuf::Message& obj) {
  if (items_++ > 0) buffer_ += ',';
  switch (format_.kind) {
    case OutputFormat::Kind::kTable:
      buffer_ += api::dumpJson(tableRowJson(type_, obj, format_, now_));
      break;
    case OutputFormat::Kind::kPartialMetadata:
      buffer_ += api::dumpJson(partialMetadataJson(obj, format_.groupVersion));
      break;
    case OutputFormat::Kind::kObject:
      buffer_ += api::dumpJson(type_.encode(obj));
      break;
  }
}

std::string ListWriter::take() {
  std::string out;
  out.swap(buffer_);
  // The next chunk grows to about the size of this one.
  buffer_.reserve(out.capacity());
  return out;
}

void ListWriter::finish(const std::string& resourceVersion, const std::string& continueToken) {
  api::Json meta = {{"resourceVersion", resourceVersion}};
  if (!continueToken.empty()) meta["continue"] = continueToken;
  buffer_ += "],\"metadata\":" + api::dumpJson(meta) + "}";
}

}  // namespace sluice::server
