#include "cni/runtime.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "cni/invoke.h"

namespace sluice::cni {
namespace {

// libcni's cache format marker; the file is ours, the name only documents it.
constexpr std::string_view kCacheKind = "sluice-cni-cache-v1";

CniResult<std::string> readWhole(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return CniError::make(kCodeIoFailure, path + ": " + std::strerror(errno));
  }
  std::string out;
  char buf[8192];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

Result<void> writeWhole(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Error::internal("open " + tmp + ": " + std::strerror(errno));
  const bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
                  ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return Error::internal("write " + path + ": " + std::strerror(errno));
  }
  return {};
}

std::string joinArgs(const std::vector<std::pair<std::string, std::string>>& args) {
  std::string out;
  for (const auto& [k, v] : args) out += (out.empty() ? "" : ";") + k + "=" + v;
  return out;
}

std::string joinPath(const std::vector<std::string>& dirs) {
  std::string out;
  for (const auto& d : dirs) out += (out.empty() ? "" : ":") + d;
  return out;
}

std::string pluginType(const Json& plugin) {
  const Json* t = findField(plugin, "type");
  return t != nullptr && t->is_string() ? t->get<std::string>() : std::string();
}

}  // namespace

CniResult<NetworkConfigList> NetworkConfigList::parse(std::string_view text) {
  auto doc = parseJson(text, "network configuration list");
  if (!doc) return doc.error();
  if (!doc->is_object()) {
    return CniError::make(kCodeDecodeFailure, "network configuration list: not a JSON object");
  }
  NetworkConfigList list;
  auto name = requireString(*doc, "name", "name");
  if (!name) return name.error();
  if (auto r = validateNetworkName(*name); !r) return r.error();
  list.name = *name;
  auto version = requireString(*doc, "cniVersion", "cniVersion");
  if (!version) return version.error();
  list.cniVersion = *version;
  // Spec 1.1.0: pick the newest of cniVersions this runtime speaks.
  auto versions = optArray(*doc, "cniVersions", "cniVersions");
  if (!versions) return versions.error();
  if (*versions != nullptr) {
    std::optional<SpecVersion> best;
    for (const auto& v : **versions) {
      if (!v.is_string() || !isSupportedVersion(v.get<std::string>())) continue;
      auto parsed = SpecVersion::parse(v.get<std::string>());
      if (parsed && (!best || *parsed > *best)) {
        best = *parsed;
        list.cniVersion = v.get<std::string>();
      }
    }
  }
  auto disableCheck = optBool(*doc, "disableCheck", "disableCheck");
  if (!disableCheck) return disableCheck.error();
  list.disableCheck = disableCheck->value_or(false);
  auto disableGc = optBool(*doc, "disableGC", "disableGC");
  if (!disableGc) return disableGc.error();
  list.disableGc = disableGc->value_or(false);

  auto plugins = optArray(*doc, "plugins", "plugins");
  if (!plugins) return plugins.error();
  if (*plugins == nullptr) {
    list.plugins.push_back(*doc);  // a single-plugin .conf
  } else {
    for (const auto& p : **plugins) list.plugins.push_back(p);
  }
  if (list.plugins.empty()) return CniError::make(kCodeInvalidConfig, "plugins: empty");
  for (size_t i = 0; i < list.plugins.size(); ++i) {
    const std::string path = "plugins[" + std::to_string(i) + "]";
    if (!list.plugins[i].is_object()) {
      return CniError::make(kCodeInvalidConfig, path + ": must be an object");
    }
    if (auto t = requireString(list.plugins[i], "type", path + ".type"); !t) return t.error();
  }
  return list;
}

CniResult<NetworkConfigList> NetworkConfigList::load(const std::string& path) {
  auto text = readWhole(path);
  if (!text) return text.error();
  auto list = parse(*text);
  if (!list) return list.error().wrap(path);
  return list;
}

