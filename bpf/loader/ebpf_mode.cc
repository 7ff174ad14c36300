#include "bpf/loader/ebpf_mode.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <set>

#include "bpf/loader/abi_layout.h"
#include "bpf/loader/libbpf_opts.h"
#include "host.skel.h"
#include "lxc.skel.h"
#include "sock.skel.h"
#include "sock_term.skel.h"
#include "xdp.skel.h"

namespace sluice {

using bpf::BytesLess;
using bpf::bytesEqual;
using bpf::EndpointKey;
using bpf::FileDescriptor;
using bpf::MapRef;

namespace {


std::string errnoText(int err) { return std::strerror(err < 0 ? -err : err); }

// Creates dir (and parents) and checks it is on a bpffs: pins elsewhere
// fail with an unhelpful EPERM deep inside libbpf.
Result<void> preparePinDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error::internal("pin dir " + dir + ": " + ec.message());
  struct statfs st {};
  if (::statfs(dir.c_str(), &st) != 0) {
    return Error::internal("pin dir " + dir + ": statfs: " + errnoText(errno));
  }
  if (static_cast<uint32_t>(st.f_type) != BPF_FS_MAGIC) {
    return Error{ErrorCode::kFailedPrecondition,
                 "pin dir " + dir + " is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)"};
  }
  return okResult();
}

// Compares a map pinned by an earlier run with what this build would
// create. libbpf refuses to reuse a mismatch with a bare EINVAL; this names
// the difference. Counter maps are simply recreated (their layout grows as
// reasons are appended, and losing counts is harmless); any other mismatch
// is an error because recreating sl_ct would break every established flow.
Result<void> checkPinned(bpf_map* map, const std::string& dir, bool recreateOnMismatch) {
  const std::string path = dir + "/" + bpf_map__name(map);
  if (::access(path.c_str(), F_OK) != 0) return okResult();
  FileDescriptor fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) return Error::internal("pinned map " + path + ": " + errnoText(errno));
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (int r = bpf_obj_get_info_by_fd(fd.get(), &info, &len); r < 0) {
    return Error::internal("pinned map " + path + ": info: " + errnoText(r));
  }
  std::string diff;
  auto cmp = [&](const char* what, uint32_t pinned, uint32_t wanted) {
    if (pinned != wanted) {
      diff += std::string(diff.empty() ? "" : ", ") + what + " " + std::to_string(pinned) +
              " (this build wants " + std::to_string(wanted) + ")";
    }
  };
  cmp("type", info.type, bpf_map__type(map));
  cmp("key size", info.key_size, bpf_map__key_size(map));
  cmp("value size", info.value_size, bpf_map__value_size(map));
  cmp("max_entries", info.max_entries, bpf_map__max_entries(map));
  cmp("flags", info.map_flags, bpf_map__map_flags(map));
  if (diff.empty()) return okResult();
  if (recreateOnMismatch) {
    if (::unlink(path.c_str()) != 0) {
      return Error::internal("pinned map " + path + ": unlink: " + errnoText(errno));
    }
    return okResult();
  }
  return Error{ErrorCode::kFailedPrecondition,
               "pinned map " + path + " differs: " + diff +
                   "; keep the old size in the options, or remove the pin dir to recreate the "
                   "maps (drops conntrack: established service connections break)"};
}

// Maglev inner maps: ARRAY of __u32 backend ids, flags as the template in
// bpf/lib/maps.h (the kernel requires equal flags for HASH_OF_MAPS values).
Result<FileDescriptor> createMaglevTable(uint32_t size) {
  auto opts = bpf::libbpfOpts<bpf_map_create_opts>();
  opts.map_flags = BPF_F_INNER_MAP;
  FileDescriptor fd(bpf_map_create(BPF_MAP_TYPE_ARRAY, "sl_maglev_tbl", sizeof(uint32_t),
                                   sizeof(uint32_t), size, &opts));
  if (!fd.valid()) {
    return Error::exhausted("create Maglev table of " + std::to_string(size) +
                            " slots: " + errnoText(errno));
  }
  return fd;
}

