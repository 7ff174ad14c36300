// Kubernetes resource quantities ("500m", "1.5Gi", "1e3", 2): parsing and the
// canonical string form the API server stores and serves, following
// k8s.io/apimachinery/pkg/api/resource for the values people write.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/result.h"

namespace sluice::api {

// 128-bit so that exabyte quantities still have nano precision.
__extension__ typedef __int128 Int128;

struct ParsedQuantity {
  enum class Format : uint8_t { kDecimalSI, kBinarySI, kDecimalExponent };

  // The value in units of 10^-9, the finest scale Kubernetes keeps; finer
  // input is rounded up, as Kubernetes does.
  Int128 nanos = 0;
  Format format = Format::kDecimalSI;

  // The canonical text: the largest suffix of the quantity's format that keeps
  // the number an integer ("0.5" -> "500m", "2048Ki" -> "2Mi", "1000" -> "1k",
  // "1.5Ki" -> "1536").
  std::string canonical() const;
  // The value in thousandths, rounded up (the scheduler's and printers' unit).
  int64_t milliValue() const;
};

// Parses the quantity syntax. The error message is the one Kubernetes gives.
Result<ParsedQuantity> parseQuantity(std::string_view text);

}  // namespace sluice::api
