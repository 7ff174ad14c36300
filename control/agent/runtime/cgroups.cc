#include "control/agent/runtime/cgroups.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "control/api/quantity.h"

namespace sluice::agent {
namespace {

using Json = nlohmann::json;

// How long remove() waits for SIGKILLed tasks to leave before giving up on
// rmdir (EBUSY); exit after SIGKILL takes microseconds unless in D state.
constexpr int kRemoveWaitSteps = 100;
constexpr auto kRemoveWaitStep = std::chrono::milliseconds(20);

std::string errnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// Plain read(2)/write(2): cgroup files report errors (EINVAL, EBUSY) on the
// write call itself, which iostreams would swallow.
Result<void> writeFile(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Error{ErrorCode::kInternal, errnoText("open " + path)};
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    errno = err;
    return Error{ErrorCode::kInternal, errnoText("write \"" + value + "\" to " + path)};
  }
  return okResult();
}

Result<std::string> readFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{ErrorCode::kNotFound, errnoText("open " + path)};
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      errno = err;
      return Error{ErrorCode::kInternal, errnoText("read " + path)};
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

Result<uint64_t> readNumber(const std::string& path) {
  auto text = readFile(path);
  if (!text) return text.error();
  try {
    return static_cast<uint64_t>(std::stoull(*text));
  } catch (...) {
    return Error{ErrorCode::kInternal, path + ": not a number: " + *text};
  }
}

// "key value" lines (memory.stat, cpu.stat, memory.events, memory.oom_control).
std::optional<uint64_t> keyedValue(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return std::nullopt;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, sep)) out.push_back(part);
  return out;
}

std::string joinPath(const std::string& a, const std::string& b) {
  if (b.empty() || b == "/") return a;
  std::string out = a;
  while (!out.empty() && out.back() == '/') out.pop_back();
  return out + (b.front() == '/' ? "" : "/") + b;
}

// The agent's cgroup in a hierarchy, as seen from that hierarchy's mount:
// a mount of a subtree (root field of mountinfo) strips its prefix.
std::string relativeToMount(const std::string& self, const std::string& mountRoot) {
  if (mountRoot == "/" || mountRoot.empty()) return self;
  if (self.rfind(mountRoot, 0) == 0) return self.substr(mountRoot.size());
  return "/";
}

Result<int64_t> quantityMilli(const Json& list, const char* key, const std::string& path) {
  const Json& v = list[key];
  std::string text = v.is_string() ? v.get<std::string>() : v.is_number() ? v.dump() : "";
  auto q = api::parseQuantity(text);
  if (!q) return Error{ErrorCode::kInvalidArgument, path + ": " + q.error().message};
  return q->milliValue();
}

void killAll(const std::string& dir) {
  auto procs = readFile(dir + "/cgroup.procs");
  if (!procs) return;
  std::istringstream in(*procs);
  pid_t pid = 0;
  while (in >> pid) {
    if (pid > 0) ::kill(pid, SIGKILL);
  }
}

Result<void> removeTree(const std::string& dir) {
  if (!exists(dir)) return okResult();
  if (DIR* d = ::opendir(dir.c_str())) {
    std::vector<std::string> children;
    while (struct dirent* e = ::readdir(d)) {
      if (e->d_type == DT_DIR && std::strcmp(e->d_name, ".") != 0 &&
          std::strcmp(e->d_name, "..") != 0) {
        children.push_back(dir + "/" + e->d_name);
      }
    }
    ::closedir(d);
    for (const std::string& c : children) {
      if (auto r = removeTree(c); !r) return r;
    }
  }
  for (int i = 0; i < kRemoveWaitSteps; ++i) {
    killAll(dir);
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return okResult();
    if (errno != EBUSY) break;
    std::this_thread::sleep_for(kRemoveWaitStep);
  }
  return Error{ErrorCode::kInternal, errnoText("remove cgroup " + dir)};
}

}  // namespace

