// Loading a BPF object whose maps are pinned under a bpffs directory, so a
// restarted agent adopts them (and with them every established flow):
// one RAII type for every bpftool skeleton (as Katran's BpfSkeleton), the
// pin directory's checks, and loadPinnedObject(), which opens a skeleton
// with the pin root, sizes its maps from the options, checks what an
// earlier run pinned, and loads it.
#pragma once

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "bpf/loader/ebpf_options.h"
#include "bpf/loader/libbpf_opts.h"
#include "dataplane/result.h"

namespace sluice::bpf {

// bpftool's C++ skeletons carry static open/load/destroy members: one
// deleter serves every object.
struct SkeletonDeleter {
  template <typename Skel>
  void operator()(Skel* skel) const {
    Skel::destroy(skel);
  }
};
template <typename Skel>
using Skeleton = std::unique_ptr<Skel, SkeletonDeleter>;

// Creates dir (and parents) and checks it is on a bpffs: pins elsewhere
// fail with an unhelpful EPERM deep inside libbpf.
Result<void> preparePinDir(const std::string& dir);

// Compares a map pinned by an earlier run with what this build would
// create. libbpf refuses to reuse a mismatch with a bare EINVAL; this names
// the difference. With recreateOnMismatch (counter maps: their layout grows
// as reasons are appended, and losing counts is harmless) the pin is
// removed instead; any other mismatch is an error, because recreating
// sl_ct would break every established flow.
Result<void> checkPinned(bpf_map* map, const std::string& dir, bool recreateOnMismatch);

// Opens, sizes (max_entries from the options: every object defines the
// shared maps of bpf/lib/maps.h), checks the pins of, and loads one
// skeleton. `configure`, if set, runs between open and load (load-time
// constants in .rodata).
template <typename Skel>
Result<Skeleton<Skel>> loadPinnedObject(const EbpfOptions& options, const char* file,
                                        const std::function<void(Skel&)>& configure = {}) {
  auto openOpts = libbpfOpts<bpf_object_open_opts>();
  openOpts.pin_root_path = options.pinDir.c_str();
  Skeleton<Skel> skel(Skel::open(&openOpts));
  if (!skel) return Error::internal(std::string("open ") + file + ": " + std::strerror(errno));
  struct Size {
    bpf_map* map;
    uint32_t entries;
  };
  for (auto [map, entries] : {Size{skel->maps.sl_services, options.maxFrontends},
                              Size{skel->maps.sl_slots, options.maxSlots},
                              Size{skel->maps.sl_backends, options.maxBackends},
                              Size{skel->maps.sl_maglev, options.maxMaglevTables},
                              Size{skel->maps.sl_ct, options.maxConntrack},
                              Size{skel->maps.sl_affinity, options.maxAffinity},
                              Size{skel->maps.sl_sock_rev, options.maxSockReverse}}) {
    if (entries == 0) {
      return Error::invalid(std::string("options: ") + bpf_map__name(map) + ": max entries must be > 0");
    }
    if (int r = bpf_map__set_max_entries(map, entries); r < 0) {
      return Error::internal(std::string(bpf_map__name(map)) + ": set max entries: " + std::strerror(-r));
    }
  }
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, skel->obj) {
    const bool counters = map == skel->maps.sl_drops || map == skel->maps.sl_events;
    if (auto r = checkPinned(map, options.pinDir, counters); !r) return r.error();
  }
  if (configure) configure(*skel);
  if (int r = Skel::load(skel.get()); r < 0) {
    return Error::internal(std::string("load ") + file +
                           " (libbpf's log above has the verifier output): " + std::strerror(-r));
  }
  return skel;
}

}  // namespace sluice::bpf
