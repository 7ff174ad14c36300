// ServiceTables: the service model compiled into what the DPDK workers read
// per packet, and published to them with RCU (rcu.h) by the control thread.
//
// Read side (workers): frontend(address, port, protocol) -> FrontendEntry ->
// its ServiceEntry, whose SelectionSets say which backends take new flows
// (Service::backendSet, the one rule every mode uses) and, for Maglev, the
// slot table; address(a) says whether the node answers ARP/ND for `a`.
// Every object a reader reaches is immutable once published.
//
// Write side (control thread): upsert/erase/sync/apply turn Services into
// new entries, publish them with one pointer store each (ConcurrentIndex),
// and retire the entries they replace; the memory goes back once every
// worker has passed a quiescent state. A changed service touches only its
// own entries (DESIGN.md: incremental apply), and a worker never waits.
//
// Ids: a service's id is a hash of its key (stable across restarts, so
// flows and affinity entries a restarted process re-adopts still name it);
// backends take their ids from the BackendRegistry.
//
// Threading: reads from workers (between quiescent states); writes and the
// introspection accessors from the control thread only.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "dataplane/dpdk/backend_registry.h"
#include "dataplane/dpdk/concurrent_index.h"
#include "dataplane/dpdk/forwarding.h"
#include "dataplane/dpdk/rcu.h"
#include "dataplane/flow.h"
#include "dataplane/maglev.h"
#include "dataplane/service.h"
#include "dataplane/service_diff.h"

namespace sluice::dpdk {

// CRC32-C (SSE4.2) over bytes, the hash of every per-packet table here.
uint32_t crc32c(const void* data, size_t size, uint32_t seed);

// The hash that picks a backend for a new flow (Maglev slot or random
// index): CRC32-C (seed 0x5eed) over source, destination, ports and
// protocol, so every node running the DPDK mode maps a flow to the same
// Maglev slot. The bytes: each address as 16 (IPv4 zero-padded), the two
// ports in network order, the protocol number: 37 in all.
uint32_t selectionHash(const FlowTuple& tuple);

struct FrontendKey {
  IpAddress address;
  uint16_t port = 0;  // host order
  Protocol protocol = Protocol::kTcp;
  friend bool operator==(const FrontendKey&, const FrontendKey&) = default;
};
struct FrontendKeyHash {
  uint64_t operator()(const FrontendKey& k) const;
};
struct AddressHash {
  uint64_t operator()(const IpAddress& a) const;
};

struct BackendRef {
  IpAddress address;
  uint16_t port = 0;
  uint16_t weight = 1;
  uint32_t id = 0;  // BackendRegistry id
  BackendState state = BackendState::kActive;
  bool nodeLocal = false;
};

// a % d for 32-bit a and a fixed d > 0, as two multiplications instead of
// a division (Lemire, Kaser & Kurz, "Faster remainder by direct
// computation", 2019): exact for every a.
__extension__ typedef unsigned __int128 FastModWide;  // GCC/Clang; not ISO C++

class FastMod {
 public:
  FastMod() = default;
  explicit FastMod(uint32_t d) : d_(d), m_(d == 0 ? 0 : UINT64_MAX / d + 1) {}
  uint32_t of(uint32_t a) const {
    const uint64_t low = m_ * a;
    return static_cast<uint32_t>((static_cast<FastModWide>(low) * d_) >> 64);
  }

 private:
  uint64_t d_ = 0;
  uint64_t m_ = 0;
};

// The backends new flows of one address family and locality go to.
struct SelectionSet {
  std::vector<uint32_t> members;    // indices into ServiceEntry::backends
  std::vector<uint32_t> memberIds;  // their backend ids, sorted (affinity checks)
  // Maglev only: slot -> index into ServiceEntry::backends (M slots).
  std::vector<uint32_t> maglev;
  std::optional<MaglevTable> maglevTable;  // the builder's table, for rebuild()
  FastMod membersMod, maglevMod;  // % members.size(), % maglev.size()
  bool terminatingFallback = false;        // members are terminating: none is ready

