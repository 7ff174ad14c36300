#include "cni/ipam_delegate.h"

#include "cni/invoke.h"

namespace sluice::cni {

CniResult<IpamDelegate> IpamDelegate::create(const CmdArgs& args, const std::string& type) {
  if (args.pathDirs.empty()) {
    return CniError::make(kCodeInvalidEnvironment,
                          "CNI_PATH: required to find ipam plugin '" + type + "'");
  }
  auto path = findPlugin(type, args.pathDirs);
  if (!path) return CniError::make(kCodePluginNotFound, "ipam.type: " + path.error().message);
  const std::string who = "ipam plugin " + type;
  auto versions = queryVersions(*path, currentEnviron(), who);
  if (!versions) return versions.error();
  auto version = negotiateVersion(args.cniVersion, *versions);
  if (!version) {
    std::string theirs;
    for (const auto& v : *versions) theirs += (theirs.empty() ? "" : ", ") + v;
    return CniError::make(kCodeIncompatibleVersion, who + " speaks no version compatible with " +
                                                        args.cniVersion + " (it has " + theirs + ")");
  }
  return IpamDelegate(args, type, std::move(*path), std::move(*version));
}

CniResult<Json> IpamDelegate::invoke(Command command) const {
  Json config = args_->config;
  if (version_ != args_->cniVersion) {
    config["cniVersion"] = version_;
    if (const Json* prev = findField(config, "prevResult")) {
      auto parsed = parseResult(*prev, "prevResult", kCodeInvalidConfig);
      if (!parsed) return parsed.error();
      config["prevResult"] = toJson(*parsed, version_);
    }
  }
  Invocation inv;
  inv.command = command;
  inv.containerId = args_->containerId;
  inv.netns = args_->netns;
  inv.ifName = args_->ifName;
  inv.args = args_->args;
  inv.path = args_->path;
  return invokePlugin(path_, inv, currentEnviron(), dumpJson(config), "ipam plugin " + type_);
}

CniResult<AddResult> IpamDelegate::add() const {
  auto out = invoke(Command::kAdd);
  if (!out) return out.error();
  auto result = parseResult(*out, "ipam plugin " + type_ + " result", kCodeDecodeFailure);
  if (!result) return result.error();
  if (result->ips.empty()) {
    return CniError::make(kCodeDelegateFailed, "ipam plugin " + type_ + " returned no addresses");
  }
  return result;
}

CniResult<void> IpamDelegate::del() const {
  auto out = invoke(Command::kDel);
  if (!out) return out.error();
  return {};
}

CniResult<void> IpamDelegate::check() const {
  if (!versionAtLeast(version_, "0.4.0")) return {};
  auto out = invoke(Command::kCheck);
  if (!out) return out.error();
  return {};
}

CniResult<void> IpamDelegate::gc() const {
  if (!versionAtLeast(version_, "1.1.0")) return {};
  auto out = invoke(Command::kGc);
  if (!out) return out.error();
  return {};
}

CniResult<void> IpamDelegate::status() const {
  if (!versionAtLeast(version_, "1.1.0")) return {};
  auto out = invoke(Command::kStatus);
  if (!out) return out.error();
  return {};
}

}  // namespace sluice::cni
