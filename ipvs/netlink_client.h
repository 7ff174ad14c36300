// NetlinkClient: the kernel's IPVS tables through the "IPVS" generic-netlink family
// (<linux/ip_vs.h>), over ONE persistent socket whose family id is resolved once at create().
//
// Writes come one at a time (each a batch of one) or as a Batch: many service and destination
// changes sent pipelined, one round trip per window of up to a few thousand (netlink_channel.h),
// every request acknowledged and its error matched back to it. The kernel applies each request
// on its own - a failed one does not stop the rest - so a BatchResult lists every failure, each
// naming its object: "service 10.96.0.10:53/UDP: destination 10.244.1.7:53: EEXIST (File
// exists)".
//
// Reads: services and a service's destinations are NLM_F_DUMP dumps with their 64-bit counters
// and, for destinations, active/inactive connection counts. One dump at a time per socket (the
// kernel answers a second concurrent one with EBUSY), so adopting N services' destinations costs
// N+1 round trips.
//
// Kernel behaviour worth knowing (6.1 and 6.12, ip_vs_ctl.c):
//  - a missing service is ESRCH (kNotFound); a missing destination ENOENT (kNotFound); an
//    existing one EEXIST (kAlreadyExists); an unknown scheduler or persistence engine ENOENT
//    on add/update (kInvalidArgument here: it is the request that is wrong); lower threshold
//    above upper ERANGE; a destination of the other family with any method but tunnel EINVAL.
//  - dumping the destinations of a service that does not exist is an empty list, not an error.
//  - an IPv4 persistence netmask travels as a mask in network order, IPv6 as a prefix length;
//    ServiceKey/Service hide that.
//
// Not thread-safe: one owner (the IPVS mode's sync thread). Needs CAP_NET_ADMIN.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/result.h"
#include "ipvs/ipvs_types.h"
#include "ipvs/netlink_channel.h"

namespace sluice::ipvs {

// An ordered list of changes for NetlinkClient::apply(). Holds values only; encoding happens
// when it is applied, so a Batch can be built without a socket (and in unit tests).
class Batch {
 public:
  enum class Op : uint8_t {
    kAddService,
    kUpdateService,
    kDeleteService,
    kAddDestination,
    kUpdateDestination,
    kDeleteDestination,
  };
  struct Change {
    Op op;
    Service service;          // the key alone for kDeleteService and destination changes
    Destination destination;  // destination changes only
  };

  void addService(const Service& service) { changes_.push_back({Op::kAddService, service, {}}); }
  void updateService(const Service& service) {
    changes_.push_back({Op::kUpdateService, service, {}});
  }
  void deleteService(const ServiceKey& key) { changes_.push_back(keyed(Op::kDeleteService, key)); }
  void addDestination(const ServiceKey& key, const Destination& dest) {
    changes_.push_back(keyed(Op::kAddDestination, key, dest));
  }
  void updateDestination(const ServiceKey& key, const Destination& dest) {
    changes_.push_back(keyed(Op::kUpdateDestination, key, dest));
  }
  // Only the address and port identify a destination.
  void deleteDestination(const ServiceKey& key, const IpAddress& address, uint16_t port);

  size_t size() const { return changes_.size(); }
  bool empty() const { return changes_.empty(); }
  void clear() { changes_.clear(); }
  const std::vector<Change>& changes() const { return changes_; }
  // A change that names its service by key alone.
  static Change keyed(Op op, const ServiceKey& key, const Destination& dest = {});

  // "service 10.96.0.10:53/UDP: destination 10.244.1.7:53": how errors name change i.
  std::string describe(size_t i) const;

 private:
  std::vector<Change> changes_;
};

struct BatchResult {
  size_t applied = 0;  // changes the kernel acknowledged
  // Failed changes by index into the Batch, each error naming its object.
  std::vector<std::pair<size_t, Error>> failures;

  bool ok() const { return failures.empty(); }
  // The first failure, with "(and N more)" when there were others; ok when none.
  Result<void> status() const;
};

class NetlinkClient {
 public:
  // Opens the socket and resolves the IPVS family: kUnavailable "IPVS generic netlink family
  // not found (is ip_vs loaded?)" when the kernel lacks it.
  static Result<std::unique_ptr<NetlinkClient>> create(NetlinkChannel::Options options = {});

  // Pipelined writes: see the file comment. An Error return (rather than failures in the
  // result) means the transport failed and the kernel's state is unknown: resync from a dump.
  Result<BatchResult> apply(const Batch& batch);

  // Single changes, each one round trip.
  Result<void> addService(const Service& service);
  Result<void> updateService(const Service& service);
  Result<void> deleteService(const ServiceKey& key);
  Result<void> addDestination(const ServiceKey& key, const Destination& dest);
  Result<void> updateDestination(const ServiceKey& key, const Destination& dest);
  Result<void> deleteDestination(const ServiceKey& key, const IpAddress& address, uint16_t port);

  // Reads.
  Result<Service> getService(const ServiceKey& key);  // kNotFound when absent
  Result<std::vector<Service>> listServices();
  Result<std::vector<Destination>> listDestinations(const ServiceKey& key);
  Result<Info> info();
  Result<Timeouts> timeouts();
  Result<void> setTimeouts(const Timeouts& timeouts);
  // Deletes every service of this network namespace (IPVS_CMD_FLUSH).
  Result<void> flush();

  const NetlinkCounters& counters() const { return channel_->counters(); }
  // Requests per sendmsg at most (from the socket's receive buffer).
  size_t window() const { return channel_->window(); }
  uint16_t familyId() const { return family_; }

 private:
  NetlinkClient(std::unique_ptr<NetlinkChannel> channel, uint16_t family)
      : channel_(std::move(channel)), family_(family) {}
  Result<void> single(Batch batch);
  Result<void> simpleCommand(uint8_t cmd, const std::string& what,
                             const NetlinkChannel::Encoder& attrs);

  std::unique_ptr<NetlinkChannel> channel_;
  uint16_t family_;
};

}  // namespace sluice::ipvs
