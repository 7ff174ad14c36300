// Results of one lab run and how they are written: results.csv, results.md
// and gnuplot PNGs. Every figure also appears as its ratio to the baseline
// mode (ebpf unless --baseline says otherwise) at the same S from the same
// run.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace sluice::lab {

// One measured quantity at one point. No value and !overBudget: not
// measured (mode failed, or not applicable).
struct Figure {
  std::optional<double> value;
  bool overBudget = false;
};

// The measured quantities, in output order (index into PointResult::figures
// and columns()).
enum Col : size_t {
  kSyncMs,
  kChangeP50Ms,
  kChangeP99Ms,
  kConnectP50Us,
  kConnectP99Us,
  kRpsNewConn,
  kCpuUsPerRequest,
  kSoftirqUsPerRequest,
  kRpsKeepAlive,
  kWrkRps,
  kKernelObjects,
  kKernelMiB,
  kKernelNoiseMiB,
  kBpfMapMiB,
  kRssMiB,
  kNetlinkPerChange,
  kColumnCount,
};

// A column's CSV key and table title (with its unit); ratio: whether its
// ratio to ebpf means anything (not for a noise estimate).
struct Column {
  const char* key;
  const char* title;
  bool ratio = true;
};
const std::vector<Column>& columns();

struct PointResult {
  std::string mode;
  int services = 0;
  int endpoints = 0;
  std::vector<Figure> figures;  // one per columns() entry
  std::string note;             // errors, partial counts
};

// Writes results.csv, results.md and (if gnuplot is found) sync.png,
// latency.png, change.png, rps.png, memory.png into dir. Returns the files written, or
// an error text in *error.
std::vector<std::string> writeReport(const std::string& dir, const std::vector<PointResult>& results,
                                     const std::string& command, std::string* error,
                                     const std::string& baseline = "ebpf");

}  // namespace sluice::lab