// Batched: a 65537-slot table is one syscall per 8k slots, not 65537.
constexpr uint32_t kBatch = 8192;

Result<void> writeAllSlots(int fd, const std::vector<uint32_t>& ids) {
  std::vector<uint32_t> keys(std::min<size_t>(ids.size(), kBatch));
  for (uint32_t start = 0; start < ids.size(); start += kBatch) {
    uint32_t n = std::min<uint32_t>(kBatch, static_cast<uint32_t>(ids.size()) - start);
    std::iota(keys.begin(), keys.begin() + n, start);
    uint32_t count = n;
    auto opts = bpf::libbpfOpts<bpf_map_batch_opts>();
    if (int r = bpf_map_update_batch(fd, keys.data(), ids.data() + start, &count, &opts); r < 0) {
      return Error::internal("write Maglev table: " + errnoText(r));
    }
  }
  return okResult();
}

Result<std::vector<uint32_t>> readAllSlots(int fd, uint32_t size) {
  std::vector<uint32_t> ids(size, 0);
  std::vector<uint32_t> keys(kBatch), values(kBatch);
  uint32_t cursor = 0;
  for (bool first = true;; first = false) {
    uint32_t count = kBatch;
    auto opts = bpf::libbpfOpts<bpf_map_batch_opts>();
    int r = bpf_map_lookup_batch(fd, first ? nullptr : &cursor, &cursor, keys.data(),
                                 values.data(), &count, &opts);
    if (r < 0 && r != -ENOENT) return Error::internal("read Maglev table: " + errnoText(r));
    for (uint32_t i = 0; i < count; ++i) {
      if (keys[i] < size) ids[keys[i]] = values[i];
    }
    if (r == -ENOENT) break;  // past the last slot
  }
  return ids;
}

// An inner Maglev map found through sl_maglev (by the id the outer map
// returns to userspace), and its contents.
struct OpenedTable {
  FileDescriptor fd;
  std::vector<uint32_t> ids;
};
Result<OpenedTable> openMaglevTable(uint32_t setId, uint32_t mapId) {
  const std::string where = "Maglev table of backend set " + std::to_string(setId);
  FileDescriptor fd(bpf_map_get_fd_by_id(mapId));
  if (!fd.valid()) return Error::internal(where + ": " + errnoText(errno));
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (int r = bpf_obj_get_info_by_fd(fd.get(), &info, &len); r < 0) {
    return Error::internal(where + ": " + errnoText(r));
  }
  auto ids = readAllSlots(fd.get(), info.max_entries);
  if (!ids) return ids.error().wrap(where);
  return OpenedTable{std::move(fd), std::move(*ids)};
}

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

IpFamily familyOfSet(uint32_t setId) {
  return (setId & SL_SVC_ID_V6) ? IpFamily::kV6 : IpFamily::kV4;
}

}  // namespace

void EbpfMode::SkeletonDeleter::operator()(lxc_bpf* skel) const { lxc_bpf__destroy(skel); }
void EbpfMode::SkeletonDeleter::operator()(sock_bpf* skel) const { sock_bpf__destroy(skel); }
void EbpfMode::SkeletonDeleter::operator()(host_bpf* skel) const { host_bpf__destroy(skel); }
void EbpfMode::SkeletonDeleter::operator()(xdp_bpf* skel) const { xdp_bpf__destroy(skel); }

EbpfMode::EbpfMode(Options options, SkeletonPtr<lxc_bpf> skel, SkeletonPtr<sock_bpf> sock)
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
}

EbpfMode::~EbpfMode() = default;

template <typename Skel>
Result<EbpfMode::SkeletonPtr<Skel>> EbpfMode::loadObject(
    const Options& options, const char* file, const std::function<void(Skel&)>& configure) {
  auto openOpts = bpf::libbpfOpts<bpf_object_open_opts>();
  openOpts.pin_root_path = options.pinDir.c_str();
  SkeletonPtr<Skel> skel(Skel::open(&openOpts));
  if (!skel) return Error::internal(std::string("open ") + file + ": " + errnoText(errno));

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
      return Error::invalid(std::string("options: ") + bpf_map__name(map) +
                            ": max entries must be > 0");
    }
    if (int r = bpf_map__set_max_entries(map, entries); r < 0) {
      return Error::internal(std::string(bpf_map__name(map)) + ": set max entries: " +
                             errnoText(r));
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
                           " (libbpf's log above has the verifier output): " + errnoText(r));
  }
  return skel;
}

