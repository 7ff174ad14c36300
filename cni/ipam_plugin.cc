#include "cni/ipam_plugin.h"

#include <algorithm>

namespace sluice::cni {
namespace {

CniResult<std::optional<IpAddress>> optAddress(const Json& obj, std::string_view key,
                                               const std::string& path) {
  auto text = optString(obj, key, path);
  if (!text) return text.error();
  if (!*text) return std::optional<IpAddress>();
  auto ip = IpAddress::parse(**text);
  if (!ip) return CniError::make(kCodeInvalidConfig, path + ": " + ip.error().message);
  return std::optional<IpAddress>(*ip);
}

// One range from {subnet, rangeStart, rangeEnd, gateway} at `path`.
CniResult<IpRange> parseRange(const Json& obj, const std::string& path) {
  auto subnetText = requireString(obj, "subnet", path + "subnet");
  if (!subnetText) return subnetText.error();
  auto subnet = IpPrefix::parse(*subnetText);
  if (!subnet) {
    return CniError::make(kCodeInvalidConfig, path + "subnet: " + subnet.error().message);
  }
  auto start = optAddress(obj, "rangeStart", path + "rangeStart");
  if (!start) return start.error();
  auto end = optAddress(obj, "rangeEnd", path + "rangeEnd");
  if (!end) return end.error();
  auto gateway = optAddress(obj, "gateway", path + "gateway");
  if (!gateway) return gateway.error();
  auto range = IpRange::create(*subnet, *start, *end, *gateway);
  if (!range) return CniError::make(kCodeInvalidConfig, path + range.error().message);
  return *range;
}

CniResult<IpamStore> openStore(const IpamConfig& config) {
  auto store = IpamStore::open(config.dataDir);
  if (!store) return CniError::from(kCodeIoFailure, store.error());
  return std::move(*store);
}

CniError storeError(const Error& e) {
  switch (e.code) {
    case ErrorCode::kUnavailable: return CniError::from(kCodeTryAgainLater, e);
    case ErrorCode::kResourceExhausted: return CniError::from(kCodeAddressesExhausted, e);
    default: return CniError::from(kCodeIoFailure, e);
  }
}

}  // namespace

CniResult<IpamConfig> IpamConfig::parse(const Json& config) {
  IpamConfig out;
  auto name = requireString(config, "name", "name");
  if (!name) return name.error();
  out.network = *name;
  auto ipam = optObject(config, "ipam", "ipam");
  if (!ipam) return ipam.error();
  if (*ipam == nullptr) return CniError::make(kCodeInvalidConfig, "ipam: required");
  const Json& o = **ipam;

  if (findField(o, "subnet") != nullptr) {
    auto range = parseRange(o, "ipam.");
    if (!range) return range.error();
    out.ranges.push_back(*range);
  }
  auto ranges = optArray(o, "ranges", "ipam.ranges");
  if (!ranges) return ranges.error();
  if (*ranges != nullptr) {
    for (size_t i = 0; i < (*ranges)->size(); ++i) {
      const std::string path = "ipam.ranges[" + std::to_string(i) + "].";
      if (!(**ranges)[i].is_object()) {
        return CniError::make(kCodeInvalidConfig, path.substr(0, path.size() - 1) +
                                                      ": must be an object with a subnet");
      }
      auto range = parseRange((**ranges)[i], path);
      if (!range) return range.error();
      out.ranges.push_back(*range);
    }
  }
  if (out.ranges.empty()) {
    return CniError::make(kCodeInvalidConfig, "ipam.subnet: required (or ipam.ranges)");
  }
  for (size_t i = 0; i < out.ranges.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      const auto& a = out.ranges[i].subnet;
      const auto& b = out.ranges[j].subnet;
      if (a.contains(b.address()) || b.contains(a.address())) {
        return CniError::make(kCodeInvalidConfig,
                              "ipam: ranges " + b.toString() + " and " + a.toString() + " overlap");
      }
    }
  }