Result<CniRuntime> CniRuntime::create(RuntimeOptions options) {
  if (options.cacheDir.empty()) return Error::invalid("runtime: cacheDir is required");
  for (size_t pos = 1; pos <= options.cacheDir.size(); ++pos) {
    if (pos != options.cacheDir.size() && options.cacheDir[pos] != '/') continue;
    const std::string prefix = options.cacheDir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return Error::internal("mkdir " + prefix + ": " + std::strerror(errno));
    }
  }
  return CniRuntime(std::move(options));
}

std::string CniRuntime::cachePath(const std::string& network, const std::string& containerId,
                                  const std::string& ifName) const {
  return options_.cacheDir + "/" + network + "-" + containerId + "-" + ifName + ".json";
}

std::optional<Json> CniRuntime::readCache(const std::string& path) const {
  auto text = readWhole(path);
  if (!text) return std::nullopt;
  auto doc = parseJson(*text, path);
  if (!doc || !doc->is_object()) return std::nullopt;
  return *doc;
}

CniResult<Json> CniRuntime::invoke(Command command, const Json& plugin,
                                   const NetworkConfigList& list, const RuntimeConfig* rt,
                                   const Json* prevResult, const Json* extra) const {
  const std::string type = pluginType(plugin);
  auto path = findPlugin(type, options_.pluginDirs);
  if (!path) return CniError::make(kCodePluginNotFound, path.error().message);
  // libcni's buildOneConfig: the list's name and version, prevResult, and
  // the capability arguments this plugin asked for.
  Json config = plugin;
  config["name"] = list.name;
  config["cniVersion"] = list.cniVersion;
  if (prevResult != nullptr) config["prevResult"] = *prevResult;
  if (rt != nullptr) {
    if (const Json* caps = findField(plugin, "capabilities"); caps != nullptr && caps->is_object()) {
      Json runtimeConfig = Json::object();
      for (const auto& [key, enabled] : caps->items()) {
        if (!enabled.is_boolean() || !enabled.get<bool>()) continue;
        if (const Json* value = findField(rt->capabilityArgs, key)) runtimeConfig[key] = *value;
      }
      if (!runtimeConfig.empty()) config["runtimeConfig"] = std::move(runtimeConfig);
    }
  }
  if (extra != nullptr) {
    for (const auto& [key, value] : extra->items()) config[key] = value;
  }
  Invocation inv;
  inv.command = command;
  if (rt != nullptr) {
    inv.containerId = rt->containerId;
    inv.netns = rt->netns;
    inv.ifName = rt->ifName;
    inv.args = joinArgs(rt->args);
  }
  inv.path = joinPath(options_.pluginDirs);
  return invokePlugin(*path, inv, currentEnviron(), dumpJson(config), "plugin " + type,
                      options_.execNetnsFd, options_.pluginTimeoutMs);
}

CniResult<AddResult> CniRuntime::add(const NetworkConfigList& list, const RuntimeConfig& rt) {
  std::optional<Json> prev;
  for (const auto& plugin : list.plugins) {
    auto out = invoke(Command::kAdd, plugin, list, &rt, prev ? &*prev : nullptr, nullptr);
    if (!out) return out.error();
    prev = std::move(*out);
  }
  auto result = parseResult(prev.value_or(Json::object()), "result", kCodeDecodeFailure);
  if (!result) return result.error();
  Json cache = {{"kind", kCacheKind}, {"containerId", rt.containerId}, {"ifName", rt.ifName},
                {"netns", rt.netns},  {"networkName", list.name},      {"result", *prev}};
  if (auto r = writeWhole(cachePath(list.name, rt.containerId, rt.ifName), dumpJson(cache)); !r) {
    return CniError::from(kCodeIoFailure, r.error());
  }
  return result;
}

CniResult<void> CniRuntime::del(const NetworkConfigList& list, const RuntimeConfig& rt) {
  const std::string path = cachePath(list.name, rt.containerId, rt.ifName);
  std::optional<Json> prev;
  if (auto cache = readCache(path)) {
    if (const Json* r = findField(*cache, "result")) prev = *r;
  }
  for (auto it = list.plugins.rbegin(); it != list.plugins.rend(); ++it) {
    auto out = invoke(Command::kDel, *it, list, &rt, prev ? &*prev : nullptr, nullptr);
    if (!out) return out.error();
  }
  ::unlink(path.c_str());
  return {};
}

