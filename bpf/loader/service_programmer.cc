// ServiceProgrammer: the eBPF mode's service entries (see the header).
#include "bpf/loader/service_programmer.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "bpf/loader/maglev_maps.h"

namespace sluice::bpf {

namespace {

IpFamily familyOfSet(uint32_t setId) { return (setId & SL_SVC_ID_V6) ? IpFamily::kV6 : IpFamily::kV4; }

}  // namespace

ServiceProgrammer::ServiceProgrammer(Maps maps, MapOpCounters* ops)
    : services_(maps.services), slots_(maps.slots), backends_(maps.backends), maglev_(maps.maglev), ops_(ops) {}

void ServiceProgrammer::queueTermination(const ServiceState& st, const sl_backend& be, uint32_t svcId) {
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
  removedUdp_.push_back(key);
}

std::vector<sl_sock_term_key> ServiceProgrammer::takeRemovedUdpBackends() {
  std::vector<sl_sock_term_key> out;
  out.swap(removedUdp_);
  return out;
}

std::optional<uint32_t> ServiceProgrammer::serviceId(const ServiceKey& key) const {
  auto it = programmed_.find(key);
  if (it == programmed_.end()) return std::nullopt;
  return it->second.svcId;
}

size_t ServiceProgrammer::backendCount() const {
  size_t n = 0;
  for (const auto& [key, st] : programmed_) n += st.backends.size();
  return n;
}

uint32_t ServiceProgrammer::allocateServiceId() {
  // Wrap within the 30-bit space, skipping ids in use.
  for (;;) {
    uint32_t id = nextServiceId_;
    nextServiceId_ = id >= SL_SVC_ID_MASK ? 1 : id + 1;
    if (!serviceIds_.count(id)) return id;
  }
}

uint32_t ServiceProgrammer::allocateBackendId() {
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

Result<void> ServiceProgrammer::programSet(ServiceState& st, const Service& svc, uint32_t setId,
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
    std::vector<uint32_t> layout = keepPositions(prevActive, active);
    std::vector<uint32_t> term = keepPositions(prevTerminating, terminating);
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
      ops_->writes += size;
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
      MapRef inner(set.maglevFd.get(), "sl_maglev[" + std::to_string(setId) + "]", ops_);
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

Result<void> ServiceProgrammer::eraseSet(uint32_t setId, SetState& set) {
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

Result<void> ServiceProgrammer::program(const ServiceKey& key, ServiceState& st, const Service& svc) {
  const std::string where = "service " + key.toString();
  if (st.svcId == 0) {
    st.svcId = allocateServiceId();
    serviceIds_[st.svcId] = key;
  }

  // 1. Backends first: slots and conntrack may only name existing ones.
  std::set<uint32_t> wantedBackends;
  for (const Backend& b : svc.backends) {
    const EndpointKey ek = endpointKey(b);
    auto idIt = st.backendIds.find(ek);
    const uint32_t id = idIt != st.backendIds.end() ? idIt->second : allocateBackendId();
    const sl_backend value = backendValue(b, st.svcId);
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
    counts.try_emplace(setId(st.svcId, fam, false));
    if (svc.isLocal(f.scope)) counts.try_emplace(setId(st.svcId, fam, true));
  }
  for (auto& [sid, c] : counts) {
    const Service::BackendSet m = svc.backendSet((sid & SL_SVC_ID_LOCAL) != 0, familyOfSet(sid));
    if (m.active.size() > UINT16_MAX || m.terminating.size() > UINT16_MAX) {
      return Error::invalid(where + ": more than 65535 backends in one set");
    }
    std::vector<uint32_t> active, terminating;
    for (size_t i : m.active) active.push_back(st.backendIds.at(endpointKey(svc.backends[i])));
    for (size_t i : m.terminating) {
      terminating.push_back(st.backendIds.at(endpointKey(svc.backends[i])));
    }
    // Maglev: the set's eligible backends (active, else terminating) and
    // their ids, by table index.
    std::vector<MaglevBackend> maglevBackends;
    std::vector<uint32_t> maglevIds;
    if (svc.algorithm == LbAlgorithm::kMaglev) {
      for (size_t i : m.active.empty() ? m.terminating : m.active) {
        maglevBackends.push_back({maglevBackendKey(svc.backends[i]), svc.backends[i].weight});
        maglevIds.push_back(st.backendIds.at(endpointKey(svc.backends[i])));
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
    const sl_svc_key k = frontendKey(f);
    const IpFamily fam = f.address.family();
    sl_svc_value v;
    std::memset(&v, 0, sizeof(v));
    v.svc_id = st.svcId;
    const Counts cluster = counts[setId(st.svcId, fam, false)];
    v.active_count = cluster.active;
    v.terminating_count = cluster.terminating;
    if (auto it = counts.find(setId(st.svcId, fam, true)); it != counts.end()) {
      v.local_active_count = it->second.active;
      v.local_terminating_count = it->second.terminating;
    }
    v.flags = frontendFlags(svc, f);
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
    queueTermination(st, it->second, st.svcId);
    // Also sockets whose frontend this change removed (svc id 0 matches
    // a frontend no longer in sl_services): stale for certain.
    queueTermination(st, it->second, 0);
    it = st.backends.erase(it);
  }
  for (auto it = st.backendIds.begin(); it != st.backendIds.end();) {
    it = wantedBackends.count(it->second) ? std::next(it) : st.backendIds.erase(it);
  }
  return okResult();
}

Result<void> ServiceProgrammer::remove(const ServiceKey& key) {
  auto it = programmed_.find(key);
  if (it == programmed_.end()) return okResult();
  ServiceState& st = it->second;
  const std::string where = "service " + key.toString();
  // Before the frontends go: they say whether the service had UDP ones.
  for (const auto& [id, be] : st.backends) queueTermination(st, be, 0);
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

Result<void> ServiceProgrammer::adopt(const ServiceTable& table) {
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
      if (auto it = pinned.find(frontendKey(f)); it != pinned.end()) {
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
      const sl_svc_key k = frontendKey(f);
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
    const EndpointKey ek{loadAddress(v.addr, v.family), ntohs(v.port)};
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

Result<void> ServiceProgrammer::apply(const ServiceDiff& diff) {
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

}  // namespace sluice::bpf