  // Routes use the result decoder's field checks, then are re-labelled code 7.
  if (const Json* routes = findField(o, "routes")) {
    auto parsed = parseResult(Json{{"routes", *routes}}, "ipam", kCodeInvalidConfig);
    if (!parsed) return parsed.error();
    out.routes = parsed->routes;
  }
  auto dataDir = optString(o, "dataDir", "ipam.dataDir");
  if (!dataDir) return dataDir.error();
  // A relative path would resolve against whatever directory the runtime
  // exec'd the plugin in: allocations would scatter and addresses repeat.
  if (*dataDir && ((*dataDir)->empty() || (**dataDir)[0] != '/')) {
    return CniError::make(kCodeInvalidConfig,
                          "ipam.dataDir: '" + **dataDir + "' is not an absolute path");
  }
  out.dataDir = dataDir->value_or(std::string(kDefaultIpamDataDir)) + "/" + out.network;
  return out;
}

CniResult<Json> IpamPlugin::add(const CmdArgs& args) {
  auto config = IpamConfig::parse(args.config);
  if (!config) return config.error();
  auto store = openStore(*config);
  if (!store) return store.error();
  auto ips = store->allocate(config->ranges, args.containerId, args.ifName);
  if (!ips) return storeError(ips.error());
  AddResult result;
  for (size_t i = 0; i < ips->size(); ++i) {
    const auto& range = config->ranges[i];
    auto address = IpPrefix::make((*ips)[i], range.subnet.length());
    result.ips.push_back({*address, range.gateway, std::nullopt});
  }
  result.routes = config->routes;
  return toJson(result, args.cniVersion);
}

CniResult<void> IpamPlugin::del(const CmdArgs& args) {
  auto config = IpamConfig::parse(args.config);
  if (!config) return config.error();
  auto store = openStore(*config);
  if (!store) return store.error();
  if (auto r = store->release(args.containerId, args.ifName); !r) return storeError(r.error());
  return {};
}

CniResult<void> IpamPlugin::check(const CmdArgs& args) {
  auto config = IpamConfig::parse(args.config);
  if (!config) return config.error();
  auto store = openStore(*config);
  if (!store) return store.error();
  auto all = store->list();
  if (!all) return storeError(all.error());
  for (const auto& range : config->ranges) {
    const bool held = std::any_of(all->begin(), all->end(), [&](const Allocation& a) {
      return a.containerId == args.containerId && a.ifName == args.ifName &&
             range.subnet.contains(a.ip);
    });
    if (!held) {
      return CniError::make(kCodeCheckFailed, "ipam: " + args.containerId + "/" + args.ifName +
                                                  " holds no address in " + range.subnet.toString());
    }
  }
  return {};
}

CniResult<void> IpamPlugin::gc(const CmdArgs& args) {
  auto config = IpamConfig::parse(args.config);
  if (!config) return config.error();
  auto valid = parseValidAttachments(args.config);
  if (!valid) return valid.error();
  std::vector<std::pair<std::string, std::string>> keep;
  for (const auto& a : *valid) keep.emplace_back(a.containerId, a.ifName);
  auto store = openStore(*config);
  if (!store) return store.error();
  if (auto r = store->releaseAllExcept(keep); !r) return storeError(r.error());
  return {};
}

CniResult<void> IpamPlugin::status(const CmdArgs& args) {
  auto config = IpamConfig::parse(args.config);
  if (!config) return config.error();
  auto store = openStore(*config);
  if (!store) return CniError::make(kCodePluginNotAvailable, store.error().msg);
  for (const auto& range : config->ranges) {
    auto free = store->hasFree(range);
    if (!free) return CniError::make(kCodePluginNotAvailable, "ipam: " + free.error().message);
    if (!*free) {
      return CniError::make(kCodePluginNotAvailable,
                            "ipam: no free address in " + range.subnet.toString());
    }
  }
  return {};
}

}  // namespace sluice::cni
