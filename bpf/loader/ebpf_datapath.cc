#include "bpf/loader/ebpf_datapath.h"

#include <fcntl.h>
#include <net/if.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace sluice::bpf {

namespace {

constexpr long kBpffsMagic = 0xcafe4a11;  // BPF_FS_MAGIC (linux/magic.h)

std::vector<ModeFlag> ebpfFlags() {
  return {
      {"pin-dir", "bpffs directory of the pinned maps and links (one per node agent)",
       "/sys/fs/bpf/sluice"},
      {"cgroup", "cgroup v2 directory for socket load balancing (default: the cgroup2 root)", ""},
      {"xdp", "XDP early drop in front of the uplink (true|false)", "true"},
      {"socket-lb", "socket-level load balancing for the node's own processes (true|false)", "true"},
      // Below the oldest tested kernel (kernel_features.h) the mode refuses
      // to start; this starts it when the probes found everything required.
      {"allow-untested-kernel",
       "start on a kernel older than " + kTestedMinimumKernel.toString() +
           " when its probes find every required feature (true|false)",
       "false"},
      // Capacities (entries) of the preallocated service maps: size them for
      // the cluster's services x endpoints with headroom (Cilium's
      // --bpf-lb-map-max). A pinned map of another size is not adopted.
      {"max-frontends", "sl_services capacity (frontends)", std::to_string(EbpfOptions{}.maxFrontends)},
      {"max-backends", "sl_backends capacity", std::to_string(EbpfOptions{}.maxBackends)},
      {"max-slots", "sl_slots capacity (sum of backend-set sizes)", std::to_string(EbpfOptions{}.maxSlots)},
      {"max-maglev-tables", "sl_maglev capacity (Maglev services x families x locality)",
       std::to_string(EbpfOptions{}.maxMaglevTables)},
  };
}

Result<uint32_t> countFlag(const ModeFlagValues& values, const std::vector<ModeFlag>& flags,
                           const std::string& name) {
  const std::string text = flagValue(values, flags, name);
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  // 2^26 entries: past that a preallocated hash map costs gigabytes.
  if (text.empty() || *end != '\0' || errno != 0 || v == 0 || v > (1ull << 26) || text[0] == '-') {
    return Error::invalid("--ebpf-" + name + " " + text + ": must be an integer from 1 to 67108864");
  }
  return static_cast<uint32_t>(v);
}

Result<bool> boolFlag(const ModeFlagValues& values, const std::vector<ModeFlag>& flags,
                      const std::string& name) {
  const std::string text = flagValue(values, flags, name);
  if (text != "true" && text != "false") {
    return Error::invalid("--ebpf-" + name + " " + text + ": must be true or false");
  }
  return text == "true";
}

// The pin directory must be on a bpffs; /sys/fs/bpf is mounted when absent,
// as systemd and Cilium do.
Result<void> ensureBpffs(const std::string& pinDir) {
  std::filesystem::path dir(pinDir);
  std::error_code ec;
  std::filesystem::path probe = dir;
  while (!probe.empty() && !std::filesystem::exists(probe, ec)) probe = probe.parent_path();
  struct statfs fs {};
  if (!probe.empty() && ::statfs(probe.c_str(), &fs) == 0 &&
      static_cast<long>(fs.f_type) == kBpffsMagic) {
    return okResult();
  }
  if (dir.parent_path() == "/sys/fs/bpf") {
    std::filesystem::create_directories("/sys/fs/bpf", ec);
    if (::mount("bpffs", "/sys/fs/bpf", "bpf", 0, nullptr) == 0) return okResult();
    return Error::internal(std::string("mount -t bpf bpffs /sys/fs/bpf: ") + std::strerror(errno));
  }
  return Error{ErrorCode::kFailedPrecondition,
               "pin directory " + pinDir + " is not on a bpffs (mount -t bpf bpffs DIR)"};
}

// One agent per pin directory: two would fight over every entry. The lock
// is keyed by the directory's device and inode, so agents in separate
// mount namespaces (each `ip netns exec` mounts its own bpffs at the same
// path) do not collide. It is a POSIX record lock (fcntl F_SETLK) on a file
// under /run: owned by the process, so not inherited by the children the
// agent forks (pods, stream helpers; flock() locks would be), and released
// by the kernel when the holder dies (no stale lock after kill -9).
Result<int> lockPinDir(const std::string& pinDir) {
  std::error_code ec;
  std::filesystem::create_directories(pinDir, ec);
  struct stat st {};
  if (::stat(pinDir.c_str(), &st) != 0) {
    return Error::internal("pin directory " + pinDir + ": " + std::strerror(errno));
  }
  std::filesystem::create_directories("/run/sluice", ec);
  const std::string path = "/run/sluice/ebpf-pins-" + std::to_string(st.st_dev) + "-" +
                           std::to_string(st.st_ino) + ".lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Error::internal("lock " + path + ": " + std::strerror(errno));
  struct flock lk {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file
  if (::fcntl(fd, F_SETLK, &lk) != 0) {
    char pid[32] = {};
    (void)::pread(fd, pid, sizeof pid - 1, 0);
    ::close(fd);
    return Error{ErrorCode::kFailedPrecondition,
                 "pin directory " + pinDir + " is in use by another agent (pid " + std::string(pid) +
                     "): give each node on this host its own --ebpf-pin-dir"};
  }
  const std::string self = std::to_string(::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, self.data(), self.size(), 0) < 0) {
    // Only the holder's pid for the message above: not worth failing over.
  }
  return fd;
}

}  // namespace