  bool empty() const { return members.empty(); }
  bool hasMember(uint32_t backendId) const;
};

struct ServiceEntry {
  uint32_t id = 0;
  Service source;  // what it was compiled from (describe, and change detection)
  bool affinity = false;
  uint64_t affinityTimeoutNs = 0;
  bool maglev = false;
  // Direct server return (Service annotation sluice.io/dpdk-forwarding:
  // dsr): new flows from the uplink to a LoadBalancer or externalIP
  // frontend whose backend is remote and serves on the frontend's port are
  // encapsulated (frame_ops.h encapsulate()), not NATed.
  bool dsr = false;
  std::vector<BackendRef> backends;
  // [family: 0 IPv4, 1 IPv6][local]; the local sets exist only when a
  // Local policy applies to some frontend.
  std::array<std::array<SelectionSet, 2>, 2> sets;
  // Per family: some backend is active or terminating. With a Local
  // policy and an empty local set, that tells no_local_backend (drop)
  // from no_backend (refuse).
  std::array<bool, 2> hasBackends{};
  uint32_t maglevChangedSlots = 0;  // slots the last rebuild moved

  const SelectionSet& set(IpFamily family, bool local) const {
    return sets[family == IpFamily::kV6][local];
  }
};

struct FrontendEntry {
  FrontendKey key;
  Frontend frontend;
  const ServiceEntry* service = nullptr;
};

// An address the node answers ARP / neighbor solicitations for.
struct AddressEntry {
  IpAddress key;
  bool announceUplink = false;  // a LoadBalancer or externalIP frontend: answered on the uplink too
};

class ServiceTables {
 public:
  ServiceTables(Rcu& rcu, BackendRegistry& backends);
  // Readers must have stopped.
  ~ServiceTables();
  ServiceTables(const ServiceTables&) = delete;
  ServiceTables& operator=(const ServiceTables&) = delete;

  // Readers.
  const FrontendEntry* frontend(const IpAddress& a, uint16_t port, Protocol p) const {
    return frontends_.find(FrontendKey{a, port, p});
  }
  const AddressEntry* address(const IpAddress& a) const { return addresses_.find(a); }
  const BackendRegistry& backends() const { return backends_; }

  // Writer. upsert() fails, changing nothing, on an invalid service or a
  // frontend another service owns (kAlreadyExists), or when backend ids
  // run out.
  Result<void> upsert(const Service& service);
  bool erase(const ServiceKey& key);
  // Makes the tables hold exactly `table`; unchanged services are not
  // republished, and backend ids nobody uses any more (left by an earlier
  // process) are released.
  Result<void> sync(const ServiceTable& table);
  // The ProxyMode::apply contract: changes before a failing one stay.
  Result<void> apply(const ServiceDiff& diff);

  // Writer-side introspection.
  const std::map<ServiceKey, std::unique_ptr<ServiceEntry>>& services() const { return services_; }
  const ServiceEntry* serviceById(uint32_t id) const;
  size_t frontendCount() const { return frontends_.size(); }
  size_t backendCount() const;
  // Bytes of the published structures (indices, entries, Maglev slots).
  size_t memoryBytes() const;
  uint64_t publications() const { return publications_; }

 private:
  Result<std::unique_ptr<ServiceEntry>> compile(const Service& s, const ServiceEntry* previous);
  void retire(std::unique_ptr<ServiceEntry> e);
  void retire(std::unique_ptr<FrontendEntry> e);
  void addressRef(const Frontend& f, int delta);

  Rcu& rcu_;
  BackendRegistry& backends_;
  ConcurrentIndex<FrontendEntry, FrontendKey, FrontendKeyHash> frontends_;
  ConcurrentIndex<AddressEntry, IpAddress, AddressHash> addresses_;
  std::map<ServiceKey, std::unique_ptr<ServiceEntry>> services_;
  std::map<uint32_t, const ServiceEntry*> byId_;
  // Owned frontend entries, by key; the index holds the same pointers.
  std::map<std::tuple<IpAddress, uint16_t, Protocol>, std::unique_ptr<FrontendEntry>>
      ownedFrontends_;
  struct AddressRefs {
    int frontends = 0;
    int announced = 0;
    std::unique_ptr<AddressEntry> entry;
  };
  std::map<IpAddress, AddressRefs> addressRefs_;
  uint64_t publications_ = 0;
};

}  // namespace sluice::dpdk
