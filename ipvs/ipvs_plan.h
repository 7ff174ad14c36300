// The IPVS mode's translation, with no kernel in sight: a sluice Service to
// the virtual servers it needs (one per frontend: address, port, protocol),
// and one virtual server's programmed state plus what it should be to the
// netlink changes that get it there. IpvsMode (ipvs_mode.h) owns the state
// and the socket; everything here is pure, so the unit suite checks the
// diff-to-batch rules and the vm suite only proves the kernel's side.
//
// Rules (DESIGN.md semantics, kube-proxy's IPVS mode where it is right):
//  - NodePort is one virtual server per node address (not fwmark: see
//    docs/lab.md for why), so eTP=Local can give the NodePort, LB and
//    externalIP virtual servers the node-local set and the ClusterIP the
//    cluster-wide one.
//  - Destinations come from Service::backendSet() (the one home of
//    eligibility): the active ones with their weight; the terminating ones
//    at weight 0 (existing connections stay, no new ones) unless nothing is
//    active, when they take new flows with their weight (Kubernetes'
//    terminating fallback).
//  - A destination that leaves the set is drained, not deleted, for TCP and
//    SCTP: weight 0 until its established connections are gone or the hard
//    cap passes (IpvsMode polls only while something drains: the kernel has
//    no event for a connection count reaching zero). For UDP it is deleted
//    at once and its conntrack entries are flushed (a UDP "connection" never
//    ends by itself), and net.ipv4.vs.expire_nodest_conn=1 drops IPVS's own
//    entries to it on their next packet.
//  - Schedulers: the Service's sluice.io/ipvs-scheduler (or sluice.dev/)
//    annotation, else Maglev -> mh, else the mode's default. mh and sh get
//    their fallback flag (a weight-0 destination keeps its buckets in the
//    kernel; without the flag new flows hashing there would be dropped), mh
//    also hashes the source port when mhPort is set.
//  - A frontend with no destination (none eligible, none draining) has no
//    virtual server: the nftables table refuses its new flows (TCP RST,
//    ICMP port unreachable) for pods and the node alike.
//  - sessionAffinity ClientIP -> a persistent service with the affinity
//    timeout (per client address: the full /32 or /128).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dataplane/service.h"
#include "ipvs/conntrack_client.h"
#include "ipvs/netlink_client.h"

namespace sluice::ipvs {

using Clock = std::chrono::steady_clock;

// The schedulers a Service may name: kube-proxy's documented set plus sed
// and nq. Any other name is refused with a warning (the kernel would answer
// ENOENT, failing the whole service).
bool knownScheduler(const std::string& name);

struct PlanOptions {
  std::string defaultScheduler = "rr";  // --ipvs-scheduler
  bool mhPort = true;                   // --ipvs-mh-port: mh hashes the source port too
  // --ipvs-drain-timeout: the hard cap on draining a removed TCP/SCTP
  // destination (kube-proxy has none: #92019, #111903 leaked them).
  std::chrono::seconds drainTimeout{300};
};

using EndpointKey = std::pair<IpAddress, uint16_t>;

// What one frontend needs in the kernel.
struct VirtualServer {
  Service svc;               // ipvs::Service: key, scheduler, flags, persistence
  sluice::ServiceKey owner;  // the service port it serves
  FrontendScope scope = FrontendScope::kClusterIp;
  std::map<EndpointKey, Destination> dests;
};

// The virtual servers of `service`, one per frontend. `warning`, when not
// null, gets what was ignored (an unknown scheduler annotation).
std::vector<VirtualServer> virtualServersOf(const sluice::Service& service,
                                            const PlanOptions& options,
                                            std::string* warning = nullptr);

struct DestState {
  Destination dest;
  bool draining = false;  // left the desired set; deleted once drained
  Clock::time_point deadline{};
};

// One virtual server as programmed (or adopted from a dump: owner empty).
struct VsState {
  Service svc;
  sluice::ServiceKey owner;
  FrontendScope scope = FrontendScope::kClusterIp;
  std::map<EndpointKey, DestState> dests;

  size_t draining() const;
};

// The changes taking `current` (nullptr: not in the kernel) to `wanted`
// (nullptr: delete it), appended to `batch`; UDP destinations deleted get a
// conntrack flush in `flushes`. Returns the state after the batch applies
// (nullopt: gone).
std::optional<VsState> reconcile(const ServiceKey& key, const VsState* current,
                                 const VirtualServer* wanted, Clock::time_point now,
                                 const PlanOptions& options, Batch& batch,
                                 std::vector<ConntrackFilter>& flushes);

// The conntrack filter for a UDP destination `dest` of virtual server `key`.
ConntrackFilter udpFlushFilter(const ServiceKey& key, const Destination& dest);

}  // namespace sluice::ipvs
