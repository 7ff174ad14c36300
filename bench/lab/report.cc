#include "bench/lab/report.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace sluice::lab {
namespace {

std::string number(double v) {
  char buf[64];
  if (v >= 100 || (v >= 1 && v == static_cast<double>(static_cast<int64_t>(v)))) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  } else if (v >= 1) {
    std::snprintf(buf, sizeof(buf), "%.2f", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.3g", v);
  }
  return buf;
}

std::string cell(const Figure& f) {
  if (f.overBudget) return "> budget";
  if (!f.value) return "";
  return number(*f.value);
}

// The baseline mode the ratios are to (writeReport's argument).
std::string gBaseline = "ebpf";

// value / the baseline's value at the same S, when both exist.
std::optional<double> ratio(const std::vector<PointResult>& all, const PointResult& p, size_t col) {
  for (const PointResult& b : all) {
    if (b.mode == gBaseline && b.services == p.services && b.endpoints == p.endpoints) {
      const Figure& mine = p.figures[col];
      const Figure& base = b.figures[col];
      if (mine.value && base.value && *base.value != 0) return *mine.value / *base.value;
    }
  }
  return std::nullopt;
}

}  // namespace

const std::vector<Column>& columns() {
  static const std::vector<Column> kColumns = {
      {"sync_ms", "full sync (ms)"},
      {"change_p50_ms", "endpoint change visible p50 (ms)"},
      {"change_p99_ms", "endpoint change visible p99 (ms)"},
      {"connect_p50_us", "connect p50 (us)"},
      {"connect_p99_us", "connect p99 (us)"},
      {"rps_new_conn", "req/s, new connection each"},
      {"cpu_us_per_req", "CPU/req (us, new conn.)"},
      {"softirq_us_per_req", "of which irq+softirq (us/req, whole machine)"},
      {"rps_keepalive", "req/s, keep-alive"},
      {"wrk_rps", "wrk req/s (one service, HTTP keep-alive)"},
      {"kernel_objects", "rules / map entries"},
      {"kernel_mib", "kernel memory (MiB, meminfo delta)"},
      {"kernel_noise_mib", "+- noise (MiB)", false},
      {"bpf_map_mib", "BPF map memlock (MiB)"},
      {"rss_mib", "userspace RSS (MiB)"},
      {"netlink_per_change", "IPVS netlink requests per change"},
  };
  static_assert(kColumnCount == 16);
  return kColumns;
}

std::vector<std::string> writeReport(const std::string& dir, const std::vector<PointResult>& results,
                                     const std::string& command, std::string* error,
                                     const std::string& baseline) {
  gBaseline = baseline;
  std::vector<std::string> written;
  const auto& cols = columns();
  {
    std::ofstream csv(dir + "/results.csv");
    csv << "mode,services,endpoints";
    for (const Column& c : cols) csv << "," << c.key;
    for (const Column& c : cols) csv << "," << c.key << "_vs_" << baseline;
    csv << ",note\n";
    for (const PointResult& p : results) {
      csv << p.mode << "," << p.services << "," << p.endpoints;
      for (const Figure& f : p.figures) csv << "," << (f.overBudget ? ">budget" : cell(f));
      for (size_t i = 0; i < cols.size(); ++i) {
        const auto r = cols[i].ratio ? ratio(results, p, i) : std::nullopt;
        csv << "," << (r ? number(*r) : "");
      }
      std::string note = p.note;
      for (char& ch : note) {
        if (ch == ',' || ch == '\n' || ch == '"') ch = ' ';
      }
      csv << "," << note << "\n";
    }
    if (!csv) {
      *error = "cannot write " + dir + "/results.csv";
      return written;
    }
    written.push_back(dir + "/results.csv");
  }
  {
    std::ofstream md(dir + "/results.md");
    md << "Command: `" << command << "`\n\n";
    md << "Each cell: value (ratio to " << baseline << " at the same S in this run).\n\n";
    md << "| mode | S | E |";
    for (const Column& c : cols) md << " " << c.title << " |";
    md << " note |\n|---|---|---|";
    for (size_t i = 0; i < cols.size(); ++i) md << "---|";
    md << "---|\n";
    for (const PointResult& p : results) {
      md << "| " << p.mode << " | " << p.services << " | " << p.endpoints << " |";
      for (size_t i = 0; i < cols.size(); ++i) {
        std::string c = cell(p.figures[i]);
        const auto r = cols[i].ratio ? ratio(results, p, i) : std::nullopt;
        if (r && p.mode != baseline) {
          c += " (" + number(*r) + "x)";
        }
        md << " " << c << " |";
      }
      md << " " << p.note << " |\n";
    }
    if (!md) {
      *error = "cannot write " + dir + "/results.md";
      return written;
    }
    written.push_back(dir + "/results.md");
  }

  // Plots: one data file per mode (S and the plotted columns, "?" where no
  // value), one gnuplot script.
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    *error = "gnuplot not found: no plots (apt-get install gnuplot-nox)";
    return written;
  }
  std::set<std::string> modes;
  std::vector<std::string> order;
  for (const PointResult& p : results) {
    if (modes.insert(p.mode).second) order.push_back(p.mode);
  }
  for (const std::string& m : order) {
    std::ofstream dat(dir + "/plot-" + m + ".dat");
    for (const PointResult& p : results) {
      if (p.mode != m) continue;
      dat << p.services;
      for (const Figure& f : p.figures) dat << " " << (f.value ? number(*f.value) : "?");
      dat << "\n";
    }
  }
  std::ostringstream gp;
  gp << "set terminal png size 900,600\nset datafile missing '?'\nset key left top\n"
        "set grid\nset logscale x\nset xlabel 'services (S)'\n";
  auto plot = [&](const std::string& file, const std::string& title, const std::string& ylabel,
                  int column, bool logy) {
    gp << "set output '" << dir << "/" << file << "'\nset title '" << title << "'\nset ylabel '"
       << ylabel << "'\n"
       << (logy ? "set logscale y\n" : "unset logscale y\n") << "plot ";
    for (size_t i = 0; i < order.size(); ++i) {
      gp << (i ? ", " : "") << "'" << dir << "/plot-" << order[i] << ".dat' using 1:" << column
         << " with linespoints title '" << order[i] << "'";
    }
    gp << "\n";
    written.push_back(dir + "/" + file);
  };
  // Data columns: 1 = S, then columns() in order starting at 2.
  plot("sync.png", "full sync time vs services", "ms", 2 + kSyncMs, true);
  plot("change.png", "endpoint change visible to traffic (p50) vs services", "ms",
       2 + kChangeP50Ms, true);
  plot("latency.png", "connect latency p50 vs services", "us", 2 + kConnectP50Us, false);
  plot("rps.png", "requests/s (new connection each) vs services", "req/s", 2 + kRpsNewConn,
       false);
  plot("memory.png", "kernel memory (/proc/meminfo delta) vs services", "MiB", 2 + kKernelMiB,
       true);
  const std::string script = dir + "/plots.gp";
  {
    std::ofstream f(script);
    f << gp.str();
  }
  if (std::system(("gnuplot " + script).c_str()) != 0) {
    *error = "gnuplot failed on " + script;
    written.resize(2);
  }
  return written;
}

}  // namespace sluice::lab