std::vector<std::string> cgroupProcsOf(pid_t pid) {
  std::vector<std::string> out;
  auto theirs = readFile("/proc/" + std::to_string(pid) + "/cgroup");
  auto ours = readFile("/proc/self/cgroup");
  auto mountinfo = readFile("/proc/self/mountinfo");
  if (!theirs || !ours || !mountinfo) return out;
  // "hierarchy-id:controllers:path" -> controllers -> path
  auto parse = [](const std::string& text) {
    std::vector<std::pair<std::string, std::string>> lines;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      size_t a = line.find(':');
      size_t b = a == std::string::npos ? a : line.find(':', a + 1);
      if (b != std::string::npos)
        lines.emplace_back(line.substr(a + 1, b - a - 1), line.substr(b + 1));
    }
    return lines;
  };
  auto mine = parse(*ours);
  for (const auto& [controllers, path] : parse(*theirs)) {
    bool same = false;
    for (const auto& [c, p] : mine) same = same || (c == controllers && p == path);
    if (same) continue;
    // The mount of this hierarchy: cgroup2 for "", else the v1 mount whose
    // options hold exactly these controllers (or name=...).
    std::istringstream lines(*mountinfo);
    std::string line;
    while (std::getline(lines, line)) {
      size_t dash = line.find(" - ");
      if (dash == std::string::npos) continue;
      auto head = split(line.substr(0, dash), ' ');
      auto tail = split(line.substr(dash + 3), ' ');
      if (head.size() < 5 || tail.size() < 3) continue;
      bool match = false;
      if (controllers.empty()) {
        match = tail[0] == "cgroup2";
      } else if (tail[0] == "cgroup") {
        auto opts = split(tail[2], ',');
        match = true;
        for (const std::string& c : split(controllers, ',')) {
          match = match && std::find(opts.begin(), opts.end(), c) != opts.end();
        }
      }
      if (!match) continue;
      std::string file = joinPath(head[4], relativeToMount(path, head[3])) + "/cgroup.procs";
      if (exists(file)) out.push_back(file);
      break;
    }
  }
  return out;
}

uint64_t cpuSharesForMilli(int64_t milli) {
  if (milli <= 0) return kMinCpuShares;
  uint64_t shares = static_cast<uint64_t>(milli) * 1024 / 1000;
  return std::clamp(shares, kMinCpuShares, kMaxCpuShares);
}

uint64_t cpuWeightForShares(uint64_t shares) {
  shares = std::clamp(shares, kMinCpuShares, kMaxCpuShares);
  return 1 + ((shares - 2) * 9999) / 262142;
}

int64_t cfsQuotaForMilli(int64_t milli) {
  if (milli <= 0) return kMinCfsQuotaUs;
  return std::max(milli * kCfsPeriodUs / 1000, kMinCfsQuotaUs);
}

Result<ResourceLimits> parseResourceLimits(const Json& resources) {
  ResourceLimits out;
  if (!resources.is_object()) return out;
  const Json limits = resources.value("limits", Json::object());
  const Json requests = resources.value("requests", Json::object());
  if (limits.contains("memory")) {
    auto q = limits["memory"].is_string() ? api::parseQuantity(limits["memory"].get<std::string>())
                                          : api::parseQuantity(limits["memory"].dump());
    if (!q) {
      return Error{ErrorCode::kInvalidArgument, "resources.limits.memory: " + q.error().message};
    }
    // Bytes, rounded up like the kubelet's Quantity.Value().
    api::Int128 bytes = (q->nanos + 999999999) / 1000000000;
    if (bytes < 0) {
      return Error{ErrorCode::kInvalidArgument,
                   "resources.limits.memory: must be greater than or equal to 0"};
    }
    // 0 means no limit, as runc reads it.
    if (bytes > 0) out.memoryLimitBytes = static_cast<int64_t>(bytes);
  }
  if (limits.contains("cpu")) {
    auto m = quantityMilli(limits, "cpu", "resources.limits.cpu");
    if (!m) return m.error();
    if (*m < 0) {
      return Error{ErrorCode::kInvalidArgument,
                   "resources.limits.cpu: must be greater than or equal to 0"};
    }
    // 0 means no quota (the kubelet's MilliCPUToQuota gives none).
    if (*m > 0) out.cpuLimitMilli = *m;
  }
  if (requests.contains("cpu")) {
    auto m = quantityMilli(requests, "cpu", "resources.requests.cpu");
    if (!m) return m.error();
    out.cpuRequestMilli = *m;
  } else if (out.cpuLimitMilli) {
    out.cpuRequestMilli = *out.cpuLimitMilli;  // the API server's defaulting
  }
  return out;
}

