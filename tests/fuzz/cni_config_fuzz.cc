// Fuzz target for what the CNI plugins and the runtime side parse (cni/):
// the network configuration a runtime pipes to sluice-cni / sluice-ipam
// (through the plugin skeleton, with the CNI_* environment), the plugins'
// own config sections (VethConfig, IpamConfig with its ranges and routes,
// prevResult, dns, valid-attachments), a .conflist as the agent's runtime
// reads it, and a delegate's stdout (result or error object).
//
// The first byte picks the command and environment, the rest is the text.
// Invariants, else the process traps:
//  - no exception escapes, nothing crashes;
//  - the plugin answers with exit 0 or 1; exit 1 prints an error object
//    whose code the runtime side parses back; ADD's success prints a result
//    that parses back as a result;
//  - a result that parses re-encodes, in every supported version, to a
//    document that parses to the same encoding (what CHECK compares).
// No kernel is touched: the handlers below only parse, as the real
// plugins do before they act.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <string>
#include <string_view>

#include "cni/ipam_plugin.h"
#include "cni/ipam_store.h"
#include "cni/runtime.h"
#include "cni/skel.h"
#include "cni/spec.h"
#include "cni/veth_plugin.h"

namespace {

using namespace sluice::cni;  // NOLINT(google-build-using-namespace)

void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "cni_config_fuzz invariant violated: %s\n", what);
  __builtin_trap();
}

// parse(toJson(r)) re-encodes to the same document, in every version.
void roundTrip(const AddResult& r) {
  for (std::string_view v : kSupportedVersions) {
    const Json encoded = toJson(r, v);
    auto again = parseResult(encoded, "result", kCodeDecodeFailure);
    require(again.ok(), "an encoded result parses");
    require(toJson(*again, v) == encoded, "result round trip");
  }
}

// Parses what the real plugins parse before acting, and answers with a
// result built from it.
class ParseOnly final : public PluginHandlers {
 public:
  CniResult<Json> add(const CmdArgs& args) override {
    auto veth = VethConfig::parse(args.config);
    if (veth && veth->prevResult) roundTrip(*veth->prevResult);
    auto ipam = IpamConfig::parse(args.config);
    if (!ipam) return ipam.error();
    AddResult result;
    for (const auto& range : ipam->ranges) {
      require(range.contains(range.start) && range.contains(range.end), "range holds its ends");
      (void)range.capacity();
      auto address = IpPrefix::make(range.start, range.subnet.length());
      require(address.ok(), "range start with the subnet's length");
      result.ips.push_back({*address, range.gateway, std::nullopt});
    }
    result.routes = ipam->routes;
    if (veth) result.dns = veth->dns;
    roundTrip(result);
    return toJson(result, args.cniVersion);
  }
  CniResult<void> del(const CmdArgs& args) override { return check(args); }
  CniResult<void> check(const CmdArgs& args) override {
    auto veth = VethConfig::parse(args.config);
    if (!veth) return veth.error();
    return {};
  }
  CniResult<void> gc(const CmdArgs& args) override {
    auto valid = parseValidAttachments(args.config);
    if (!valid) return valid.error();
    return {};
  }
  CniResult<void> status(const CmdArgs& args) override {
    auto ipam = IpamConfig::parse(args.config);
    if (!ipam) return ipam.error();
    return {};
  }
};

void runSkeleton(uint8_t selector, std::string_view text) {
  static constexpr const char* kCommands[] = {"ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"};
  std::map<std::string, std::string> env = {
      {"CNI_COMMAND", kCommands[selector % 6]},
      {"CNI_CONTAINERID", "ctr1"},
      {"CNI_NETNS", "/run/netns/pod"},
      {"CNI_IFNAME", "eth0"},
      {"CNI_PATH", "/opt/cni/bin"},
  };
  // Some runs take CNI_ARGS from the first line of the text.
  if (selector & 0x40) {
    const auto nl = text.find('\n');
    env["CNI_ARGS"] = std::string(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  }
  ParseOnly handlers;
  PluginOutput out = runPlugin(handlers, env, text);
  require(out.exitCode == 0 || out.exitCode == 1, "exit code 0 or 1");
  if (out.exitCode == 1) {
    auto doc = parseJson(out.stdoutData, "stdout");
    require(doc.ok(), "an error is JSON");
    require(parseError(*doc).has_value(), "an error object has a code");
  } else if (env["CNI_COMMAND"] == "ADD") {
    auto doc = parseJson(out.stdoutData, "stdout");
    require(doc.ok(), "a result is JSON");
    require(parseResult(*doc, "result", kCodeDecodeFailure).ok(), "a result parses back");
  }
}

void run(uint8_t selector, std::string_view text) {
  switch (selector >> 7) {
    case 0:
      runSkeleton(selector, text);
      return;
    default: {
      // The runtime side: a .conf/.conflist, and a delegate's stdout.
      if (auto list = NetworkConfigList::parse(text); list.ok()) {
        require(!list->plugins.empty(), "a list has plugins");
        for (const auto& p : list->plugins) require(p.is_object(), "each plugin is an object");
      }
      auto doc = parseJson(text, "stdout");
      if (!doc) return;
      if (auto r = parseResult(*doc, "result", kCodeDecodeFailure); r.ok()) roundTrip(*r);
      (void)parseError(*doc);
      (void)parseDns(*doc, "dns", kCodeInvalidConfig);
      return;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    run(data[0], text);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cni_config_fuzz: exception escaped: %s\n", e.what());
    __builtin_trap();
  } catch (...) {
    std::fprintf(stderr, "cni_config_fuzz: unknown exception escaped\n");
    __builtin_trap();
  }
  return 0;
}
