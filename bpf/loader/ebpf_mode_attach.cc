// EbpfMode's attach points: tc ingress on pod veths (lxc), the node's uplink
// (host tc program plus the XDP front), and the cgroup socket hooks pinned as
// links under the pin directory. Loading and map programming stay in
// ebpf_mode.cc.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

// Before the skeletons: lxc's declares its `enum sl_drop_reason` load-time
// constant (the drop-reason BTF anchor) without defining the enum.
#include "bpf/abi/metrics.h"
#include "bpf/loader/ebpf_mode.h"
#include "bpf/loader/tc_attach.h"
#include "host.skel.h"
#include "lxc.skel.h"
#include "sock.skel.h"
#include "xdp.skel.h"

namespace sluice {

using bpf::FileDescriptor;

namespace {

std::string errnoText(int err) { return std::strerror(err < 0 ? -err : err); }

}  // namespace

int EbpfMode::lxcIngressFd() const { return bpf_program__fd(skel_->progs.sl_lxc_ingress); }

Result<void> EbpfMode::attachLxc(int ifindex) {
  return bpf::tcAttach(ifindex, bpf::TcDirection::kIngress, lxcIngressFd());
}

Result<void> EbpfMode::detachLxc(int ifindex) {
  return bpf::tcDetach(ifindex, bpf::TcDirection::kIngress);
}

// ---------------------------------------------------------------------------
// The uplink (bpf/host.bpf.c).

Result<void> EbpfMode::loadUplink(const std::vector<IpAddress>& nodeAddresses) {
  std::lock_guard lock(attachMu_);
  // bpf_xdp is optional: a kernel without its helpers serves the uplink
  // from tc alone (capabilities() says what that costs).
  if (!xdp_ && capabilities().supports(ModeFeature::kXdpEarlyDrop)) {
    auto xdp = bpf::loadPinnedObject<xdp_bpf>(options_, "xdp.bpf.o");
    if (!xdp) return xdp.error().wrap("uplink XDP object");
    xdp_ = std::move(*xdp);
  }
  if (host_ && hostAddresses_ == nodeAddresses) return okResult();
  const IpAddress* v4 = nullptr;
  const IpAddress* v6 = nullptr;
  for (const IpAddress& a : nodeAddresses) {
    if (a.isV4() && !v4) v4 = &a;
    if (a.isV6() && !v6) v6 = &a;
  }
  auto host = bpf::loadPinnedObject<host_bpf>(options_, "host.bpf.o", [v4, v6](host_bpf& skel) {
    if (v4) {
      __be32 addr[4] = {};
      bpf::storeAddress(*v4, addr);
      skel.rodata->sl_node_addr4 = addr[0];
    }
    if (v6) {
      __be32 addr[4] = {};
      bpf::storeAddress(*v6, addr);
      for (int i = 0; i < 4; ++i) skel.rodata->sl_node_addr6[i] = addr[i];
    }
  });
  if (!host) return host.error().wrap("uplink object");
  // Swap the program on every uplink before the old object goes (tcAttach
  // replaces in place: no window without a program).
  for (int ifindex : uplinks_) {
    if (auto r = bpf::tcAttach(ifindex, bpf::TcDirection::kIngress,
                               bpf_program__fd((*host)->progs.sl_host_ingress));
        !r) {
      return r.error().wrap("uplink ifindex " + std::to_string(ifindex));
    }
  }
  host_ = std::move(*host);
  hostAddresses_ = nodeAddresses;
  return okResult();
}

int EbpfMode::uplinkIngressFd() const {
  std::lock_guard lock(attachMu_);
  return host_ ? bpf_program__fd(host_->progs.sl_host_ingress) : -1;
}

Result<void> EbpfMode::attachUplink(int ifindex, const std::vector<IpAddress>& nodeAddresses) {
  if (auto r = loadUplink(nodeAddresses); !r) return r;
  std::lock_guard lock(attachMu_);
  if (auto r = bpf::tcAttach(ifindex, bpf::TcDirection::kIngress,
                             bpf_program__fd(host_->progs.sl_host_ingress));
      !r) {
    return r.error().wrap("uplink ifindex " + std::to_string(ifindex));
  }
  uplinks_.insert(ifindex);
  return okResult();
}

int EbpfMode::uplinkXdpFd() const {
  std::lock_guard lock(attachMu_);
  return xdp_ ? bpf_program__fd(xdp_->progs.sl_xdp_uplink) : -1;
}

Result<void> EbpfMode::attachUplinkXdp(int ifindex) {
  if (auto caps = capabilities(); !caps.supports(ModeFeature::kXdpEarlyDrop)) {
    return Error{ErrorCode::kFailedPrecondition,
                 "uplink XDP unavailable: " + caps.missing[ModeFeature::kXdpEarlyDrop]};
  }
  const int fd = uplinkXdpFd();
  if (fd < 0) return Error::invalid("uplink XDP: loadUplink() or attachUplink() first");
  // No options struct: bpf_xdp_attach_opts has tail padding libbpf
  // requires to be zero, which a copied C++ aggregate does not guarantee.
  if (int r = bpf_xdp_attach(ifindex, fd, 0, nullptr); r < 0) {
    return Error::internal("attach XDP to ifindex " + std::to_string(ifindex) + ": " +
                           errnoText(r));
  }
  return okResult();
}

Result<void> EbpfMode::detachUplinkXdp(int ifindex) {
  if (int r = bpf_xdp_detach(ifindex, 0, nullptr); r < 0 && r != -ENOENT) {
    return Error::internal("detach XDP from ifindex " + std::to_string(ifindex) + ": " +
                           errnoText(r));
  }
  return okResult();
}

Result<void> EbpfMode::detachUplink(int ifindex) {
  std::lock_guard lock(attachMu_);
  uplinks_.erase(ifindex);
  return bpf::tcDetach(ifindex, bpf::TcDirection::kIngress);
}

// ---------------------------------------------------------------------------
// cgroup socket hooks.

namespace {

// The cgroup v2 directory, opened, and its id.
struct OpenedCgroup {
  FileDescriptor fd;
  uint64_t id = 0;
};

Result<OpenedCgroup> openCgroup(const std::string& path) {
  OpenedCgroup cg;
  cg.fd = FileDescriptor(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cg.fd.valid()) return Error::notFound("cgroup " + path + ": " + errnoText(errno));
  struct statfs fs {};
  if (::fstatfs(cg.fd.get(), &fs) != 0) {
    return Error::internal("cgroup " + path + ": statfs: " + errnoText(errno));
  }
  if (static_cast<uint32_t>(fs.f_type) != CGROUP2_SUPER_MAGIC) {
    return Error{ErrorCode::kFailedPrecondition,
                 "cgroup " + path +
                     " is not in a cgroup v2 hierarchy (socket hooks attach to cgroup v2 only; "
                     "mount -t cgroup2 none <dir>)"};
  }
  struct stat st {};
  if (::fstat(cg.fd.get(), &st) != 0) {
    return Error::internal("cgroup " + path + ": stat: " + errnoText(errno));
  }
  // On cgroup2 the directory's inode number is the kernfs node id, which
  // is the cgroup id (what bpf_get_current_cgroup_id() returns).
  cg.id = st.st_ino;
  return cg;
}

std::string linkDirOf(const std::string& pinDir, uint64_t cgroupId) {
  return pinDir + "/links/cgroup-" + std::to_string(cgroupId);
}

}  // namespace

Result<std::string> EbpfMode::cgroupLinkDir(const std::string& cgroupPath) const {
  auto cg = openCgroup(cgroupPath);
  if (!cg) return cg.error();
  return linkDirOf(options_.pinDir, cg->id);
}

Result<void> EbpfMode::attachCgroup(const std::string& cgroupPath) {
  std::lock_guard lock(attachMu_);
  auto cg = openCgroup(cgroupPath);
  if (!cg) return cg.error();
  const std::string dir = linkDirOf(options_.pinDir, cg->id);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error::internal("link dir " + dir + ": " + ec.message());

  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, sock_->obj) {
    // Left out of this kernel's variant (create()): nothing to attach.
    if (!bpf_program__autoload(prog)) continue;
    const std::string pin = dir + "/" + bpf_program__name(prog);
    const std::string where = std::string("cgroup ") + cgroupPath + ": " + bpf_program__name(prog);
    if (::access(pin.c_str(), F_OK) == 0) {
      // A previous run's link: give it this run's program, atomically.
      bpf_link* old = bpf_link__open(pin.c_str());
      if (old != nullptr) {
        const int r = bpf_link__update_program(old, prog);
        bpf_link__destroy(old);  // closes our fd; the pin keeps the link
        if (r == 0) continue;
      }
      // Defunct (its cgroup was removed and recreated) or not a link:
      // replace the pin with a fresh link.
      if (::unlink(pin.c_str()) != 0) {
        return Error::internal(where + ": unlink stale link " + pin + ": " + errnoText(errno));
      }
    }
    bpf_link* link = bpf_program__attach_cgroup(prog, cg->fd.get());
    if (link == nullptr) return Error::internal(where + ": attach: " + errnoText(errno));
    if (int r = bpf_link__pin(link, pin.c_str()); r < 0) {
      bpf_link__destroy(link);  // unpinned: this detaches it again
      return Error::internal(where + ": pin " + pin + ": " + errnoText(r));
    }
    bpf_link__destroy(link);
  }
  return okResult();
}

Result<void> EbpfMode::detachCgroup(const std::string& cgroupPath) {
  std::lock_guard lock(attachMu_);
  auto cg = openCgroup(cgroupPath);
  if (!cg) return cg.error();
  const std::string dir = linkDirOf(options_.pinDir, cg->id);
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, sock_->obj) {
    const std::string pin = dir + "/" + bpf_program__name(prog);
    if (::access(pin.c_str(), F_OK) != 0) continue;
    if (bpf_link* link = bpf_link__open(pin.c_str()); link != nullptr) {
      // Detach explicitly: another holder of the link (bpftool, a
      // restarting agent) must not keep the hook alive.
      (void)bpf_link__detach(link);
      bpf_link__destroy(link);
    }
    if (::unlink(pin.c_str()) != 0 && errno != ENOENT) {
      return Error::internal("cgroup " + cgroupPath + ": unpin " + pin + ": " + errnoText(errno));
    }
  }
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT) {
    return Error::internal("cgroup " + cgroupPath + ": remove " + dir + ": " + errnoText(errno));
  }
  return okResult();
}

}  // namespace sluice
