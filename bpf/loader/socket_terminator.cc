// SocketTerminator: destroys connected UDP sockets that bpf_sock balanced to
// a backend apply() then removed (bpf/sock_term.bpf.c).
#include "bpf/loader/socket_terminator.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "bpf/loader/pinned_objects.h"
#include "sock_term.skel.h"

namespace sluice::bpf {

namespace {

std::string errnoText(int err) { return std::strerror(err < 0 ? -err : err); }

// sl_sock_term's capacity (bpf/sock_term.bpf.c): targets per iterator run.
constexpr size_t kTermBatch = 1024;

// Owns a bpf_link for the length of one sweep.
struct LinkCloser {
  void operator()(bpf_link* link) const { bpf_link__destroy(link); }
};

}  // namespace

SocketTerminator::SocketTerminator(const EbpfOptions& options, const KernelFeatures& kernel) {
  std::string lacks;
  for (KernelProbe p : {KernelProbe::kIterUdp, KernelProbe::kKfuncSockDestroy}) {
    if (kernel.has(p)) continue;
    const KernelProbeInfo& info = kernelProbe(p);
    lacks += (lacks.empty() ? "" : ", ") + std::string(info.name) + " (Linux " +
             std::string(info.since) + ")";
  }
  if (!lacks.empty()) {
    loadError_ = "stale UDP socket termination unavailable: this kernel lacks " + lacks;
    return;
  }
  auto skel = loadPinnedObject<sock_term_bpf>(options, "sock_term.bpf.o");
  if (!skel) {
    loadError_ = "stale UDP socket termination unavailable: " + skel.error().message +
                 " (needs iter/udp, Linux 5.9, and the bpf_sock_destroy kfunc, Linux 6.5)";
    return;
  }
  skel_ = std::move(*skel);
}

SocketTerminator::~SocketTerminator() = default;

Result<void> SocketTerminator::available() const {
  if (skel_) return okResult();
  return Error{ErrorCode::kFailedPrecondition, loadError_};
}

Result<void> SocketTerminator::lastRun() const {
  std::lock_guard lock(mu_);
  if (lastError_) return *lastError_;
  return okResult();
}

Result<void> SocketTerminator::run(const std::vector<sl_sock_term_key>& targets) {
  std::lock_guard lock(mu_);
  if (targets.empty()) return okResult();
  auto fail = [this](Error e) -> Result<void> {
    lastError_ = e;
    return e;
  };
  if (!skel_) return fail(Error{ErrorCode::kFailedPrecondition, loadError_});

  const int mapFd = bpf_map__fd(skel_->maps.sl_sock_term);
  const uint8_t one = 1;
  for (size_t start = 0; start < targets.size(); start += kTermBatch) {
    const size_t end = std::min(targets.size(), start + kTermBatch);
    // Whatever happens below, the map is left empty: the next run must
    // not destroy sockets of this run's backends (they may come back).
    auto clear = [&] {
      for (size_t i = start; i < end; ++i) (void)bpf_map_delete_elem(mapFd, &targets[i]);
    };
    for (size_t i = start; i < end; ++i) {
      if (int r = bpf_map_update_elem(mapFd, &targets[i], &one, BPF_ANY); r < 0) {
        clear();
        return fail(Error::internal("sl_sock_term: update: " + errnoText(r)));
      }
    }
    // One iterator instance walks the UDP sockets of this thread's network
    // namespace once; the program does the work, the read only drives it.
    std::unique_ptr<bpf_link, LinkCloser> link(
        bpf_program__attach_iter(skel_->progs.sl_sock_term_udp, nullptr));
    if (!link) {
      const int err = errno;
      clear();
      return fail(Error::internal("attach iter/udp: " + errnoText(err)));
    }
    const int iterFd = bpf_iter_create(bpf_link__fd(link.get()));
    if (iterFd < 0) {
      clear();
      return fail(Error::internal("create iter/udp: " + errnoText(iterFd)));
    }
    char buf[256];
    ssize_t n;
    while ((n = ::read(iterFd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
    }
    const int readErr = n < 0 ? errno : 0;
    ::close(iterFd);
    clear();
    if (readErr != 0) return fail(Error::internal("read iter/udp: " + errnoText(readErr)));
  }
  lastError_.reset();
  return okResult();
}

}  // namespace sluice::bpf
