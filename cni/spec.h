// The CNI protocol's data: spec versions, commands, the Result an ADD returns
// (encoded in whichever version the runtime asked for), the error object,
// GC attachments, and the syntax rules for container ids, interface and
// network names. Shared by both plugins and by the runtime side (runtime.h).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cni/cni_error.h"
#include "cni/ip_prefix.h"
#include "cni/json_field.h"

namespace sluice::cni {

// Spec versions both sluice plugins accept, oldest first. 0.3.x/0.4.0 differ
// from 1.x only in the result's per-IP "version" field and in CHECK (0.4.0+);
// GC and STATUS exist from 1.1.0. 0.1.0/0.2.0 (the flat "ip4" result) are not
// spoken: no runtime sluice targets still uses them.
inline constexpr std::array<std::string_view, 5> kSupportedVersions = {"0.3.0", "0.3.1", "0.4.0",
                                                                     "1.0.0", "1.1.0"};
inline constexpr std::string_view kLatestVersion = "1.1.0";

struct SpecVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;
  // "x.y.z" only; no pre-release or build suffixes (none are used by CNI).
  static Result<SpecVersion> parse(std::string_view text);
  friend auto operator<=>(const SpecVersion&, const SpecVersion&) = default;
};

bool isSupportedVersion(std::string_view version);
// True when `version` >= `minimum`; false for unparsable text.
bool versionAtLeast(std::string_view version, std::string_view minimum);

enum class Command { kAdd, kDel, kCheck, kVersion, kGc, kStatus };
// CNI_COMMAND text ("ADD", ...); nullopt for anything else.
std::optional<Command> parseCommand(std::string_view text);
std::string_view toString(Command command);

struct Interface {
  std::string name;
  std::string mac;      // "aa:bb:cc:dd:ee:ff"; empty when not meaningful
  std::optional<int> mtu;  // 1.1.0+
  std::string sandbox;  // netns path for container interfaces, empty for host ones
  friend bool operator==(const Interface&, const Interface&) = default;
};

struct IpConfig {
  IpPrefix address;  // the interface address with its subnet's prefix length
  std::optional<IpAddress> gateway;
  std::optional<int> interfaceIndex;  // index into AddResult::interfaces
  friend bool operator==(const IpConfig&, const IpConfig&) = default;
};

struct Route {
  IpPrefix dst;
  std::optional<IpAddress> gw;
  friend bool operator==(const Route&, const Route&) = default;
};

struct Dns {
  std::vector<std::string> nameservers;
  std::string domain;
  std::vector<std::string> search;
  std::vector<std::string> options;
  bool empty() const {
    return nameservers.empty() && domain.empty() && search.empty() && options.empty();
  }
  friend bool operator==(const Dns&, const Dns&) = default;
};

// The ADD result (and an IPAM plugin's abbreviated one: no interfaces).
struct AddResult {
  std::string cniVersion;
  std::vector<Interface> interfaces;
  std::vector<IpConfig> ips;
  std::vector<Route> routes;
  Dns dns;
};

// Encodes in `version`'s format: 0.3.x/0.4.0 add "version": "4"|"6" to each
// ip; 1.1.0 adds interface mtu.
Json toJson(const AddResult& result, std::string_view version);
// Decodes any supported version's result; `what` names it in errors
// ("prevResult", "ipam result"). Malformed content is code 6 for a plugin's
// output and 7 for a config field: the caller passes which.
CniResult<AddResult> parseResult(const Json& doc, std::string_view what, uint32_t code);
CniResult<Dns> parseDns(const Json& doc, std::string_view what, uint32_t code);
Json toJson(const Dns& dns);

// {cniVersion, code, msg, details}; details omitted when empty.
Json toJson(const CniError& error, std::string_view version);
// The error object a plugin printed; nullopt when stdout is not one.
std::optional<CniError> parseError(const Json& doc);

// One (containerID, ifname) pair of GC's valid-attachments list.
struct Attachment {
  std::string containerId;
  std::string ifName;
  friend bool operator==(const Attachment&, const Attachment&) = default;
};
// Reads "cni.dev/valid-attachments" (spec 1.1.0), falling back to
// "cni.dev/attachments" (the spec text's original name, which libcni also
// sends). Absent is an empty list: everything is stale.
CniResult<std::vector<Attachment>> parseValidAttachments(const Json& config);

// CNI_ARGS: "K1=V1;K2=V2". Code 4 on a pair without '='.
CniResult<std::vector<std::pair<std::string, std::string>>> parseCniArgs(std::string_view text);

// Syntax rules of spec 1.1.0 ("Parameters"), each naming the variable or field.
CniResult<void> validateContainerId(std::string_view id);
CniResult<void> validateIfName(std::string_view name);
CniResult<void> validateNetworkName(std::string_view name);

}  // namespace sluice::cni