EbpfDatapath::~EbpfDatapath() {
  if (lockFd_ >= 0) ::close(lockFd_);
}

Result<EbpfDatapathOptions> EbpfDatapathOptions::fromFlags(const ModeFlagValues& values) {
  const auto flags = ebpfFlags();
  for (const auto& [name, value] : values) {
    bool known = false;
    for (const ModeFlag& f : flags) known = known || f.name == name;
    if (!known) return Error::invalid("--ebpf-" + name + ": no such flag of the ebpf mode");
  }
  EbpfDatapathOptions o;
  o.mode.pinDir = flagValue(values, flags, "pin-dir");
  if (o.mode.pinDir.empty() || o.mode.pinDir.front() != '/') {
    return Error::invalid("--ebpf-pin-dir " + o.mode.pinDir + ": must be an absolute path");
  }
  o.cgroupPath = flagValue(values, flags, "cgroup");
  for (auto [name, target] : {std::pair<const char*, bool*>{"xdp", &o.uplinkXdp},
                              {"socket-lb", &o.socketLb},
                              {"allow-untested-kernel", &o.allowUntestedKernel}}) {
    auto v = boolFlag(values, flags, name);
    if (!v) return v.error();
    *target = *v;
  }
  for (auto [name, target] : {std::pair<const char*, uint32_t*>{"max-frontends", &o.mode.maxFrontends},
                              {"max-backends", &o.mode.maxBackends},
                              {"max-slots", &o.mode.maxSlots},
                              {"max-maglev-tables", &o.mode.maxMaglevTables}}) {
    auto v = countFlag(values, flags, name);
    if (!v) return v.error();
    *target = *v;
  }
  return o;
}

Result<std::string> cgroup2Root(const std::string& fallback) {
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string dev, dir, type;
    fields >> dev >> dir >> type;
    if (type == "cgroup2") return dir;
  }
  std::error_code ec;
  std::filesystem::create_directories(fallback, ec);
  if (::mount("none", fallback.c_str(), "cgroup2", 0, nullptr) != 0) {
    return Error::internal("no cgroup2 mount, and mount -t cgroup2 none " + fallback + ": " +
                           std::strerror(errno));
  }
  return fallback;
}

Result<std::unique_ptr<EbpfDatapath>> EbpfDatapath::create(const NodeConfig& node,
                                                           EbpfDatapathOptions options) {
  // First, before anything touches the node: a kernel the mode cannot run
  // on, or is not tested on, is refused with what it lacks and its release.
  if (!options.mode.kernel) options.mode.kernel = KernelFeatures::probe();
  if (auto r = checkKernel(*options.mode.kernel, options.allowUntestedKernel); !r) return r.error();
  if (auto r = ensureBpffs(options.mode.pinDir); !r) return r.error();
  auto lock = lockPinDir(options.mode.pinDir);
  if (!lock) return lock.error();
  auto mode = EbpfMode::create(options.mode);
  if (!mode) {
    ::close(*lock);
    return mode.error().wrap("ebpf mode");
  }
  std::unique_ptr<EbpfDatapath> dp(new EbpfDatapath(node, options, std::move(*mode)));
  dp->lockFd_ = *lock;
  if (options.socketLb) {
    dp->cgroup_ = options.cgroupPath;
    if (dp->cgroup_.empty()) {
      auto root = cgroup2Root();
      if (!root) return root.error();
      dp->cgroup_ = *root;
    }
    if (auto r = dp->mode_->attachCgroup(dp->cgroup_); !r) {
      return r.error().wrap("ebpf mode: socket hooks on cgroup " + dp->cgroup_);
    }
  }
  if (!node.uplink.empty()) {
    dp->uplink_ = static_cast<int>(if_nametoindex(node.uplink.c_str()));
    if (dp->uplink_ == 0) return Error::notFound("uplink " + node.uplink + ": no such interface");
    if (auto r = dp->mode_->attachUplink(dp->uplink_, node.nodeAddresses); !r) {
      return r.error().wrap("ebpf mode: uplink " + node.uplink);
    }
    // Without what bpf_xdp needs, tc alone serves the uplink (the start
    // log and `sluice debug mode` list xdp-early-drop as missing).
    if (options.uplinkXdp && dp->mode_->capabilities().supports(ModeFeature::kXdpEarlyDrop)) {
      if (auto r = dp->mode_->attachUplinkXdp(dp->uplink_); !r) {
        return r.error().wrap("ebpf mode: XDP on uplink " + node.uplink);
      }
    }
    dp->addresses_ = std::make_unique<UplinkAddresses>(dp->uplink_);
  }
  return dp;
}

