#include "dataplane/dpdk/service_tables.h"

#include <rte_hash_crc.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>

#include "dataplane/mode_description.h"

namespace sluice::dpdk {

uint32_t crc32c(const void* data, size_t size, uint32_t seed) {
  // Word by word through memcpy: rte_hash_crc() itself loads through
  // misaligned uint32_t pointers, which x86 allows but C++ (and UBSan) do not.
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t crc = seed;
  for (; size >= 8; p += 8, size -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    crc = rte_hash_crc_8byte(w, crc);
  }
  if (size >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    crc = rte_hash_crc_4byte(w, crc);
    p += 4;
    size -= 4;
  }
  for (; size > 0; ++p, --size) crc = rte_hash_crc_1byte(*p, crc);
  return crc;
}

uint32_t selectionHash(const FlowTuple& t) {
  // crc32c() over the 37-byte layout of service_tables.h, fed a word at a
  // time straight from the tuple: building the bytes and walking them cost
  // a first packet 130 instructions (bench/dpdk/pipeline_counts.sh).
  const auto src = t.src.words(), dst = t.dst.words();
  uint32_t crc = 0x5eed;
  crc = rte_hash_crc_8byte(src[0], crc);
  crc = rte_hash_crc_8byte(src[1], crc);
  crc = rte_hash_crc_8byte(dst[0], crc);
  crc = rte_hash_crc_8byte(dst[1], crc);
  // Bytes 32-35, the ports in network order, as a little-endian load reads them.
  const uint32_t ports = uint32_t{static_cast<uint16_t>(t.srcPort >> 8 | t.srcPort << 8)} |
                         uint32_t{static_cast<uint16_t>(t.dstPort >> 8 | t.dstPort << 8)} << 16;
  crc = rte_hash_crc_4byte(ports, crc);
  return rte_hash_crc_1byte(static_cast<uint8_t>(t.protocol), crc);
}

uint64_t FrontendKeyHash::operator()(const FrontendKey& k) const {
  const uint32_t tail = uint32_t{k.port} << 8 | static_cast<uint32_t>(k.protocol);
  const auto b = k.address.bytes();
  uint32_t h = crc32c(b.data(), b.size(), tail);
  // Spread the CRC over 64 bits; the index uses the low bits.
  return uint64_t{h} * 0x9e3779b97f4a7c15ULL >> 16 ^ h;
}

uint64_t AddressHash::operator()(const IpAddress& a) const {
  const auto b = a.bytes();
  const uint32_t h = crc32c(b.data(), b.size(), 0xadd7);
  return uint64_t{h} * 0x9e3779b97f4a7c15ULL >> 16 ^ h;
}

bool SelectionSet::hasMember(uint32_t backendId) const {
  return std::binary_search(memberIds.begin(), memberIds.end(), backendId);
}

ServiceTables::ServiceTables(Rcu& rcu, BackendRegistry& backends)
    : rcu_(rcu), backends_(backends), frontends_(rcu), addresses_(rcu) {}

ServiceTables::~ServiceTables() = default;

const ServiceEntry* ServiceTables::serviceById(uint32_t id) const {
  auto it = byId_.find(id);
  return it == byId_.end() ? nullptr : it->second;
}

size_t ServiceTables::backendCount() const {
  size_t n = 0;
  for (const auto& [key, e] : services_) n += e->backends.size();
  return n;
}

size_t ServiceTables::memoryBytes() const {
  size_t n = frontends_.memoryBytes() + addresses_.memoryBytes() +
             ownedFrontends_.size() * sizeof(FrontendEntry);
  for (const auto& [key, e] : services_) {
    n += sizeof(ServiceEntry) + e->backends.size() * sizeof(BackendRef);
    for (const auto& byLocal : e->sets) {
      for (const SelectionSet& s : byLocal) {
        n += (s.members.size() + s.memberIds.size() + s.maglev.size()) * sizeof(uint32_t);
      }
    }
  }
  return n;
}

Result<std::unique_ptr<ServiceEntry>> ServiceTables::compile(const Service& s,
                                                             const ServiceEntry* previous) {
  auto e = std::make_unique<ServiceEntry>();
  // Hash of the key, never 0 (conntrack's "no service").
  const std::string key = s.key.toString();
  e->id = static_cast<uint32_t>(XXH64(key.data(), key.size(), 0)) | 1u;
  e->source = s;
  e->affinity = s.affinity.clientIp;
  e->affinityTimeoutNs = uint64_t{s.affinity.timeoutSeconds} * 1'000'000'000ULL;
  e->maglev = s.algorithm == LbAlgorithm::kMaglev;
  e->dsr = wantsDsr(s).value_or(false);
  for (const Backend& b : s.backends) {
    auto id = backends_.acquire(BackendRegistry::keyOf(s.key, b, s.protocol));
    if (!id) return id.error().wrap("service " + key);
    e->backends.push_back({b.address, b.port, b.weight, *id, b.state, b.nodeLocal});
    if (b.state != BackendState::kQuarantined) e->hasBackends[b.address.isV6()] = true;
  }
  bool anyLocal = false;
  for (const Frontend& f : s.frontends) anyLocal = anyLocal || s.isLocal(f.scope);
  std::optional<MaglevBuilder> builder;
  if (e->maglev) {
    auto b = MaglevBuilder::create(s.maglevTableSize);
    if (!b) return b.error().wrap("service " + key);
    builder = std::move(*b);
  }
  for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
    for (bool local : {false, true}) {
      if (local && !anyLocal) continue;
      SelectionSet& set = e->sets[family == IpFamily::kV6][local];
      const Service::BackendSet bs = s.backendSet(local, family);
      set.terminatingFallback = bs.active.empty() && !bs.terminating.empty();
      for (size_t i : bs.forNewFlows()) {
        set.members.push_back(static_cast<uint32_t>(i));
        set.memberIds.push_back(e->backends[i].id);
      }
      std::sort(set.memberIds.begin(), set.memberIds.end());
      set.membersMod = FastMod(static_cast<uint32_t>(set.members.size()));
      if (!builder || set.members.empty()) continue;
      std::vector<MaglevBackend> mb;
      for (uint32_t i : set.members) {
        const Backend& b = s.backends[i];
        mb.push_back({Endpoint{b.address, b.port}.toString(), b.weight});
      }
      const SelectionSet* before = previous != nullptr ? &previous->set(family, local) : nullptr;
      if (before != nullptr && before->maglevTable &&
          before->maglevTable->size() == builder->tableSize()) {
        auto u = builder->rebuild(*before->maglevTable, mb);
        if (!u) return u.error().wrap("service " + key + ": maglev");
        e->maglevChangedSlots += static_cast<uint32_t>(u->changedSlots.size());
        set.maglevTable = std::move(u->table);
      } else {
        auto t = builder->build(mb);
        if (!t) return t.error().wrap("service " + key + ": maglev");
        set.maglevTable = std::move(*t);
      }
      set.maglev.reserve(set.maglevTable->size());
      for (uint32_t slot : set.maglevTable->slots()) {
        set.maglev.push_back(slot == MaglevTable::kNoBackend ? slot : set.members[slot]);
      }
      set.maglevMod = FastMod(static_cast<uint32_t>(set.maglev.size()));
    }
  }
  return e;
}