std::vector<std::string> CgroupDirs::unique() const {
  std::vector<std::string> out;
  for (const std::string* d : {&cpu, &cpuacct, &memory}) {
    if (!d->empty() && std::find(out.begin(), out.end(), *d) == out.end()) out.push_back(*d);
  }
  return out;
}

Result<CgroupManager> CgroupManager::detect(const std::string& parent) {
  auto mountinfo = readFile("/proc/self/mountinfo");
  if (!mountinfo) return mountinfo.error();
  auto self = readFile("/proc/self/cgroup");
  if (!self) return self.error();
  // Whether any mounted cgroup2 root offers cpu and memory.
  bool v2 = false;
  std::istringstream lines(*mountinfo);
  std::string line;
  while (std::getline(lines, line)) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    auto tail = split(line.substr(dash + 3), ' ');
    auto head = split(line.substr(0, dash), ' ');
    if (tail.empty() || tail[0] != "cgroup2" || head.size() < 5) continue;
    auto controllers = readFile(head[4] + "/cgroup.controllers");
    if (!controllers) continue;
    auto names = split(*controllers + " ", ' ');
    auto has = [&](const char* c) {
      for (std::string n : names) {
        while (!n.empty() && (n.back() == '\n')) n.pop_back();
        if (n == c) return true;
      }
      return false;
    };
    if (has("cpu") && has("memory")) v2 = true;
  }
  return fromProc(*mountinfo, *self, v2, parent);
}

Result<CgroupManager> CgroupManager::fromProc(const std::string& mountinfo,
                                              const std::string& selfCgroup, bool v2HasControllers,
                                              const std::string& parent) {
  if (parent.empty() || parent.find("..") != std::string::npos) {
    return Error{ErrorCode::kInvalidArgument,
                 "cgroup parent \"" + parent + "\": not a cgroup path"};
  }
  // Our cgroup per hierarchy: "name" of v1 controllers (each one listed),
  // "" for v2.
  std::vector<std::pair<std::string, std::string>> own;  // controller -> path
  {
    std::istringstream in(selfCgroup);
    std::string line;
    while (std::getline(in, line)) {
      size_t a = line.find(':');
      size_t b = a == std::string::npos ? a : line.find(':', a + 1);
      if (b == std::string::npos) continue;
      std::string list = line.substr(a + 1, b - a - 1);
      std::string path = line.substr(b + 1);
      if (list.empty()) {
        own.emplace_back("", path);
        continue;
      }
      for (const std::string& c : split(list, ',')) own.emplace_back(c, path);
    }
  }
  auto ownPath = [&](const std::string& controller) -> std::string {
    for (const auto& [c, p] : own) {
      if (c == controller) return p;
    }
    return "/";
  };
  auto place = [&](const std::string& mount, const std::string& mountRoot,
                   const std::string& controller) {
    if (parent.front() == '/') return joinPath(mount, parent);
    return joinPath(joinPath(mount, relativeToMount(ownPath(controller), mountRoot)), parent);
  };

  CgroupManager m;
  std::string v1cpu, v1cpuacct, v1memory;
  std::istringstream lines(mountinfo);
  std::string line;
  while (std::getline(lines, line)) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    auto head = split(line.substr(0, dash), ' ');
    auto tail = split(line.substr(dash + 3), ' ');
    if (head.size() < 5 || tail.size() < 3) continue;
    const std::string& root = head[3];
    const std::string& mount = head[4];
    if (tail[0] == "cgroup2" && v2HasControllers && m.v2Mount_.empty()) {
      m.v2Mount_ = mount;
      std::string dir = place(mount, root, "");
      m.parent_ = {dir, dir, dir};
    }
    if (tail[0] != "cgroup") continue;
    for (const std::string& opt : split(tail[2], ',')) {
      if (opt == "cpu" && v1cpu.empty()) v1cpu = place(mount, root, "cpu");
      if (opt == "cpuacct" && v1cpuacct.empty()) v1cpuacct = place(mount, root, "cpuacct");
      if (opt == "memory" && v1memory.empty()) v1memory = place(mount, root, "memory");
    }
  }
  if (!m.v2Mount_.empty()) {
    m.version_ = CgroupVersion::kV2;
    return m;
  }
  if (v1cpu.empty() || v1cpuacct.empty() || v1memory.empty()) {
    return Error{ErrorCode::kUnavailable,
                 "no usable cgroups: cgroup2 offers no cpu+memory controllers and cgroup v1 "
                 "lacks a mounted " +
                     std::string(v1cpu.empty()       ? "cpu"
                                 : v1cpuacct.empty() ? "cpuacct"
                                                     : "memory") +
                     " hierarchy"};
  }
  m.version_ = CgroupVersion::kV1;
  m.parent_ = {v1cpu, v1cpuacct, v1memory};
  return m;
}

