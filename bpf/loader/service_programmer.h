// ServiceProgrammer: the eBPF mode's service entries. It programs the
// ServiceTable into sl_services / sl_slots / sl_backends / sl_maglev
// (bpf/abi/lb.h) and keeps a mirror of every entry it owns, so it writes
// only entries whose value differs: apply() of one changed endpoint touches
// that service's entries only (its backend, the slots that move, its
// frontends' counts, the Maglev slots MaglevBuilder::rebuild() reports).
// adopt() reads the pinned maps first, so a restart with an unchanged table
// writes nothing.
//
// Ids: service ids (30 bits) and backend ids (32 bits) are allocated
// upwards from one past the highest id found in the pinned maps, and not
// reused within a run before the space wraps, so conntrack entries naming a
// deleted backend do not resolve to a new one. After a restart an id freed
// in the previous run can come back; the datapath honours a conntrack entry
// only while its backend belongs to the packet's service, so such an entry
// at worst sends a flow to a current backend of the same frontend.
//
// Threading: none; EbpfMode serialises every call under its entries lock.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "bpf/abi/lb.h"
#include "bpf/abi/sock.h"
#include "bpf/loader/bpf_map.h"
#include "bpf/loader/lb_layout.h"
#include "bpf/loader/map_batch.h"
#include "dataplane/maglev.h"
#include "dataplane/service_diff.h"

namespace sluice::bpf {

class ServiceProgrammer {
 public:
  struct Maps {
    MapRef services, slots, backends, maglev;
  };
  // `ops` counts writes and deletes (stats' map.writes / map.deletes).
  ServiceProgrammer(Maps maps, MapOpCounters* ops);

  // Reads the pinned maps, adopts what they hold as the programmed state,
  // then converges on `table`: writes what differs, deletes entries no
  // service of `table` owns. Every service is attempted; the first error
  // is returned.
  Result<void> adopt(const ServiceTable& table);
  // Removals first (a frontend moving between services is free before its
  // new owner writes it), then additions and updates. On an error the
  // failing service may be partly written; the mirror records exactly what
  // was, so a later adopt() converges.
  Result<void> apply(const ServiceDiff& diff);

  // Writes go straight to the kernel, or into `batch` while it is set (one
  // batch syscall per 8,192 entries when the caller flushes, map_batch.h).
  void setBatch(PendingWrites* batch) { batch_ = batch; }

  // Backends removed from services with UDP frontends since the last call:
  // the sockets bpf_sock connected to them are to be destroyed
  // (SocketTerminator). svc_id 0: the service itself is gone.
  std::vector<sl_sock_term_key> takeRemovedUdpBackends();

  // What is programmed, for stats and describe.
  size_t serviceCount() const { return programmed_.size(); }
  size_t frontendCount() const { return frontendOwner_.size(); }
  size_t backendCount() const;
  std::optional<uint32_t> serviceId(const ServiceKey& key) const;
  // Which service port wrote each sl_services entry.
  const std::map<sl_svc_key, ServiceKey, BytesLess>& frontendOwners() const { return frontendOwner_; }

 private:
  // One backend set's entries (bpf/abi/lb.h), as last written or adopted.
  struct SetState {
    std::map<uint32_t, uint32_t> slots;  // slot -> backend id, mirror of sl_slots
    uint16_t active = 0;                 // slots [0, active) are active backends
    // Maglev: the inner map, its contents as written, and the table they
    // came from (absent after a restart: then contents are compared).
    FileDescriptor maglevFd;
    std::vector<uint32_t> maglevIds;
    std::optional<MaglevTable> maglevTable;
  };

  struct ServiceState {
    uint32_t svcId = 0;
    std::map<EndpointKey, uint32_t> backendIds;
    std::map<uint32_t, sl_backend> backends;  // mirror of this service's sl_backends
    std::map<uint32_t, SetState> sets;        // by set id
    std::map<sl_svc_key, sl_svc_value, BytesLess> frontends;  // mirror of its sl_services
  };

  Result<void> program(const ServiceKey& key, ServiceState& st, const Service& svc);
  Result<void> programSet(ServiceState& st, const Service& svc, uint32_t setId,
                          const std::vector<uint32_t>& active,
                          const std::vector<uint32_t>& terminating,
                          const std::vector<MaglevBackend>& maglevBackends,
                          const std::vector<uint32_t>& maglevIds);
  Result<void> eraseSet(uint32_t setId, SetState& set);
  Result<void> remove(const ServiceKey& key);
  // Records the socket-termination target of a backend leaving service st
  // (svcId 0: the service itself is gone), if the service has UDP frontends.
  void queueTermination(const ServiceState& st, const sl_backend& be, uint32_t svcId);

  // Map writes in the order the datapath needs them (backends before the
  // slots naming them, frontends last); Maglev inner maps are the phase
  // kMaglevInner target of their set id.
  enum Phase : int { kBackends, kSlots, kMaglevInner, kMaglevOuter, kFrontends };
  template <typename K, typename V>
  Result<void> put(MapRef& map, Phase phase, const K& key, const V& value, uint64_t id = 0) {
    return batch_ ? batch_->update({phase, id}, map, key, value) : map.update(key, value);
  }
  template <typename K>
  Result<void> del(MapRef& map, Phase phase, const K& key) {
    return batch_ ? batch_->erase({phase, 0}, map, key) : map.erase(key);
  }
  uint32_t allocateServiceId();
  uint32_t allocateBackendId();

  MapRef services_, slots_, backends_, maglev_;
  MapOpCounters* ops_;
  PendingWrites* batch_ = nullptr;

  std::map<ServiceKey, ServiceState> programmed_;
  // Which service wrote each sl_services entry: a frontend moving between
  // services in one diff must not be deleted by the service it left.
  std::map<sl_svc_key, ServiceKey, BytesLess> frontendOwner_;
  std::map<uint32_t, ServiceKey> serviceIds_;
  uint32_t nextServiceId_ = 1;
  uint32_t nextBackendId_ = 1;
  bool backendIdsWrapped_ = false;
  std::vector<sl_sock_term_key> removedUdp_;
};

}  // namespace sluice::bpf