void ServiceTables::retire(std::unique_ptr<ServiceEntry> e) {
  if (!e) return;
  rcu_.retire([p = e.release()] { delete p; });
}

void ServiceTables::retire(std::unique_ptr<FrontendEntry> e) {
  if (!e) return;
  rcu_.retire([p = e.release()] { delete p; });
}

void ServiceTables::addressRef(const Frontend& f, int delta) {
  AddressRefs& r = addressRefs_[f.address];
  r.frontends += delta;
  if (f.scope == FrontendScope::kLoadBalancer || f.scope == FrontendScope::kExternalIp) {
    r.announced += delta;
  }
  const bool announce = r.announced > 0;
  if (r.frontends <= 0) {
    if (r.entry) {
      addresses_.erase(f.address);
      auto old = std::move(r.entry);
      rcu_.retire([p = old.release()] { delete p; });
    }
    addressRefs_.erase(f.address);
    return;
  }
  if (r.entry && r.entry->announceUplink == announce) return;
  auto entry = std::make_unique<AddressEntry>(AddressEntry{f.address, announce});
  addresses_.upsert(entry.get());
  if (r.entry) rcu_.retire([p = r.entry.release()] { delete p; });
  r.entry = std::move(entry);
}

Result<void> ServiceTables::upsert(const Service& s) {
  if (auto v = validate(s); !v) return v;
  auto current = services_.find(s.key);
  const ServiceEntry* previous = current == services_.end() ? nullptr : current->second.get();
  if (previous != nullptr && previous->source == s) return okResult();
  for (const Frontend& f : s.frontends) {
    auto it = ownedFrontends_.find({f.address, f.port, f.protocol});
    if (it != ownedFrontends_.end() && it->second->service->source.key != s.key) {
      return Error::exists("service " + s.key.toString() + ": frontend " +
                           Endpoint{f.address, f.port}.toString() + "/" +
                           std::string(toString(f.protocol)) + " belongs to service " +
                           it->second->service->source.key.toString());
    }
  }
  // Ids of backends that stay are reacquired (same key, same id); those
  // that leave are released after the new entry is published.
  auto compiled = compile(s, previous);
  if (!compiled) {
    // Ids the failed compile took for backends the service did not have
    // would otherwise stay live with nothing naming them.
    for (const Backend& b : s.backends) {
      const uint64_t k = BackendRegistry::keyOf(s.key, b, s.protocol);
      bool had = false;
      if (previous != nullptr) {
        for (const Backend& old : previous->source.backends) {
          had = had || BackendRegistry::keyOf(s.key, old, previous->source.protocol) == k;
        }
      }
      if (!had) {
        if (auto id = backends_.acquire(k)) backends_.release(*id);
      }
    }
    return compiled.error();
  }
  std::unique_ptr<ServiceEntry> entry = std::move(*compiled);
  const ServiceEntry* published = entry.get();

  std::set<std::tuple<IpAddress, uint16_t, Protocol>> kept;
  for (const Frontend& f : s.frontends) {
    const std::tuple<IpAddress, uint16_t, Protocol> k{f.address, f.port, f.protocol};
    kept.insert(k);
    auto fe = std::make_unique<FrontendEntry>();
    fe->key = {f.address, f.port, f.protocol};
    fe->frontend = f;
    fe->service = published;
    frontends_.upsert(fe.get());
    auto& slot = ownedFrontends_[k];
    const bool isNew = !slot;
    const bool scopeChanged = slot && slot->frontend.scope != f.scope;
    if (scopeChanged) addressRef(slot->frontend, -1);
    retire(std::move(slot));
    slot = std::move(fe);
    if (isNew || scopeChanged) addressRef(f, +1);
  }
  if (previous != nullptr) {
    for (const Frontend& f : previous->source.frontends) {
      const std::tuple<IpAddress, uint16_t, Protocol> k{f.address, f.port, f.protocol};
      if (kept.count(k)) continue;
      frontends_.erase({f.address, f.port, f.protocol});
      retire(std::move(ownedFrontends_[k]));
      ownedFrontends_.erase(k);
      addressRef(f, -1);
    }
    std::vector<uint32_t> still;
    for (const BackendRef& b : published->backends) still.push_back(b.id);
    std::sort(still.begin(), still.end());
    for (const BackendRef& b : previous->backends) {
      if (!std::binary_search(still.begin(), still.end(), b.id)) backends_.release(b.id);
    }
    byId_.erase(previous->id);
    retire(std::move(current->second));
    current->second = std::move(entry);
  } else {
    services_[s.key] = std::move(entry);
  }
  byId_[published->id] = published;
  ++publications_;
  return okResult();
}