// Instantiated here for the uplink objects loaded by loadUplink() in
// ebpf_mode_attach.cc, which sees only the declaration.
template Result<EbpfMode::SkeletonPtr<host_bpf>> EbpfMode::loadObject<host_bpf>(
    const Options&, const char*, const std::function<void(host_bpf&)>&);
template Result<EbpfMode::SkeletonPtr<xdp_bpf>> EbpfMode::loadObject<xdp_bpf>(
    const Options&, const char*, const std::function<void(xdp_bpf&)>&);
template Result<EbpfMode::SkeletonPtr<sock_term_bpf>> EbpfMode::loadObject<sock_term_bpf>(
    const Options&, const char*, const std::function<void(sock_term_bpf&)>&);

Result<std::unique_ptr<EbpfMode>> EbpfMode::create(Options options) {
  if (auto r = preparePinDir(options.pinDir); !r) return r.error();
  // lxc first: it creates (or adopts) every pinned map, and the sock
  // object then reuses them by name, already checked and sized.
  auto lxc = loadObject<lxc_bpf>(options, "lxc.bpf.o");
  if (!lxc) return lxc.error();
  // The socket hooks act on this (the node's) network namespace only: see
  // sl_netns_cookie in bpf/sock.bpf.c.
  const uint64_t netns = options.netnsCookie ? *options.netnsCookie : currentNetnsCookie();
  auto sock = loadObject<sock_bpf>(options, "sock.bpf.o",
                                   [netns](sock_bpf& skel) { skel.rodata->sl_netns_cookie = netns; });
  if (!sock) return sock.error();
  std::unique_ptr<EbpfMode> mode(
      new EbpfMode(std::move(options), std::move(*lxc), std::move(*sock)));
  mode->netnsCookie_ = netns;
  // Optional: a kernel without it still balances; socketTermination() says why.
  mode->loadSocketTerminator();
  return mode;
}

uint32_t EbpfMode::allocateServiceId() {
  // Wrap within the 30-bit space, skipping ids in use.
  for (;;) {
    uint32_t id = nextServiceId_;
    nextServiceId_ = id >= SL_SVC_ID_MASK ? 1 : id + 1;
    if (!serviceIds_.count(id)) return id;
  }
}

uint32_t EbpfMode::allocateBackendId() {
  // Upwards from one past the highest id ever seen, so no id can be in use
  // until the 2^32 space wraps; from then on each candidate is checked
  // against the kernel's map (a lookup per allocation, only after 4e9 of them).
  for (;;) {
    const uint32_t id = nextBackendId_;
    if (id == UINT32_MAX) backendIdsWrapped_ = true;
    nextBackendId_ = id == UINT32_MAX ? 1 : id + 1;
    if (!backendIdsWrapped_ || !backends_.lookup<uint32_t, sl_backend>(id)) return id;
  }
}

// ---------------------------------------------------------------------------
// Programming one service.

