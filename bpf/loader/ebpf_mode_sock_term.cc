// EbpfMode's socket terminator (bpf/sock_term.bpf.c): destroys connected
// UDP sockets that bpf_sock balanced to a backend apply() then removed.
// Loading and map programming stay in ebpf_mode.cc.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "bpf/loader/ebpf_mode.h"
#include "sock_term.skel.h"

namespace sluice {

namespace {

std::string errnoText(int err) { return std::strerror(err < 0 ? -err : err); }

// sl_sock_term's capacity (bpf/sock_term.bpf.c): targets per iterator run.
constexpr size_t kTermBatch = 1024;

// Owns a bpf_link for the length of one sweep.
struct LinkCloser {
  void operator()(bpf_link* link) const { bpf_link__destroy(link); }
};

}  // namespace

void EbpfMode::SkeletonDeleter::operator()(sock_term_bpf* skel) const {
  sock_term_bpf__destroy(skel);
}

void EbpfMode::loadSocketTerminator() {
  auto skel = loadObject<sock_term_bpf>(options_, "sock_term.bpf.o");
  if (!skel) {
    sockTermError_ =
        "stale UDP socket termination unavailable: " + skel.error().message +
        " (needs iter/udp, Linux 5.9, and the bpf_sock_destroy kfunc, Linux 6.5)";
    return;
  }
  sockTerm_ = std::move(*skel);
}

Result<void> EbpfMode::socketTermination() const {
  if (sockTerm_) return okResult();
  return Error{ErrorCode::kFailedPrecondition, sockTermError_};
}

Result<void> EbpfMode::lastSocketTermination() const {
  std::lock_guard lock(mu_);
  if (lastTermError_) return *lastTermError_;
  return okResult();
}

void EbpfMode::queueSocketTermination(const ServiceState& st, const sl_backend& be,
                                      uint32_t svcId) {
  // Only UDP has connected sockets that never notice a dead peer; the
  // frontends mirror says whether bpf_sock can have balanced any.
  const bool udp = std::any_of(st.frontends.begin(), st.frontends.end(),
                               [](const auto& f) { return f.first.proto == IPPROTO_UDP; });
  if (!udp) return;
  sl_sock_term_key key;
  std::memset(&key, 0, sizeof(key));  // hashed whole, padding included
  std::memcpy(key.addr, be.addr, sizeof(key.addr));
  key.port = be.port;
  key.family = be.family;
  key.svc_id = svcId;
  pendingTerm_.push_back(key);
}

Result<void> EbpfMode::terminateSockets() {
  std::vector<sl_sock_term_key> targets;
  targets.swap(pendingTerm_);
  if (targets.empty()) return okResult();
  auto fail = [this](Error e) -> Result<void> {
    lastTermError_ = e;
    return e;
  };
  if (!sockTerm_) return fail(Error{ErrorCode::kFailedPrecondition, sockTermError_});

  const int mapFd = bpf_map__fd(sockTerm_->maps.sl_sock_term);
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
        bpf_program__attach_iter(sockTerm_->progs.sl_sock_term_udp, nullptr));
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
  lastTermError_.reset();
  return okResult();
}

}  // namespace sluice