bool ServiceTables::erase(const ServiceKey& key) {
  auto it = services_.find(key);
  if (it == services_.end()) return false;
  const ServiceEntry* e = it->second.get();
  for (const Frontend& f : e->source.frontends) {
    const std::tuple<IpAddress, uint16_t, Protocol> k{f.address, f.port, f.protocol};
    frontends_.erase({f.address, f.port, f.protocol});
    retire(std::move(ownedFrontends_[k]));
    ownedFrontends_.erase(k);
    addressRef(f, -1);
  }
  for (const BackendRef& b : e->backends) backends_.release(b.id);
  byId_.erase(e->id);
  retire(std::move(it->second));
  services_.erase(it);
  ++publications_;
  return true;
}

Result<void> ServiceTables::sync(const ServiceTable& table) {
  std::vector<ServiceKey> gone;
  for (const auto& [key, e] : services_) {
    if (table.find(key) == nullptr) gone.push_back(key);
  }
  for (const ServiceKey& k : gone) erase(k);
  std::vector<const Service*> pending;
  for (const auto& [key, s] : table) pending.push_back(&s);
  // A frontend moving between services may be claimed by its new owner
  // before the old one lets go: retry those once the others are done.
  while (!pending.empty()) {
    std::vector<const Service*> retry;
    std::optional<Error> last;
    for (const Service* s : pending) {
      if (auto r = upsert(*s); !r) {
        if (r.error().code != ErrorCode::kAlreadyExists) return r;
        retry.push_back(s);
        last = r.error();
      }
    }
    if (retry.size() == pending.size()) return *last;
    pending = std::move(retry);
  }
  std::vector<uint32_t> inUse;
  for (const auto& [key, e] : services_) {
    for (const BackendRef& b : e->backends) inUse.push_back(b.id);
  }
  std::sort(inUse.begin(), inUse.end());
  backends_.retainOnly(inUse);
  return okResult();
}

Result<void> ServiceTables::apply(const ServiceDiff& diff) {
  for (const ServiceChange& c : diff.changes) {
    if (c.removed()) erase(c.key());
  }
  std::vector<const Service*> pending;
  for (const ServiceChange& c : diff.changes) {
    if (c.after) pending.push_back(&*c.after);
  }
  while (!pending.empty()) {
    std::vector<const Service*> retry;
    std::optional<Error> last;
    for (const Service* s : pending) {
      if (auto r = upsert(*s); !r) {
        if (r.error().code != ErrorCode::kAlreadyExists) return r;
        retry.push_back(s);
        last = r.error();
      }
    }
    if (retry.size() == pending.size()) return *last;
    pending = std::move(retry);
  }
  return okResult();
}

}  // namespace sluice::dpdk
