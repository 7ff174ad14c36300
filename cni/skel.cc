#include "cni/skel.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "cni/invoke.h"

extern char** environ;  // NOLINT: POSIX

namespace sluice::cni {
namespace {

std::string supportedList() {
  std::string out;
  for (auto v : kSupportedVersions) out += (out.empty() ? "" : ", ") + std::string(v);
  return out;
}

const std::string* lookup(const std::map<std::string, std::string>& env, const std::string& key) {
  auto it = env.find(key);
  return it == env.end() ? nullptr : &it->second;
}

// Environment each command needs (spec 1.1.0, "Parameters" per operation).
// CNI_PATH is left to the plugin: only one that delegates needs it.
std::vector<std::string> requiredVariables(Command command) {
  switch (command) {
    case Command::kAdd:
    case Command::kCheck: return {"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"};
    case Command::kDel: return {"CNI_CONTAINERID", "CNI_IFNAME"};
    case Command::kGc:
    case Command::kStatus:
    case Command::kVersion: return {};
  }
  return {};
}

PluginOutput versionOutput(std::string_view stdinData) {
  // The runtime may send {"cniVersion": "..."}; answer in that version when
  // we speak it. Anything unreadable is ignored: VERSION must always answer.
  std::string version(kLatestVersion);
  auto doc = parseJson(stdinData, "stdin");
  if (doc) {
    if (const Json* v = findField(*doc, "cniVersion"); v != nullptr && v->is_string() &&
                                                       isSupportedVersion(v->get<std::string>())) {
      version = v->get<std::string>();
    }
  }
  Json out = {{"cniVersion", version}, {"supportedVersions", Json::array()}};
  for (auto v : kSupportedVersions) out["supportedVersions"].push_back(std::string(v));
  return {0, dumpJson(out) + "\n"};
}

CniResult<CmdArgs> parseArgs(const std::map<std::string, std::string>& env,
                             std::string_view stdinData) {
  CmdArgs args;
  const std::string* command = lookup(env, "CNI_COMMAND");
  if (command == nullptr || command->empty()) {
    return CniError::make(kCodeInvalidEnvironment, "CNI_COMMAND: required");
  }
  auto parsed = parseCommand(*command);
  if (!parsed) {
    return CniError::make(kCodeInvalidEnvironment, "CNI_COMMAND: unknown command '" + *command +
                                                       "' (want ADD, DEL, CHECK, GC, STATUS or VERSION)");
  }
  args.command = *parsed;
  for (const auto& name : requiredVariables(args.command)) {
    const std::string* v = lookup(env, name);
    if (v == nullptr || v->empty()) {
      return CniError::make(kCodeInvalidEnvironment,
                            name + ": required for " + std::string(toString(args.command)));
    }
  }
  auto get = [&](const char* name) {
    const std::string* v = lookup(env, name);
    return v == nullptr ? std::string() : *v;
  };
  args.containerId = get("CNI_CONTAINERID");
  args.netns = get("CNI_NETNS");
  args.ifName = get("CNI_IFNAME");
  args.args = get("CNI_ARGS");
  args.path = get("CNI_PATH");
  args.stdinData = std::string(stdinData);
  if (!args.containerId.empty()) {
    if (auto r = validateContainerId(args.containerId); !r) return r.error();
  }
  if (!args.ifName.empty()) {
    if (auto r = validateIfName(args.ifName); !r) return r.error();
  }
  if (auto r = parseCniArgs(args.args); !r) return r.error();
  return args;
}

// Decodes and validates the common configuration fields.
CniResult<void> parseConfig(CmdArgs& args) {
  if (args.stdinData.find_first_not_of(" \t\r\n") == std::string::npos) {
    return CniError::make(kCodeDecodeFailure, "stdin: empty network configuration");
  }
  auto doc = parseJson(args.stdinData, "network configuration");
  if (!doc) return doc.error();
  if (!doc->is_object()) {
    return CniError::make(kCodeDecodeFailure, "network configuration: not a JSON object");
  }
  args.config = std::move(*doc);
  auto version = requireString(args.config, "cniVersion", "cniVersion");
  if (!version) return version.error();
  if (!isSupportedVersion(*version)) {
    return CniError::make(kCodeIncompatibleVersion, "cniVersion: '" + *version +
                                                        "' is not supported (supported: " +
                                                        supportedList() + ")");
  }
  args.cniVersion = *version;
  const std::string command(toString(args.command));
  if (args.command == Command::kCheck && !versionAtLeast(*version, "0.4.0")) {
    return CniError::make(kCodeIncompatibleVersion,
                          "cniVersion: CHECK needs 0.4.0 or later, config has " + *version);
  }
  if ((args.command == Command::kGc || args.command == Command::kStatus) &&
      !versionAtLeast(*version, "1.1.0")) {
    return CniError::make(kCodeIncompatibleVersion,
                          "cniVersion: " + command + " needs 1.1.0 or later, config has " + *version);
  }
  auto name = requireString(args.config, "name", "name");
  if (!name) return name.error();
  if (auto r = validateNetworkName(*name); !r) return r.error();
  auto type = requireString(args.config, "type", "type");
  if (!type) return type.error();
  args.pathDirs = splitCniPath(args.path);
  return {};
}

PluginOutput errorOutput(const CniError& error, std::string_view version) {
  return {1, dumpJson(toJson(error, version)) + "\n"};
}

}  // namespace

PluginOutput runPlugin(PluginHandlers& handlers, const std::map<std::string, std::string>& env,
                       std::string_view stdinData) {
  auto parsed = parseArgs(env, stdinData);
  if (!parsed) return errorOutput(parsed.error(), kLatestVersion);
  CmdArgs& args = *parsed;
  if (args.command == Command::kVersion) return versionOutput(stdinData);
  if (auto r = parseConfig(args); !r) {
    // Answer in the config's version when it is one we speak (spec: "the same
    // value as provided by the configuration"), else in our newest.
    const std::string version = isSupportedVersion(args.cniVersion) ? args.cniVersion
                                                                   : std::string(kLatestVersion);
    return errorOutput(r.error(), version);
  }
  switch (args.command) {
    case Command::kAdd: {
      auto result = handlers.add(args);
      if (!result) return errorOutput(result.error(), args.cniVersion);
      return {0, dumpJson(*result) + "\n"};
    }
    case Command::kDel: {
      auto r = handlers.del(args);
      return r ? PluginOutput{} : errorOutput(r.error(), args.cniVersion);
    }
    case Command::kCheck: {
      auto r = handlers.check(args);
      return r ? PluginOutput{} : errorOutput(r.error(), args.cniVersion);
    }
    case Command::kGc: {
      auto r = handlers.gc(args);
      return r ? PluginOutput{} : errorOutput(r.error(), args.cniVersion);
    }
    case Command::kStatus: {
      auto r = handlers.status(args);
      return r ? PluginOutput{} : errorOutput(r.error(), args.cniVersion);
    }
    case Command::kVersion: break;
  }
  return versionOutput(stdinData);
}

int pluginMain(PluginHandlers& handlers) {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string_view::npos) env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  std::string input;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
    if (n > 0) {
      input.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      if (n < 0) {
        auto out = errorOutput(CniError::make(kCodeIoFailure, std::string("stdin: ") +
                                                                  std::strerror(errno)),
                               kLatestVersion);
        std::fputs(out.stdoutData.c_str(), stdout);
        return out.exitCode;
      }
      break;
    }
  }
  auto out = runPlugin(handlers, env, input);
  std::fwrite(out.stdoutData.data(), 1, out.stdoutData.size(), stdout);
  std::fflush(stdout);
  return out.exitCode;
}

}  // namespace sluice::cni
