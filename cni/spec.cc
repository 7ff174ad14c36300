#include "cni/spec.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace sluice::cni {
namespace {

// Linux IFNAMSIZ is 16 including the NUL.
constexpr size_t kMaxIfNameLength = 15;

CniResult<std::vector<std::string>> stringList(const Json& obj, std::string_view key,
                                               const std::string& path, uint32_t code) {
  std::vector<std::string> out;
  const Json* f = findField(obj, key);
  if (f == nullptr) return out;
  if (!f->is_array()) return CniError::make(code, path + ": must be an array of strings");
  for (const auto& item : *f) {
    if (!item.is_string()) return CniError::make(code, path + ": must be an array of strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

// Re-labels a field error with the caller's code (6 for a plugin's output).
CniError recode(CniError e, uint32_t code) {
  e.code = code;
  return e;
}

}  // namespace

Result<SpecVersion> SpecVersion::parse(std::string_view text) {
  SpecVersion v;
  int* parts[] = {&v.major, &v.minor, &v.patch};
  const char* p = text.data();
  const char* end = text.data() + text.size();
  for (int i = 0; i < 3; ++i) {
    auto [next, ec] = std::from_chars(p, end, *parts[i]);
    if (ec != std::errc() || next == p) return Error::invalid("'" + std::string(text) + "'");
    p = next;
    if (i < 2) {
      if (p == end || *p != '.') return Error::invalid("'" + std::string(text) + "'");
      ++p;
    }
  }
  if (p != end) return Error::invalid("'" + std::string(text) + "'");
  return v;
}

bool isSupportedVersion(std::string_view version) {
  return std::find(kSupportedVersions.begin(), kSupportedVersions.end(), version) !=
         kSupportedVersions.end();
}

bool versionAtLeast(std::string_view version, std::string_view minimum) {
  auto v = SpecVersion::parse(version);
  auto m = SpecVersion::parse(minimum);
  return v && m && *v >= *m;
}

std::optional<Command> parseCommand(std::string_view text) {
  if (text == "ADD") return Command::kAdd;
  if (text == "DEL") return Command::kDel;
  if (text == "CHECK") return Command::kCheck;
  if (text == "VERSION") return Command::kVersion;
  if (text == "GC") return Command::kGc;
  if (text == "STATUS") return Command::kStatus;
  return std::nullopt;
}

std::string_view toString(Command command) {
  switch (command) {
    case Command::kAdd: return "ADD";
    case Command::kDel: return "DEL";
    case Command::kCheck: return "CHECK";
    case Command::kVersion: return "VERSION";
    case Command::kGc: return "GC";
    case Command::kStatus: return "STATUS";
  }
  return "UNKNOWN";
}

Json toJson(const Dns& dns) {
  Json out = Json::object();
  if (!dns.nameservers.empty()) out["nameservers"] = dns.nameservers;
  if (!dns.domain.empty()) out["domain"] = dns.domain;
  if (!dns.search.empty()) out["search"] = dns.search;
  if (!dns.options.empty()) out["options"] = dns.options;
  return out;
}

Json toJson(const AddResult& result, std::string_view version) {
  const bool legacy = !versionAtLeast(version, "1.0.0");
  const bool withMtu = versionAtLeast(version, "1.1.0");
  Json out = Json::object();
  out["cniVersion"] = std::string(version);
  if (!result.interfaces.empty()) {
    Json list = Json::array();
    for (const auto& i : result.interfaces) {
      Json j = {{"name", i.name}};
      if (!i.mac.empty()) j["mac"] = i.mac;
      if (withMtu && i.mtu) j["mtu"] = *i.mtu;
      if (!i.sandbox.empty()) j["sandbox"] = i.sandbox;
      list.push_back(std::move(j));
    }
    out["interfaces"] = std::move(list);
  }
  Json ips = Json::array();
  for (const auto& ip : result.ips) {
    Json j = Json::object();
    if (legacy) j["version"] = ip.address.address().isV4() ? "4" : "6";
    j["address"] = ip.address.toString();
    if (ip.gateway) j["gateway"] = ip.gateway->toString();
    if (ip.interfaceIndex) j["interface"] = *ip.interfaceIndex;
    ips.push_back(std::move(j));
  }
  out["ips"] = std::move(ips);
  if (!result.routes.empty()) {
    Json routes = Json::array();
    for (const auto& r : result.routes) {
      Json j = {{"dst", r.dst.toString()}};
      if (r.gw) j["gw"] = r.gw->toString();
      routes.push_back(std::move(j));
    }
    out["routes"] = std::move(routes);
  }
  out["dns"] = toJson(result.dns);
  return out;
}

CniResult<Dns> parseDns(const Json& doc, std::string_view what, uint32_t code) {
  Dns dns;
  const std::string p(what);
  if (!doc.is_object()) return CniError::make(code, p + ": must be an object");
  auto ns = stringList(doc, "nameservers", p + ".nameservers", code);
  if (!ns) return ns.error();
  dns.nameservers = std::move(*ns);
  auto domain = optString(doc, "domain", p + ".domain");
  if (!domain) return recode(domain.error(), code);
  dns.domain = domain->value_or("");
  auto search = stringList(doc, "search", p + ".search", code);
  if (!search) return search.error();
  dns.search = std::move(*search);
  auto options = stringList(doc, "options", p + ".options", code);
  if (!options) return options.error();
  dns.options = std::move(*options);
  return dns;
}

CniResult<AddResult> parseResult(const Json& doc, std::string_view what, uint32_t code) {
  const std::string p(what);
  if (!doc.is_object()) return CniError::make(code, p + ": must be an object");
  AddResult result;
  auto version = optString(doc, "cniVersion", p + ".cniVersion");
  if (!version) return recode(version.error(), code);
  result.cniVersion = version->value_or("");

  auto interfaces = optArray(doc, "interfaces", p + ".interfaces");
  if (!interfaces) return recode(interfaces.error(), code);
  if (*interfaces != nullptr) {
    for (size_t n = 0; n < (*interfaces)->size(); ++n) {
      const Json& j = (**interfaces)[n];
      const std::string ip = p + ".interfaces[" + std::to_string(n) + "]";
      Interface i;
      auto name = requireString(j, "name", ip + ".name");
      if (!name) return recode(name.error(), code);
      i.name = *name;
      auto mac = optString(j, "mac", ip + ".mac");
      if (!mac) return recode(mac.error(), code);
      i.mac = mac->value_or("");
      auto mtu = optInt(j, "mtu", ip + ".mtu");
      if (!mtu) return recode(mtu.error(), code);
      if (*mtu) i.mtu = static_cast<int>(**mtu);
      auto sandbox = optString(j, "sandbox", ip + ".sandbox");
      if (!sandbox) return recode(sandbox.error(), code);
      i.sandbox = sandbox->value_or("");
      result.interfaces.push_back(std::move(i));
    }
  }

  auto ips = optArray(doc, "ips", p + ".ips");
  if (!ips) return recode(ips.error(), code);
  if (*ips != nullptr) {
    for (size_t n = 0; n < (*ips)->size(); ++n) {
      const Json& j = (**ips)[n];
      const std::string ip = p + ".ips[" + std::to_string(n) + "]";
      IpConfig c;
      auto address = requireString(j, "address", ip + ".address");
      if (!address) return recode(address.error(), code);
      auto prefix = IpPrefix::parse(*address);
      if (!prefix) return CniError::make(code, ip + ".address: " + prefix.error().message);
      c.address = *prefix;
      auto gateway = optString(j, "gateway", ip + ".gateway");
      if (!gateway) return recode(gateway.error(), code);
      if (*gateway) {
        auto gw = IpAddress::parse(**gateway);
        if (!gw) return CniError::make(code, ip + ".gateway: " + gw.error().message);
        c.gateway = *gw;
      }
      auto index = optInt(j, "interface", ip + ".interface");
      if (!index) return recode(index.error(), code);
      if (*index) {
        if (**index < 0 || static_cast<size_t>(**index) >= result.interfaces.size()) {
          return CniError::make(code, ip + ".interface: " + std::to_string(**index) +
                                          " is not an index into interfaces");
        }
        c.interfaceIndex = static_cast<int>(**index);
      }
      result.ips.push_back(std::move(c));
    }
  }

  auto routes = optArray(doc, "routes", p + ".routes");
  if (!routes) return recode(routes.error(), code);
  if (*routes != nullptr) {
    for (size_t n = 0; n < (*routes)->size(); ++n) {
      const Json& j = (**routes)[n];
      const std::string rp = p + ".routes[" + std::to_string(n) + "]";
      Route r;
      auto dst = requireString(j, "dst", rp + ".dst");
      if (!dst) return recode(dst.error(), code);
      auto prefix = IpPrefix::parse(*dst);
      if (!prefix) return CniError::make(code, rp + ".dst: " + prefix.error().message);
      r.dst = prefix->network();
      auto gw = optString(j, "gw", rp + ".gw");
      if (!gw) return recode(gw.error(), code);
      if (*gw) {
        auto a = IpAddress::parse(**gw);
        if (!a) return CniError::make(code, rp + ".gw: " + a.error().message);
        if (a->family() != r.dst.family()) {
          return CniError::make(code, rp + ".gw: " + **gw + " is not in the family of dst " + *dst);
        }
        r.gw = *a;
      }
      result.routes.push_back(std::move(r));
    }
  }

  if (const Json* dns = findField(doc, "dns")) {
    auto parsed = parseDns(*dns, p + ".dns", code);
    if (!parsed) return parsed.error();
    result.dns = std::move(*parsed);
  }
  return result;
}

Json toJson(const CniError& error, std::string_view version) {
  Json out = {{"cniVersion", std::string(version)}, {"code", error.code}, {"msg", error.msg}};
  if (!error.details.empty()) out["details"] = error.details;
  return out;
}

std::optional<CniError> parseError(const Json& doc) {
  const Json* code = findField(doc, "code");
  if (code == nullptr || !code->is_number_unsigned()) return std::nullopt;
  CniError e;
  e.code = code->get<uint32_t>();
  if (const Json* msg = findField(doc, "msg"); msg != nullptr && msg->is_string()) {
    e.msg = msg->get<std::string>();
  }
  if (const Json* d = findField(doc, "details"); d != nullptr && d->is_string()) {
    e.details = d->get<std::string>();
  }
  return e;
}

CniResult<std::vector<Attachment>> parseValidAttachments(const Json& config) {
  std::vector<Attachment> out;
  std::string key = "cni.dev/valid-attachments";
  const Json* list = findField(config, key);
  if (list == nullptr) {
    key = "cni.dev/attachments";
    list = findField(config, key);
  }
  if (list == nullptr) return out;
  if (!list->is_array()) return CniError::make(kCodeInvalidConfig, key + ": must be an array");
  for (size_t n = 0; n < list->size(); ++n) {
    const std::string p = key + "[" + std::to_string(n) + "]";
    auto id = requireString((*list)[n], "containerID", p + ".containerID");
    if (!id) return id.error();
    auto ifName = requireString((*list)[n], "ifname", p + ".ifname");
    if (!ifName) return ifName.error();
    out.push_back({std::move(*id), std::move(*ifName)});
  }
  return out;
}

CniResult<std::vector<std::pair<std::string, std::string>>> parseCniArgs(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!text.empty()) {
    const auto semi = text.find(';');
    const auto pair = text.substr(0, semi);
    text = semi == std::string_view::npos ? std::string_view() : text.substr(semi + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return CniError::make(kCodeInvalidEnvironment,
                            "CNI_ARGS: '" + std::string(pair) + "' is not KEY=VALUE");
    }
    out.emplace_back(std::string(pair.substr(0, eq)), std::string(pair.substr(eq + 1)));
  }
  return out;
}

CniResult<void> validateContainerId(std::string_view id) {
  // Spec: alphanumeric first, then alphanumerics, '_', '.', '-'.
  auto bad = [](char c) {
    return !(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-');
  };
  if (id.empty()) return CniError::make(kCodeInvalidEnvironment, "CNI_CONTAINERID: required");
  if (!std::isalnum(static_cast<unsigned char>(id[0])) || std::any_of(id.begin(), id.end(), bad)) {
    return CniError::make(kCodeInvalidEnvironment,
                          "CNI_CONTAINERID: '" + std::string(id) +
                              "' must be alphanumeric, '_', '.' or '-', starting alphanumeric");
  }
  return {};
}

CniResult<void> validateIfName(std::string_view name) {
  const std::string quoted = "'" + std::string(name) + "'";
  if (name.empty()) return CniError::make(kCodeInvalidEnvironment, "CNI_IFNAME: required");
  if (name.size() > kMaxIfNameLength) {
    return CniError::make(kCodeInvalidEnvironment,
                          "CNI_IFNAME: " + quoted + " is longer than 15 characters");
  }
  if (name == "." || name == "..") {
    return CniError::make(kCodeInvalidEnvironment, "CNI_IFNAME: " + quoted + " is not allowed");
  }
  for (char c : name) {
    if (c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c))) {
      return CniError::make(kCodeInvalidEnvironment,
                            "CNI_IFNAME: " + quoted + " contains '/', ':' or whitespace");
    }
  }
  return {};
}

CniResult<void> validateNetworkName(std::string_view name) {
  // Spec: ^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$; it also names IPAM's data directory.
  auto bad = [](char c) {
    return !(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-');
  };
  if (name.empty()) return CniError::make(kCodeInvalidConfig, "name: required");
  if (!std::isalnum(static_cast<unsigned char>(name[0])) ||
      std::any_of(name.begin(), name.end(), bad)) {
    return CniError::make(kCodeInvalidConfig,
                          "name: '" + std::string(name) +
                              "' must be alphanumeric, '_', '.' or '-', starting alphanumeric");
  }
  return {};
}

}  // namespace sluice::cni
