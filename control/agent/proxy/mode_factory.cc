#include "control/agent/proxy/mode_factory.h"

#include <net/if.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bpf/loader/ebpf_mode.h"

namespace sluice::agent {

namespace {

constexpr long kBpffsMagic = 0xcafe4a11;  // BPF_FS_MAGIC (linux/magic.h)

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

class EbpfDatapath final : public Datapath {
 public:
  EbpfDatapath(std::unique_ptr<EbpfMode> mode, int uplink)
      : mode_(std::move(mode)), uplink_(uplink) {}
  ProxyMode& mode() override { return *mode_; }
  EbpfMode* ebpf() override { return mode_.get(); }
  int uplinkIfindex() const override { return uplink_; }

  Result<void> attachPodInterface(const std::string& ifname) override {
    const int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
    if (ifindex == 0) return Error::notFound("pod interface " + ifname + ": no such interface");
    if (auto r = mode_->attachLxc(ifindex); !r) return r.error().wrap("pod interface " + ifname);
    return okResult();
  }
  Result<void> detachPodInterface(const std::string& ifname) override {
    const int ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
    if (ifindex == 0) return okResult();  // gone with its pod: nothing attached
    if (auto r = mode_->detachLxc(ifindex); !r) return r.error().wrap("pod interface " + ifname);
    return okResult();
  }

 private:
  std::unique_ptr<EbpfMode> mode_;
  int uplink_;
};

Result<std::unique_ptr<Datapath>> createEbpf(const ModeOptions& o) {
  if (auto r = ensureBpffs(o.pinDir); !r) return r.error();
  EbpfOptions eo;
  eo.pinDir = o.pinDir;
  auto mode = EbpfMode::create(eo);
  if (!mode) return mode.error().wrap("ebpf mode");
  std::string cgroup = o.cgroupPath;
  if (cgroup.empty()) {
    auto root = cgroup2Root();
    if (!root) return root.error();
    cgroup = *root;
  }
  if (auto r = (*mode)->attachCgroup(cgroup); !r) {
    return r.error().wrap("ebpf mode: socket hooks on cgroup " + cgroup);
  }
  int uplink = 0;
  if (!o.uplink.empty()) {
    uplink = static_cast<int>(if_nametoindex(o.uplink.c_str()));
    if (uplink == 0) return Error::notFound("uplink " + o.uplink + ": no such interface");
    if (auto r = (*mode)->attachUplink(uplink, o.nodeAddresses); !r) {
      return r.error().wrap("ebpf mode: uplink " + o.uplink);
    }
    if (o.uplinkXdp) {
      if (auto r = (*mode)->attachUplinkXdp(uplink); !r) {
        return r.error().wrap("ebpf mode: XDP on uplink " + o.uplink);
      }
    }
  }
  return std::unique_ptr<Datapath>(new EbpfDatapath(std::move(*mode), uplink));
}

}  // namespace

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

Result<std::unique_ptr<Datapath>> createDatapath(const ModeOptions& options) {
  if (options.mode == "ebpf") return createEbpf(options);
  if (options.mode == "ipvs" || options.mode == "dpdk") {
    return Error{ErrorCode::kFailedPrecondition,
                 "mode " + options.mode + " is not built yet (use --mode=ebpf)"};
  }
  return Error::invalid("unknown mode \"" + options.mode + "\": expected ebpf, ipvs or dpdk");
}

}  // namespace sluice::agent
