// ListWriter: a list response encoded item by item into one growing buffer
// that the caller drains in chunks, instead of one nlohmann tree of the
// whole list (~12x the JSON's size) dumped into a string at the end.
//
// The list metadata (resourceVersion, continue) comes after the items, as
// the continue token is only known once the last item is: JSON objects are
// unordered, and client-go, kubectl and the Python client decode them so.
// Each item is the same JSON renderList() would give it.
#pragma once

#include <google/protobuf/message.h>

#include <optional>
#include <string>

#include "control/api/registry.h"
#include "control/server/output.h"

namespace sluice::server {

class ListWriter {
 public:
  ListWriter(const api::ResourceType& type, const OutputFormat& format);

  // Appends one object (a row, for a Table).
  void add(const google::protobuf::Message& obj);
  size_t items() const { return items_; }

  // The encoded bytes not yet taken.
  size_t pendingBytes() const { return buffer_.size(); }
  std::string take();
  // Appends the closing bytes and the list metadata; then take() the rest.
  void finish(const std::string& resourceVersion, const std::string& continueToken);

 private:
  const api::ResourceType& type_;
  OutputFormat format_;
  api::Clock::time_point now_;
  std::string buffer_;
  size_t items_ = 0;
};

}  // namespace sluice::server
