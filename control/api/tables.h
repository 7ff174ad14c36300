// Server-side printing: the columns and cells kubectl shows for each kind
// (pkg/printers/internalversion/printers.go), returned inside a
// meta.k8s.io/v1 Table when a client asks for `as=Table`. Columns with
// priority 1 are what `-o wide` adds.
#pragma once

#include <google/protobuf/message.h>

#include <string>
#include <string_view>
#include <vector>

#include "control/api/json_codec.h"
#include "control/api/time_util.h"

namespace sluice::api {

struct TableColumn {
  std::string name;
  std::string type;  // "string" | "integer" | "date"
  std::string format;
  std::string description;
  int priority = 0;
};

struct TablePrinter {
  std::vector<TableColumn> columns;
  // One row's cells, in column order.
  std::vector<Json> (*row)(const google::protobuf::Message& obj, Clock::time_point now);
};

// The printer for a kind; kinds without one get NAME and AGE.
const TablePrinter& tablePrinterFor(std::string_view kind);

// Column definitions as the Table's columnDefinitions array.
Json columnDefinitionsJson(const TablePrinter& printer);

}  // namespace sluice::api