Result<void> EbpfDatapath::attachPodInterface(const std::string& ifname) {
  const int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (ifindex == 0) return Error::notFound("pod interface " + ifname + ": no such interface");
  if (auto r = mode_->attachLxc(ifindex); !r) return r.error().wrap("pod interface " + ifname);
  return okResult();
}

Result<void> EbpfDatapath::detachPodInterface(const std::string& ifname) {
  const int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (ifindex == 0) return okResult();  // gone with its pod: nothing attached
  if (auto r = mode_->detachLxc(ifindex); !r) return r.error().wrap("pod interface " + ifname);
  return okResult();
}

Result<void> EbpfDatapath::claimServiceAddresses(const ServiceDiff& diff, bool full) {
  std::lock_guard lock(addressesMu_);
  // Without an uplink nobody outside reaches the node: nothing to answer for.
  if (!addresses_) return okResult();
  return addresses_->apply(diff, full);
}

std::set<IpAddress> EbpfDatapath::claimedAddresses() const {
  std::lock_guard lock(addressesMu_);
  return addresses_ ? addresses_->addresses() : std::set<IpAddress>();
}

Result<void> EbpfDatapath::cleanup() {
  std::string errors;
  auto note = [&](const Result<void>& r) {
    if (!r) errors += (errors.empty() ? "" : "; ") + r.error().message;
  };
  if (!cgroup_.empty()) note(mode_->detachCgroup(cgroup_));
  if (uplink_ != 0) {
    note(mode_->detachUplinkXdp(uplink_));
    note(mode_->detachUplink(uplink_));
  }
  {
    std::lock_guard lock(addressesMu_);
    if (addresses_) note(addresses_->apply(ServiceDiff{}, true));
  }
  note(cleanupLeftovers(node_, options_));
  if (!errors.empty()) return Error::internal("ebpf cleanup: " + errors);
  return okResult();
}

Result<void> EbpfDatapath::cleanupLeftovers(const NodeConfig& node, const EbpfDatapathOptions& options) {
  std::string errors;
  if (!node.uplink.empty()) {
    if (int ifindex = static_cast<int>(if_nametoindex(node.uplink.c_str())); ifindex != 0) {
      auto held = UplinkAddresses::listAddresses(ifindex, kAddressProto);
      if (held) {
        for (const IpAddress& a : *held) {
          if (auto r = UplinkAddresses::deleteAddress(ifindex, a); !r) errors += r.error().message + "; ";
        }
      }
    }
  }
  // Unpinning the cgroup links detaches them once no process holds them;
  // unpinning the maps frees them with the last program using them. Only
  // ever on a bpffs: a mistyped --ebpf-pin-dir must not remove files.
  struct statfs fs {};
  if (::statfs(options.mode.pinDir.c_str(), &fs) == 0) {
    if (static_cast<long>(fs.f_type) != kBpffsMagic) {
      errors += options.mode.pinDir + " is not on a bpffs: left alone";
    } else {
      std::error_code ec;
      std::filesystem::remove_all(options.mode.pinDir, ec);
      if (ec) errors += "remove " + options.mode.pinDir + ": " + ec.message();
    }
  }
  if (!errors.empty()) return Error::internal(errors);
  return okResult();
}

ModeDriver ebpfModeDriver() {
  ModeDriver d;
  d.name = "ebpf";
  d.flags = ebpfFlags();
  d.create = [](const NodeConfig& node,
                const ModeFlagValues& values) -> Result<std::unique_ptr<Datapath>> {
    auto o = EbpfDatapathOptions::fromFlags(values);
    if (!o) return o.error();
    auto dp = EbpfDatapath::create(node, std::move(*o));
    if (!dp) return dp.error();
    return std::unique_ptr<Datapath>(std::move(*dp));
  };
  d.cleanup = [](const NodeConfig& node, const ModeFlagValues& values) -> Result<void> {
    auto o = EbpfDatapathOptions::fromFlags(values);
    if (!o) return o.error();
    // Never under a running agent's feet: its lock says it lives.
    std::error_code ec;
    int lock = -1;
    if (std::filesystem::exists(o->mode.pinDir, ec)) {
      auto l = lockPinDir(o->mode.pinDir);
      if (!l) return l.error();
      lock = *l;
    }
    auto r = EbpfDatapath::cleanupLeftovers(node, *o);
    if (lock >= 0) ::close(lock);
    return r;
  };
  return d;
}

}  // namespace sluice::bpf