Result<void> CgroupManager::create(const CgroupDirs& dirs) const {
  for (const std::string& dir : dirs.unique()) {
    // mkdir -p, and under v2 enable the controllers in each ancestor below
    // the mount so the leaf gets cpu.* and memory.* files.
    std::string base = version_ == CgroupVersion::kV2 ? v2Mount_ : "";
    std::string path = base;
    std::string rest = dir.substr(base.size());
    for (const std::string& part : split(rest, '/')) {
      if (part.empty()) continue;
      if (version_ == CgroupVersion::kV2) {
        const std::string control =
            (path.empty() ? std::string("/") : path) + "/cgroup.subtree_control";
        auto enabled = readFile(control);
        if (!enabled) return enabled.error();
        for (const char* c : {"cpu", "memory"}) {
          auto names = split(*enabled + " ", ' ');
          bool on = false;
          for (std::string n : names) {
            while (!n.empty() && n.back() == '\n') n.pop_back();
            if (n == c) on = true;
          }
          if (on) continue;
          if (auto r = writeFile(control, std::string("+") + c); !r) {
            return Error{r.error().code,
                         r.error().message +
                             " (a cgroup v2 directory that holds processes cannot pass controllers "
                             "down: use an absolute cgroup parent)"};
          }
        }
      }
      path += "/" + part;
      if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
        return Error{ErrorCode::kInternal, errnoText("create cgroup " + path)};
      }
    }
  }
  return okResult();
}