Result<void> EbpfMode::programSet(ServiceState& st, const Service& svc, uint32_t setId,
                                  const std::vector<uint32_t>& active,
                                  const std::vector<uint32_t>& terminating,
                                  const std::vector<MaglevBackend>& maglevBackends,
                                  const std::vector<uint32_t>& ids) {
  SetState& set = st.sets[setId];
  const std::string where = "backend set " + std::to_string(setId);

  if (svc.algorithm == LbAlgorithm::kRandom) {
    std::vector<uint32_t> prevActive, prevTerminating;
    for (const auto& [slot, id] : set.slots) {
      (slot < set.active ? prevActive : prevTerminating).push_back(id);
    }
    std::vector<uint32_t> layout = bpf::keepPositions(prevActive, active);
    std::vector<uint32_t> term = bpf::keepPositions(prevTerminating, terminating);
    layout.insert(layout.end(), term.begin(), term.end());
    for (uint32_t slot = 0; slot < layout.size(); ++slot) {
      auto it = set.slots.find(slot);
      if (it != set.slots.end() && it->second == layout[slot]) continue;
      if (auto r = put(slots_, kSlots, sl_slot_key{setId, slot}, layout[slot]); !r) {
        return r.error().wrap(where);
      }
      set.slots[slot] = layout[slot];
    }
    set.active = static_cast<uint16_t>(active.size());
  }

  if (svc.algorithm == LbAlgorithm::kMaglev && !maglevBackends.empty()) {
    auto builder = MaglevBuilder::create(svc.maglevTableSize);
    if (!builder) return builder.error().wrap(where);
    const uint32_t size = builder->tableSize();
    std::optional<MaglevTable> table;
    std::vector<uint32_t> changed;
    const bool patch = set.maglevFd.valid() && set.maglevIds.size() == size;
    if (patch && set.maglevTable && set.maglevTable->size() == size) {
      auto update = builder->rebuild(*set.maglevTable, maglevBackends);
      if (!update) return update.error().wrap(where);
      table.emplace(std::move(update->table));
      changed = std::move(update->changedSlots);
    } else {
      auto built = builder->build(maglevBackends);
      if (!built) return built.error().wrap(where);
      table.emplace(std::move(*built));
    }
    auto idAt = [&](uint32_t slot) {
      uint32_t index = table->slots()[slot];
      return index == MaglevTable::kNoBackend ? 0u : ids[index];
    };
    if (!patch) {
      // New or resized table: fill a fresh inner map completely, then swap
      // it in with one outer-map update so no flow sees a partial table.
      auto fd = createMaglevTable(size);
      if (!fd) return fd.error().wrap(where);
      std::vector<uint32_t> all(size);
      for (uint32_t s = 0; s < size; ++s) all[s] = idAt(s);
      if (auto r = writeAllSlots(fd->get(), all); !r) return r.error().wrap(where);
      ops_.writes += size;
      uint32_t innerFd = static_cast<uint32_t>(fd->get());
      if (auto r = put(maglev_, kMaglevOuter, setId, innerFd); !r) return r.error().wrap(where);
      set.maglevFd = std::move(*fd);
      set.maglevIds = std::move(all);
    } else {
      if (!set.maglevTable) {
        // Adopted after a restart: no previous table in memory, so compare
        // against what the pinned inner map holds.
        for (uint32_t s = 0; s < size; ++s) {
          if (set.maglevIds[s] != idAt(s)) changed.push_back(s);
        }
      }
      MapRef inner(set.maglevFd.get(), "sl_maglev[" + std::to_string(setId) + "]", &ops_);
      for (uint32_t s : changed) {
        uint32_t id = idAt(s);
        if (set.maglevIds[s] == id) continue;
        if (auto r = put(inner, kMaglevInner, s, id, setId); !r) {
          set.maglevTable.reset();  // memory no longer matches the kernel's table
          return r.error().wrap(where);
        }
        set.maglevIds[s] = id;
      }
    }
    set.maglevTable = std::move(table);
  }
  return okResult();
}

Result<void> EbpfMode::eraseSet(uint32_t setId, SetState& set) {
  for (auto it = set.slots.begin(); it != set.slots.end();) {
    if (auto r = del(slots_, kSlots, sl_slot_key{setId, it->first}); !r) return r;
    it = set.slots.erase(it);
  }
  if (set.maglevFd.valid()) {
    if (auto r = del(maglev_, kMaglevOuter, setId); !r) return r;
    set.maglevFd = FileDescriptor();
    set.maglevIds.clear();
    set.maglevTable.reset();
  }
  return okResult();
}