CniResult<void> CniRuntime::check(const NetworkConfigList& list, const RuntimeConfig& rt) {
  if (list.disableCheck) return {};
  auto cache = readCache(cachePath(list.name, rt.containerId, rt.ifName));
  const Json* prev = cache ? findField(*cache, "result") : nullptr;
  if (prev == nullptr) {
    return CniError::make(kCodeInvalidConfig, "no cached result for " + rt.containerId + "/" +
                                                  rt.ifName + " on network " + list.name);
  }
  for (const auto& plugin : list.plugins) {
    auto out = invoke(Command::kCheck, plugin, list, &rt, prev, nullptr);
    if (!out) return out.error();
  }
  return {};
}

CniResult<void> CniRuntime::gc(const NetworkConfigList& list, const std::vector<Attachment>& valid) {
  if (list.disableGc) return {};
  std::optional<CniError> firstError;
  // Stale cached attachments first: a real DEL with their cached result.
  const std::string prefix = list.name + "-";
  if (DIR* d = ::opendir(options_.cacheDir.c_str())) {
    std::vector<std::string> files;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.rfind(prefix, 0) == 0 && n.size() > 5 && n.substr(n.size() - 5) == ".json") {
        files.push_back(n);
      }
    }
    ::closedir(d);
    for (const auto& f : files) {
      auto cache = readCache(options_.cacheDir + "/" + f);
      if (!cache) continue;
      const Json* net = findField(*cache, "networkName");
      if (net == nullptr || !net->is_string() || net->get<std::string>() != list.name) continue;
      auto str = [&](const char* key) {
        const Json* f = findField(*cache, key);
        return f != nullptr && f->is_string() ? f->get<std::string>() : std::string();
      };
      RuntimeConfig rt;
      rt.containerId = str("containerId");
      rt.ifName = str("ifName");
      rt.netns = str("netns");
      if (std::find(valid.begin(), valid.end(), Attachment{rt.containerId, rt.ifName}) !=
          valid.end()) {
        continue;
      }
      // The netns of a stale attachment is usually gone; DEL copes.
      if (auto r = del(list, rt); !r && !firstError) firstError = r.error();
    }
  }
  if (versionAtLeast(list.cniVersion, "1.1.0")) {
    Json attachments = Json::array();
    for (const auto& a : valid) {
      attachments.push_back({{"containerID", a.containerId}, {"ifname", a.ifName}});
    }
    // Both keys, as libcni sends: the spec text first named it "attachments".
    Json extra = {{"cni.dev/valid-attachments", attachments}, {"cni.dev/attachments", attachments}};
    for (const auto& plugin : list.plugins) {
      auto out = invoke(Command::kGc, plugin, list, nullptr, nullptr, &extra);
      if (!out && !firstError) firstError = out.error();
    }
  }
  if (firstError) return *firstError;
  return {};
}

CniResult<void> CniRuntime::status(const NetworkConfigList& list) {
  if (!versionAtLeast(list.cniVersion, "1.1.0")) return {};
  for (const auto& plugin : list.plugins) {
    auto out = invoke(Command::kStatus, plugin, list, nullptr, nullptr, nullptr);
    if (!out) return out.error();
  }
  return {};
}

std::optional<AddResult> CniRuntime::cachedResult(const NetworkConfigList& list,
                                                  const RuntimeConfig& rt) const {
  auto cache = readCache(cachePath(list.name, rt.containerId, rt.ifName));
  const Json* r = cache ? findField(*cache, "result") : nullptr;
  if (r == nullptr) return std::nullopt;
  auto parsed = parseResult(*r, "cached result", kCodeDecodeFailure);
  if (!parsed) return std::nullopt;
  return *parsed;
}

}  // namespace sluice::cni