Result<void> CgroupManager::apply(const CgroupDirs& dirs, const ResourceLimits& limits) const {
  const uint64_t shares = cpuSharesForMilli(limits.cpuRequestMilli);
  if (version_ == CgroupVersion::kV2) {
    if (auto r = writeFile(dirs.cpu + "/cpu.weight", std::to_string(cpuWeightForShares(shares)));
        !r)
      return r;
    std::string max = limits.cpuLimitMilli ? std::to_string(cfsQuotaForMilli(*limits.cpuLimitMilli))
                                           : std::string("max");
    if (auto r = writeFile(dirs.cpu + "/cpu.max", max + " " + std::to_string(kCfsPeriodUs)); !r)
      return r;
    std::string mem = limits.memoryLimitBytes ? std::to_string(*limits.memoryLimitBytes) : "max";
    if (auto r = writeFile(dirs.memory + "/memory.max", mem); !r) return r;
    // No swap for limited containers: the kubelet's NoSwap behaviour, so the
    // limit ends in an OOM kill rather than in swapping.
    if (exists(dirs.memory + "/memory.swap.max")) {
      if (auto r =
              writeFile(dirs.memory + "/memory.swap.max", limits.memoryLimitBytes ? "0" : "max");
          !r)
        return r;
    }
    return okResult();
  }
  if (auto r = writeFile(dirs.cpu + "/cpu.shares", std::to_string(shares)); !r) return r;
  if (auto r = writeFile(dirs.cpu + "/cpu.cfs_period_us", std::to_string(kCfsPeriodUs)); !r)
    return r;
  std::string quota =
      limits.cpuLimitMilli ? std::to_string(cfsQuotaForMilli(*limits.cpuLimitMilli)) : "-1";
  if (auto r = writeFile(dirs.cpu + "/cpu.cfs_quota_us", quota); !r) return r;
  // memory+swap must stay >= memory: lift it first, then set both.
  const std::string memsw = dirs.memory + "/memory.memsw.limit_in_bytes";
  const bool hasMemsw = exists(memsw);
  if (hasMemsw) {
    if (auto r = writeFile(memsw, "-1"); !r) return r;
  }
  std::string mem = limits.memoryLimitBytes ? std::to_string(*limits.memoryLimitBytes) : "-1";
  if (auto r = writeFile(dirs.memory + "/memory.limit_in_bytes", mem); !r) return r;
  if (hasMemsw && limits.memoryLimitBytes) {
    if (auto r = writeFile(memsw, mem); !r) return r;
  }
  return okResult();
}

Result<CgroupUsage> CgroupManager::usage(const CgroupDirs& dirs) const {
  CgroupUsage u;
  if (version_ == CgroupVersion::kV2) {
    auto cpu = readFile(dirs.cpu + "/cpu.stat");
    if (!cpu) return cpu.error();
    u.cpuNanos = keyedValue(*cpu, "usage_usec").value_or(0) * 1000;
    auto current = readNumber(dirs.memory + "/memory.current");
    if (!current) return current.error();
    auto stat = readFile(dirs.memory + "/memory.stat");
    if (!stat) return stat.error();
    uint64_t inactive = keyedValue(*stat, "inactive_file").value_or(0);
    u.memoryWorkingSetBytes = *current > inactive ? *current - inactive : 0;
    auto events = readFile(dirs.memory + "/memory.events");
    if (events) u.oomKills = keyedValue(*events, "oom_kill").value_or(0);
    return u;
  }
  auto cpu = readNumber(dirs.cpuacct + "/cpuacct.usage");
  if (!cpu) return cpu.error();
  u.cpuNanos = *cpu;
  auto current = readNumber(dirs.memory + "/memory.usage_in_bytes");
  if (!current) return current.error();
  auto stat = readFile(dirs.memory + "/memory.stat");
  if (!stat) return stat.error();
  uint64_t inactive = keyedValue(*stat, "total_inactive_file")
                          .value_or(keyedValue(*stat, "inactive_file").value_or(0));
  u.memoryWorkingSetBytes = *current > inactive ? *current - inactive : 0;
  auto oom = readFile(dirs.memory + "/memory.oom_control");
  if (oom) u.oomKills = keyedValue(*oom, "oom_kill").value_or(0);
  return u;
}

std::vector<std::string> CgroupManager::procsFiles(const CgroupDirs& dirs) const {
  std::vector<std::string> out;
  for (const std::string& d : dirs.unique()) out.push_back(d + "/cgroup.procs");
  return out;
}

Result<void> CgroupManager::remove(const CgroupDirs& dirs) {
  Result<void> result = okResult();
  for (const std::string& d : dirs.unique()) {
    if (auto r = removeTree(d); !r && result) result = r;
  }
  return result;
}

}  // namespace sluice::agent