Result<void> EbpfMode::program(const ServiceKey& key, ServiceState& st, const Service& svc) {
  const std::string where = "service " + key.toString();
  if (st.svcId == 0) {
    st.svcId = allocateServiceId();
    serviceIds_[st.svcId] = key;
  }

  // 1. Backends first: slots and conntrack may only name existing ones.
  std::set<uint32_t> wantedBackends;
  for (const Backend& b : svc.backends) {
    const EndpointKey ek = bpf::endpointKey(b);
    auto idIt = st.backendIds.find(ek);
    const uint32_t id = idIt != st.backendIds.end() ? idIt->second : allocateBackendId();
    const sl_backend value = bpf::backendValue(b, st.svcId);
    auto cur = st.backends.find(id);
    if (cur == st.backends.end() || !bytesEqual(cur->second, value)) {
      if (auto r = put(backends_, kBackends, id, value); !r) return r.error().wrap(where);
      st.backends[id] = value;
    }
    st.backendIds[ek] = id;
    wantedBackends.insert(id);
  }

  // 2. Backend sets: per family with frontends, plus the node-local subset
  //    where some frontend of that family has a Local policy.
  struct Counts {
    uint16_t active = 0;
    uint16_t terminating = 0;
  };
  std::map<uint32_t, Counts> counts;
  for (const Frontend& f : svc.frontends) {
    const IpFamily fam = f.address.family();
    counts.try_emplace(bpf::setId(st.svcId, fam, false));
    if (svc.isLocal(f.scope)) counts.try_emplace(bpf::setId(st.svcId, fam, true));
  }
  for (auto& [sid, c] : counts) {
    const Service::BackendSet m = svc.backendSet((sid & SL_SVC_ID_LOCAL) != 0, familyOfSet(sid));
    if (m.active.size() > UINT16_MAX || m.terminating.size() > UINT16_MAX) {
      return Error::invalid(where + ": more than 65535 backends in one set");
    }
    std::vector<uint32_t> active, terminating;
    for (size_t i : m.active) active.push_back(st.backendIds.at(bpf::endpointKey(svc.backends[i])));
    for (size_t i : m.terminating) {
      terminating.push_back(st.backendIds.at(bpf::endpointKey(svc.backends[i])));
    }
    // Maglev: the set's eligible backends (active, else terminating) and
    // their ids, by table index.
    std::vector<MaglevBackend> maglevBackends;
    std::vector<uint32_t> maglevIds;
    if (svc.algorithm == LbAlgorithm::kMaglev) {
      for (size_t i : m.active.empty() ? m.terminating : m.active) {
        maglevBackends.push_back({bpf::maglevBackendKey(svc.backends[i]), svc.backends[i].weight});
        maglevIds.push_back(st.backendIds.at(bpf::endpointKey(svc.backends[i])));
      }
    }
    if (auto r = programSet(st, svc, sid, active, terminating, maglevBackends, maglevIds); !r) {
      return r.error().wrap(where);
    }
    c.active = static_cast<uint16_t>(active.size());
    c.terminating = static_cast<uint16_t>(terminating.size());
  }

  // 3. Frontends, now that everything they count exists.
  std::set<sl_svc_key, BytesLess> wantedFrontends;
  for (const Frontend& f : svc.frontends) {
    const sl_svc_key k = bpf::frontendKey(f);
    const IpFamily fam = f.address.family();
    sl_svc_value v;
    std::memset(&v, 0, sizeof(v));
    v.svc_id = st.svcId;
    const Counts cluster = counts[bpf::setId(st.svcId, fam, false)];
    v.active_count = cluster.active;
    v.terminating_count = cluster.terminating;
    if (auto it = counts.find(bpf::setId(st.svcId, fam, true)); it != counts.end()) {
      v.local_active_count = it->second.active;
      v.local_terminating_count = it->second.terminating;
    }
    v.flags = bpf::frontendFlags(svc, f);
    v.affinity_timeout_s = svc.affinity.clientIp ? svc.affinity.timeoutSeconds : 0;
    v.maglev_size = svc.algorithm == LbAlgorithm::kMaglev ? svc.maglevTableSize : 0;
    wantedFrontends.insert(k);
    auto cur = st.frontends.find(k);
    auto owner = frontendOwner_.find(k);
    const bool owned = owner != frontendOwner_.end() && owner->second == key;
    if (owned && cur != st.frontends.end() && bytesEqual(cur->second, v)) continue;
    if (auto r = put(services_, kFrontends, k, v); !r) return r.error().wrap(where);
    st.frontends[k] = v;
    frontendOwner_[k] = key;
  }
  for (auto it = st.frontends.begin(); it != st.frontends.end();) {
    if (wantedFrontends.count(it->first)) {
      ++it;
      continue;
    }
    // A frontend that moved to another service in this diff is that
    // service's now: leave its entry alone.
    auto owner = frontendOwner_.find(it->first);
    if (owner == frontendOwner_.end() || owner->second == key) {
      if (auto r = del(services_, kFrontends, it->first); !r) return r.error().wrap(where);
      if (owner != frontendOwner_.end()) frontendOwner_.erase(owner);
    }
    it = st.frontends.erase(it);
  }

  // 4. What the frontends no longer count: slots past each set's end, Maglev
  //    tables of sets now empty or not Maglev, whole sets no longer needed.
  for (auto it = st.sets.begin(); it != st.sets.end();) {
    const uint32_t sid = it->first;
    SetState& set = it->second;
    auto c = counts.find(sid);
    if (c == counts.end()) {
      if (auto r = eraseSet(sid, set); !r) return r.error().wrap(where);
      it = st.sets.erase(it);
      continue;
    }
    const uint32_t used = svc.algorithm == LbAlgorithm::kRandom
                              ? uint32_t{c->second.active} + c->second.terminating
                              : 0;
    for (auto s = set.slots.lower_bound(used); s != set.slots.end();) {
      if (auto r = del(slots_, kSlots, sl_slot_key{sid, s->first}); !r) {
        return r.error().wrap(where);
      }
      s = set.slots.erase(s);
    }
    const bool maglevUsed = svc.algorithm == LbAlgorithm::kMaglev &&
                            (c->second.active > 0 || c->second.terminating > 0);
    if (!maglevUsed && set.maglevFd.valid()) {
      if (auto r = del(maglev_, kMaglevOuter, sid); !r) return r.error().wrap(where);
      set.maglevFd = FileDescriptor();
      set.maglevIds.clear();
      set.maglevTable.reset();
    }
    ++it;
  }

  // 5. Backends gone from the service: their flows re-balance (UDP at once).
  for (auto it = st.backends.begin(); it != st.backends.end();) {
    if (wantedBackends.count(it->first)) {
      ++it;
      continue;
    }
    if (auto r = del(backends_, kBackends, it->first); !r) return r.error().wrap(where);
    queueSocketTermination(st, it->second, st.svcId);
    // Also sockets whose frontend this change removed (svc id 0 matches
    // a frontend no longer in sl_services): stale for certain.
    queueSocketTermination(st, it->second, 0);
    it = st.backends.erase(it);
  }
  for (auto it = st.backendIds.begin(); it != st.backendIds.end();) {
    it = wantedBackends.count(it->second) ? std::next(it) : st.backendIds.erase(it);
  }
  return okResult();
}

