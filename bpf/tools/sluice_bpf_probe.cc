// sluice-bpf-probe: what this kernel offers the eBPF mode, from the same
// probes and loads the agent runs at start (bpf/loader/kernel_features.h):
// each probe found or missing, whether each object loads (the variant this
// kernel gets), what a user loses, and whether `sluice agent --mode=ebpf`
// would start here. Exit status 0 when it would, 1 when it refuses, 2 on a
// usage error.
//
//   sluice-bpf-probe [--format text|json|markdown] [--no-objects]
//                    [--pin-root DIR] [--output FILE]
//
// --format json is what scripts/kernel_table.py reads from each kernel (the
// host and the vm suite's VMs) to write docs/kernels.md. Object loads pin
// their maps under a scratch directory of --pin-root (a bpffs, default
// /sys/fs/bpf), removed before exit; maps are sized small for the trial.
// Needs root (CAP_BPF, CAP_NET_ADMIN).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "bpf/loader/ebpf_mode.h"
#include "bpf/loader/kernel_features.h"

namespace sluice::bpf {
namespace {

struct ObjectLoad {
  enum class State { kLoaded, kSkipped, kFailed };
  std::string name;
  State state = State::kFailed;
  std::string detail;  // the variant loaded, or why not

  bool loaded() const { return state == State::kLoaded; }
  // "loaded", "skipped" (this kernel lacks what it needs: not tried),
  // "failed" (tried and refused: a bug to report).
  const char* word() const {
    return state == State::kLoaded ? "loaded" : state == State::kSkipped ? "skipped" : "failed";
  }
};
using State = ObjectLoad::State;

struct Report {
  KernelFeatures kernel;
  bool objectsTried = false;
  std::vector<ObjectLoad> objects;
  std::map<ModeFeature, std::string> missing;  // the mode's capabilities
  Result<void> check = okResult();             // checkKernel(), no override
};

// Loads what the agent loads, as EbpfMode does for this kernel.
void loadObjects(Report& r, const std::string& pinRoot) {
  r.objectsTried = true;
  const std::string dir = pinRoot + "/sluice-probe-" + std::to_string(::getpid());
  EbpfOptions o;
  o.pinDir = dir;
  o.kernel = r.kernel;
  // Small maps: the trial is about the programs, and a 1 GiB VM holds it.
  o.maxFrontends = o.maxSlots = o.maxBackends = o.maxConntrack = o.maxAffinity =
      o.maxSockReverse = 1024;
  o.maxMaglevTables = 16;
  {
    auto mode = EbpfMode::create(o);
    const bool setRetval = r.kernel.has(KernelProbe::kSockSetRetval);
    const bool peerName = r.kernel.has(KernelProbe::kAttachGetpeername);
    const std::string variant = std::string("sock variant: ") +
                                (setRetval ? "bpf_set_retval" : "EPERM refusals (no bpf_set_retval)") +
                                (peerName ? ", getpeername hooks" : ", no getpeername hooks");
    if (!mode) {
      r.objects.push_back({"lxc.bpf.o, sock.bpf.o", State::kFailed, mode.error().message});
    } else {
      r.objects.push_back({"lxc.bpf.o, sock.bpf.o", State::kLoaded, variant});
      // A documentation address (RFC 5737) as the node's: the uplink
      // object's constants need one; nothing is attached.
      auto up = (*mode)->loadUplink({*IpAddress::parse("192.0.2.1")});
      r.objects.push_back({"host.bpf.o", up ? State::kLoaded : State::kFailed,
                           up ? "" : up.error().message});
      const auto caps = (*mode)->capabilities();
      if ((*mode)->uplinkXdpFd() >= 0) {
        r.objects.push_back({"xdp.bpf.o", State::kLoaded, ""});
      } else if (!caps.supports(ModeFeature::kXdpEarlyDrop)) {
        r.objects.push_back({"xdp.bpf.o", State::kSkipped, caps.missing.at(ModeFeature::kXdpEarlyDrop)});
      } else {
        r.objects.push_back({"xdp.bpf.o", State::kFailed, "not loaded (see host.bpf.o)"});
      }
      auto term = (*mode)->socketTermination();
      const bool lacks = r.kernel.degradations().count(ModeFeature::kUdpStaleFlowCleanup) > 0;
      r.objects.push_back({"sock_term.bpf.o",
                           term ? State::kLoaded : lacks ? State::kSkipped : State::kFailed,
                           term ? "" : term.error().message});
      r.missing = caps.missing;
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

std::string json(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string renderJson(const Report& r) {
  const auto version = KernelVersion::parse(r.kernel.release());
  std::string out = "{\n  \"release\": " + json(r.kernel.release()) + ",\n";
  out += "  \"version\": " + json(version ? version->toString() : "") + ",\n";
  out += "  \"tested_minimum\": " + json(kTestedMinimumKernel.toString()) + ",\n";
  out += "  \"required_since\": " + json(requiredSince().toString()) + ",\n";
  out += "  \"starts\": " + std::string(r.check ? "true" : "false") + ",\n";
  out += "  \"refusal\": " + json(r.check ? "" : r.check.error().message) + ",\n";
  out += "  \"probes\": [\n";
  const auto probes = kernelProbes();
  for (size_t i = 0; i < probes.size(); ++i) {
    const KernelProbeInfo& p = probes[i];
    out += "    {\"id\": " + json(p.id) + ", \"name\": " + json(p.name) + ", \"since\": " +
           json(p.since) + ", \"required\": " + (p.required ? "true" : "false") +
           ", \"degrades\": " + (p.degrades ? json(toString(*p.degrades)) : "null") +
           ", \"used_for\": " + json(p.usedFor) +
           ", \"supported\": " + (r.kernel.has(p.probe) ? "true" : "false") +
           ", \"why\": " + json(r.kernel.why(p.probe)) + "}" + (i + 1 < probes.size() ? "," : "") +
           "\n";
  }
  out += "  ],\n  \"objects\": [\n";
  for (size_t i = 0; i < r.objects.size(); ++i) {
    const ObjectLoad& o = r.objects[i];
    out += "    {\"name\": " + json(o.name) + ", \"state\": " + json(o.word()) +
           ", \"detail\": " + json(o.detail) + "}" + (i + 1 < r.objects.size() ? "," : "") + "\n";
  }
  out += "  ],\n  \"missing\": [\n";
  size_t n = 0;
  for (const auto& [feature, effect] : r.missing) {
    out += "    {\"feature\": " + json(toString(feature)) + ", \"effect\": " + json(effect) + "}" +
           (++n < r.missing.size() ? "," : "") + "\n";
  }
  return out + "  ]\n}\n";
}

std::string renderText(const Report& r) {
  std::string out = "Linux " + r.kernel.release() + ": ";
  out += r.check ? "the eBPF mode starts here\n" : "the eBPF mode refuses to start:\n  " + r.check.error().message + "\n";
  out += "Probes (" + std::to_string(kTestedMinimumKernel.major) + "." +
         std::to_string(kTestedMinimumKernel.minor) + " is the oldest kernel tested):\n";
  for (const KernelProbeInfo& p : kernelProbes()) {
    const bool ok = r.kernel.has(p.probe);
    out += std::string(ok ? "  yes  " : "  NO   ") + std::string(p.name) + " (Linux " +
           std::string(p.since) + (p.required ? ", required" : ", optional") + ")";
    if (!ok) out += ": " + r.kernel.why(p.probe);
    out += "\n";
  }
  if (r.objectsTried) {
    out += "Objects:\n";
    for (const ObjectLoad& o : r.objects) {
      out += "  " + std::string(o.word()) + "  " + o.name +
             (o.detail.empty() ? "" : ": " + o.detail) + "\n";
    }
  }
  out += "Missing features:";
  if (r.missing.empty()) out += " none";
  out += "\n";
  for (const auto& [feature, effect] : r.missing) {
    out += "  " + std::string(toString(feature)) + ": " + effect + "\n";
  }
  return out;
}

// One kernel's column as a markdown table (scripts/kernel_table.py joins
// several kernels' JSON into one table instead).
std::string renderMarkdown(const Report& r) {
  std::string out = "| Feature | Since | Required | Linux " + r.kernel.release() + " |\n";
  out += "| --- | --- | --- | --- |\n";
  for (const KernelProbeInfo& p : kernelProbes()) {
    out += "| " + std::string(p.name) + " | " + std::string(p.since) + " | " +
           (p.required ? "yes" : "no") + " | " + (r.kernel.has(p.probe) ? "yes" : "**no**") + " |\n";
  }
  for (const ObjectLoad& o : r.objects) {
    out += "| loads " + o.name + " | | | " + o.word() + " |\n";
  }
  return out;
}

int usage(const char* why) {
  std::cerr << "sluice-bpf-probe: " << why
            << "\nusage: sluice-bpf-probe [--format text|json|markdown] [--no-objects] "
               "[--pin-root DIR] [--output FILE]\n";
  return 2;
}

}  // namespace
}  // namespace sluice::bpf

int main(int argc, char** argv) {
  using namespace sluice::bpf;
  std::string format = "text", pinRoot = "/sys/fs/bpf", output;
  bool objects = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (a == "--format") {
      const char* v = value();
      if (!v) return usage("--format needs a value");
      format = v;
    } else if (a == "--no-objects") {
      objects = false;
    } else if (a == "--pin-root") {
      const char* v = value();
      if (!v) return usage("--pin-root needs a directory");
      pinRoot = v;
    } else if (a == "--output") {
      const char* v = value();
      if (!v) return usage("--output needs a file");
      output = v;
    } else {
      return usage(("unknown argument " + a).c_str());
    }
  }
  if (format != "text" && format != "json" && format != "markdown") return usage("unknown --format");

  Report r;
  r.kernel = KernelFeatures::probe();
  r.check = checkKernel(r.kernel, false);
  r.missing = r.kernel.degradations();
  if (objects) loadObjects(r, pinRoot);
  const std::string out =
      format == "json" ? renderJson(r) : format == "markdown" ? renderMarkdown(r) : renderText(r);
  if (output.empty()) {
    std::cout << out << std::flush;
  } else {
    std::ofstream f(output);
    f << out;
    if (!f) {
      std::cerr << "sluice-bpf-probe: cannot write " << output << "\n";
      return 2;
    }
  }
  return r.check ? 0 : 1;
}
