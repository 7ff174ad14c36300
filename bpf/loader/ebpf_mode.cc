#include "bpf/loader/ebpf_mode.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "bpf/loader/abi_layout.h"
#include "bpf/loader/maglev_maps.h"
#include "host.skel.h"
#include "lxc.skel.h"
#include "sock.skel.h"
#include "sock_term.skel.h"
#include "xdp.skel.h"

namespace sluice {

using bpf::MapRef;

namespace {

// SO_NETNS_COOKIE (Linux 5.14) of the calling thread's network namespace,
// 0 when the kernel cannot say.
uint64_t currentNetnsCookie() {
#ifndef SO_NETNS_COOKIE
  constexpr int SO_NETNS_COOKIE = 71;  // asm-generic/socket.h
#endif
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (::getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0) cookie = 0;
  ::close(fd);
  return cookie;
}

}  // namespace

EbpfMode::EbpfMode(Options options, bpf::Skeleton<lxc_bpf> skel, bpf::Skeleton<sock_bpf> sock)
    : options_(std::move(options)), skel_(std::move(skel)), sock_(std::move(sock)) {
  // Both objects hold the same pinned maps; the lxc skeleton's fds serve.
  auto ref = [this](bpf_map* m) { return MapRef(bpf_map__fd(m), bpf_map__name(m), &ops_); };
  services_ = ref(skel_->maps.sl_services);
  slots_ = ref(skel_->maps.sl_slots);
  backends_ = ref(skel_->maps.sl_backends);
  maglev_ = ref(skel_->maps.sl_maglev);
  ct_ = ref(skel_->maps.sl_ct);
  affinity_ = ref(skel_->maps.sl_affinity);
  sockRev_ = ref(skel_->maps.sl_sock_rev);
  drops_ = ref(skel_->maps.sl_drops);
  events_ = ref(skel_->maps.sl_events);
  programmer_ = std::make_unique<bpf::ServiceProgrammer>(
      bpf::ServiceProgrammer::Maps{services_, slots_, backends_, maglev_}, &ops_);
  // Optional: a kernel without it still balances; socketTermination() says why.
  terminator_ = std::make_unique<bpf::SocketTerminator>(options_, *options_.kernel);
}

EbpfMode::~EbpfMode() = default;

Result<std::unique_ptr<EbpfMode>> EbpfMode::create(Options options) {
  if (!options.kernel) options.kernel = bpf::KernelFeatures::probe();
  const bpf::KernelFeatures& kernel = *options.kernel;
  // A clear refusal instead of a verifier log deep inside libbpf.
  if (auto r = bpf::checkRequired(kernel); !r) return r.error();
  if (auto r = bpf::preparePinDir(options.pinDir); !r) return r.error();
  // lxc first: it creates (or adopts) every pinned map, and the sock
  // object then reuses them by name, already checked and sized.
  auto lxc = bpf::loadPinnedObject<lxc_bpf>(options, "lxc.bpf.o");
  if (!lxc) return lxc.error();
  // The socket hooks act on this (the node's) network namespace only: see
  // sl_netns_cookie in bpf/sock.bpf.c.
  const uint64_t netns = options.netnsCookie ? *options.netnsCookie : currentNetnsCookie();
  auto sock = bpf::loadPinnedObject<sock_bpf>(options, "sock.bpf.o", [&](sock_bpf& skel) {
    skel.rodata->sl_netns_cookie = netns;
    // The variant for this kernel: bpf_set_retval() only where it exists,
    // the getpeername hooks only where their attach types do.
    skel.rodata->sl_set_retval = kernel.has(bpf::KernelProbe::kSockSetRetval);
    if (!kernel.has(bpf::KernelProbe::kAttachGetpeername)) {
      bpf_program__set_autoload(skel.progs.sl_getpeername4, false);
      bpf_program__set_autoload(skel.progs.sl_getpeername6, false);
    }
  });
  if (!sock) return sock.error();
  std::unique_ptr<EbpfMode> mode(new EbpfMode(std::move(options), std::move(*lxc), std::move(*sock)));
  mode->netnsCookie_ = netns;
  return mode;
}

Result<void> EbpfMode::sync(const ServiceTable& table) {
  std::lock_guard lock(entriesMu_);
  // Every write of the sync goes out in batches at the end (map_batch.h):
  // at 100,000 services x 10 backends (2.1M entries) ~260 syscalls, not 2.1M.
  bpf::PendingWrites batch;
  programmer_->setBatch(&batch);
  auto r = programmer_->adopt(table);
  programmer_->setBatch(nullptr);
  // Flushed even when a service failed: the other services' entries stand.
  auto flushed = batch.flush();
  if (!flushed && r) r = flushed.error().wrap("ebpf sync");
  // A failed flush leaves the mirror holding writes the kernel never got:
  // only another sync() (which re-reads the maps) may follow, not apply().
  synced_ = flushed.ok();
  // Backends the table no longer has (removed while no agent ran): their
  // sockets too, once the maps no longer name them.
  terminateRemovedSockets();
  if (r) {
    ++applies_;
  } else {
    ++applyErrors_;
  }
  return r;
}

Result<void> EbpfMode::apply(const ServiceDiff& diff) {
  std::lock_guard lock(entriesMu_);
  if (!synced_) {
    // Without sync() the pinned maps have not been read: programming would
    // allocate fresh ids next to a previous run's entries.
    ++applyErrors_;
    return Error{ErrorCode::kFailedPrecondition, "ebpf: apply() before the start-up sync()"};
  }
  auto r = programmer_->apply(diff);
  // After the maps, failed or not: a destroyed socket's reconnect must find
  // only live backends, and a backend already erased is not queued again by
  // a retry. A sweep's failure is reported by lastSocketTermination().
  terminateRemovedSockets();
  if (r) {
    ++applies_;
  } else {
    ++applyErrors_;
  }
  return r;
}

void EbpfMode::terminateRemovedSockets() {
  const auto targets = programmer_->takeRemovedUdpBackends();
  if (!targets.empty()) (void)terminator_->run(targets);
}

Result<void> EbpfMode::socketTermination() const { return terminator_->available(); }

Result<void> EbpfMode::lastSocketTermination() const { return terminator_->lastRun(); }

Result<EbpfDump> EbpfMode::dump() const {
  EbpfDump d;
  auto services = services_.dump<sl_svc_key, sl_svc_value>();
  if (!services) return services.error();
  d.services.insert(services->begin(), services->end());
  auto slots = slots_.dump<sl_slot_key, uint32_t>();
  if (!slots) return slots.error();
  d.slots.insert(slots->begin(), slots->end());
  auto backends = backends_.dump<uint32_t, sl_backend>();
  if (!backends) return backends.error();
  d.backends.insert(backends->begin(), backends->end());
  auto maglev = maglev_.dump<uint32_t, uint32_t>();
  if (!maglev) return maglev.error();
  for (const auto& [sid, innerId] : *maglev) {
    auto table = bpf::openMaglevTable(sid, innerId);
    if (!table) return table.error();
    d.maglev[sid] = std::move(table->ids);
  }
  auto ct = ct_.dump<sl_ct_key, sl_ct_entry>();
  if (!ct) return ct.error();
  d.conntrack.insert(ct->begin(), ct->end());
  auto affinity = affinity_.dump<sl_affinity_key, sl_affinity_value>();
  if (!affinity) return affinity.error();
  d.affinity.insert(affinity->begin(), affinity->end());
  auto sockRev = sockRev_.dump<sl_sock_rev_key, sl_svc_key>();
  if (!sockRev) return sockRev.error();
  d.sockReverse.insert(sockRev->begin(), sockRev->end());
  return d;
}

}  // namespace sluice