Result<void> EbpfMode::remove(const ServiceKey& key) {
  auto it = programmed_.find(key);
  if (it == programmed_.end()) return okResult();
  ServiceState& st = it->second;
  const std::string where = "service " + key.toString();
  // Before the frontends go: they say whether the service had UDP ones.
  for (const auto& [id, be] : st.backends) queueSocketTermination(st, be, 0);
  for (auto f = st.frontends.begin(); f != st.frontends.end();) {
    auto owner = frontendOwner_.find(f->first);
    if (owner == frontendOwner_.end() || owner->second == key) {
      if (auto r = services_.erase(f->first); !r) return r.error().wrap(where);
      if (owner != frontendOwner_.end()) frontendOwner_.erase(owner);
    }
    f = st.frontends.erase(f);
  }
  for (auto s = st.sets.begin(); s != st.sets.end();) {
    if (auto r = eraseSet(s->first, s->second); !r) return r.error().wrap(where);
    s = st.sets.erase(s);
  }
  for (auto b = st.backends.begin(); b != st.backends.end();) {
    if (auto r = backends_.erase(b->first); !r) return r.error().wrap(where);
    b = st.backends.erase(b);
  }
  serviceIds_.erase(st.svcId);
  programmed_.erase(it);
  return okResult();
}

// ---------------------------------------------------------------------------
// Start-up: adopt pinned state, then converge on the table.

Result<void> EbpfMode::adopt(const ServiceTable& table) {
  programmed_.clear();
  frontendOwner_.clear();
  serviceIds_.clear();

  auto frontends = services_.dump<sl_svc_key, sl_svc_value>();
  if (!frontends) return frontends.error();
  auto backends = backends_.dump<uint32_t, sl_backend>();
  if (!backends) return backends.error();
  auto slots = slots_.dump<sl_slot_key, uint32_t>();
  if (!slots) return slots.error();
  auto maglev = maglev_.dump<uint32_t, uint32_t>();  // set id -> inner map id
  if (!maglev) return maglev.error();

  uint32_t maxSvc = 0;
  uint32_t maxBackend = 0;
  for (const auto& [k, v] : *frontends) maxSvc = std::max(maxSvc, v.svc_id & SL_SVC_ID_MASK);
  for (const auto& [id, v] : *backends) {
    maxSvc = std::max(maxSvc, v.svc_id & SL_SVC_ID_MASK);
    maxBackend = std::max(maxBackend, id);
  }
  for (const auto& [k, v] : *slots) maxSvc = std::max(maxSvc, k.set_id & SL_SVC_ID_MASK);
  for (const auto& [k, v] : *maglev) maxSvc = std::max(maxSvc, k & SL_SVC_ID_MASK);
  nextServiceId_ = std::max(nextServiceId_, maxSvc >= SL_SVC_ID_MASK ? 1 : maxSvc + 1);
  nextBackendId_ = std::max(nextBackendId_, maxBackend == UINT32_MAX ? 1 : maxBackend + 1);

  std::map<sl_svc_key, sl_svc_value, BytesLess> pinned(frontends->begin(), frontends->end());

  // Service ids: the id most of a service's pinned frontends carry, unless
  // another service already took it (frontends moved while we were down).
  for (const auto& [key, svc] : table) {
    std::map<uint32_t, int> votes;
    for (const Frontend& f : svc.frontends) {
      if (auto it = pinned.find(bpf::frontendKey(f)); it != pinned.end()) {
        ++votes[it->second.svc_id & SL_SVC_ID_MASK];
      }
    }
    uint32_t best = 0;
    int bestVotes = 0;
    for (const auto& [id, n] : votes) {
      if (id != 0 && n > bestVotes && !serviceIds_.count(id)) {
        best = id;
        bestVotes = n;
      }
    }
    ServiceState& st = programmed_[key];
    if (best != 0) {
      st.svcId = best;
      serviceIds_[best] = key;
    }
    for (const Frontend& f : svc.frontends) {
      const sl_svc_key k = bpf::frontendKey(f);
      if (auto it = pinned.find(k); it != pinned.end()) {
        st.frontends[k] = it->second;
        frontendOwner_[k] = key;
      }
    }
  }

  // Everything pinned under an adopted id goes into that service's mirror;
  // program() then rewrites what differs and deletes what it does not want.
  auto ownerOf = [&](uint32_t id) -> ServiceState* {
    auto it = serviceIds_.find(id & SL_SVC_ID_MASK);
    return it == serviceIds_.end() ? nullptr : &programmed_.at(it->second);
  };
  std::vector<uint32_t> staleBackends;
  for (const auto& [id, v] : *backends) {
    ServiceState* st = ownerOf(v.svc_id);
    if (!st || v.svc_id != st->svcId) {
      staleBackends.push_back(id);
      continue;
    }
    st->backends[id] = v;
    const EndpointKey ek{bpf::loadAddress(v.addr, v.family), ntohs(v.port)};
    st->backendIds.try_emplace(ek, id);
  }
  std::vector<sl_slot_key> staleSlots;
  for (const auto& [k, id] : *slots) {
    ServiceState* st = ownerOf(k.set_id);
    if (!st) {
      staleSlots.push_back(k);
      continue;
    }
    st->sets[k.set_id].slots[k.slot] = id;
  }
  std::vector<uint32_t> staleMaglev;
  for (const auto& [sid, innerId] : *maglev) {
    ServiceState* st = ownerOf(sid);
    if (!st) {
      staleMaglev.push_back(sid);
      continue;
    }
    auto table = openMaglevTable(sid, innerId);
    if (!table) return table.error();
    SetState& set = st->sets[sid];
    set.maglevFd = std::move(table->fd);
    set.maglevIds = std::move(table->ids);
  }
  // Slot layout: [0, active) were active per the frontends' counts.
  for (auto& [key, st] : programmed_) {
    for (auto& [sid, set] : st.sets) {
      const bool v6 = sid & SL_SVC_ID_V6;
      const bool local = sid & SL_SVC_ID_LOCAL;
      for (const auto& [k, v] : st.frontends) {
        if ((k.family == SL_FAMILY_V6) != v6) continue;
        set.active = local ? v.local_active_count : v.active_count;
        break;
      }
    }
  }

  // Converge every service, then delete what no service claims.
  Result<void> result;
  for (const auto& [key, svc] : table) {
    if (auto r = program(key, programmed_.at(key), svc); !r && result.ok()) result = r;
  }
  for (const auto& [k, v] : pinned) {
    if (frontendOwner_.count(k)) continue;
    if (auto r = del(services_, kFrontends, k); !r && result.ok()) result = r;
  }
  for (const auto& k : staleSlots) {
    if (auto r = del(slots_, kSlots, k); !r && result.ok()) result = r;
  }
  for (uint32_t sid : staleMaglev) {
    if (auto r = del(maglev_, kMaglevOuter, sid); !r && result.ok()) result = r;
  }
  for (uint32_t id : staleBackends) {
    if (auto r = del(backends_, kBackends, id); !r && result.ok()) result = r;
  }
  return result;
}

Result<void> EbpfMode::sync(const ServiceTable& table) {
  std::lock_guard lock(mu_);
  // Every write of the sync goes out in batches at the end (map_batch.h):
  // at 100,000 services x 10 backends (2.1M entries) ~260 syscalls, not 2.1M.
  bpf::PendingWrites batch;
  batch_ = &batch;
  auto r = adopt(table);
  batch_ = nullptr;
  // Flushed even when a service failed: the other services' entries stand.
  auto flushed = batch.flush();
  if (!flushed && r) r = flushed.error().wrap("ebpf sync");
  // A failed flush leaves the mirror holding writes the kernel never got:
  // only another sync() (which re-reads the maps) may follow, not apply().
  synced_ = flushed.ok();
  // Backends the table no longer has (removed while no agent ran): their
  // sockets too, once the maps no longer name them.
  (void)terminateSockets();
  if (r) {
    ++applies_;
  } else {
    ++applyErrors_;
  }
  return r;
}

Result<void> EbpfMode::apply(const ServiceDiff& diff) {
  std::lock_guard lock(mu_);
  if (!synced_) {
    // Without sync() the pinned maps have not been read: programming would
    // allocate fresh ids next to a previous run's entries.
    ++applyErrors_;
    return Error{ErrorCode::kFailedPrecondition, "ebpf: apply() before the start-up sync()"};
  }
  auto r = applyChanges(diff);
  // After the maps, failed or not: a destroyed socket's reconnect must find
  // only live backends, and a backend already erased is not queued again by
  // a retry. A sweep's failure is reported by lastSocketTermination().
  (void)terminateSockets();
  if (r) {
    ++applies_;
  } else {
    ++applyErrors_;
  }
  return r;
}

Result<void> EbpfMode::applyChanges(const ServiceDiff& diff) {
  // Removals first, as applyDiff() does: a frontend moving between services
  // is free before its new owner writes it.
  for (const ServiceChange& c : diff.changes) {
    if (!c.removed()) continue;
    if (auto r = remove(c.key()); !r) return r;
  }
  for (const ServiceChange& c : diff.changes) {
    if (c.removed()) continue;
    if (auto r = program(c.key(), programmed_[c.key()], *c.after); !r) return r;
  }
  return okResult();
}

Result<EbpfDump> EbpfMode::dump() const {
  std::lock_guard lock(mu_);
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
    auto table = openMaglevTable(sid, innerId);
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
