// ConntrackClient: lists and deletes conntrack entries over ctnetlink (NETLINK_NETFILTER,
// NFNL_SUBSYS_CTNETLINK), for the IPVS mode's UDP backend removal. A UDP "connection" has no
// end, so a client that keeps sending to a service would stay pinned to a removed backend by its
// conntrack entry (and IPVS's own, which net.ipv4.vs.expire_nodest_conn=1 drops): kube-proxy runs
// `conntrack -D -p udp --orig-dst VIP --dst-nat BACKEND`; this is that, on one socket.
//
// How: a dump narrowed by the kernel (CTA_FILTER, kernel >= 5.8: the filter's fields travel as
// a tuple plus flag bits), matched again here (older kernels ignore CTA_FILTER and dump it
// all), then one pipelined batch of IPCTNL_MSG_CT_DELETE by original tuple and conntrack id -
// the id guards against deleting a newer entry that reuses the tuple. An entry gone before its
// delete arrives (ENOENT) is not an error.
//
// Not thread-safe: one owner. Needs CAP_NET_ADMIN and nf_conntrack_netlink.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/ip_address.h"
#include "dataplane/result.h"
#include "ipvs/netlink_channel.h"

namespace sluice::ipvs {

struct ConntrackTuple {
  IpAddress source;
  IpAddress destination;
  uint16_t sourcePort = 0;       // host order; 0 for protocols without ports
  uint16_t destinationPort = 0;  // host order
};

struct ConntrackEntry {
  Protocol protocol = Protocol::kUdp;
  ConntrackTuple original;  // as the client sent it: destination is the service address
  ConntrackTuple reply;     // as the backend answers: source is the backend after DNAT
  uint32_t id = 0;          // the kernel's conntrack id (CTA_ID)
};

// Which entries to act on; unset fields match anything. At least one address must be set, so
// a filter can never mean "every UDP entry of the node".
struct ConntrackFilter {
  IpFamily family = IpFamily::kV4;
  Protocol protocol = Protocol::kUdp;
  std::optional<IpAddress> originalDestination;  // the service address (VIP)
  std::optional<uint16_t> originalDestinationPort;
  std::optional<IpAddress> replySource;  // the backend the entry was NATed to
  std::optional<uint16_t> replySourcePort;

  bool matches(const ConntrackEntry& entry) const;
  // "UDP to 10.96.0.10:53 via 10.244.1.7": how errors name it.
  std::string toString() const;
};

class ConntrackClient {
 public:
  static Result<std::unique_ptr<ConntrackClient>> create(NetlinkChannel::Options options = {});

  Result<std::vector<ConntrackEntry>> list(const ConntrackFilter& filter);
  // Deletes the matching entries; returns how many the kernel deleted.
  Result<size_t> remove(const ConntrackFilter& filter);

  const NetlinkCounters& counters() const { return channel_->counters(); }

 private:
  explicit ConntrackClient(std::unique_ptr<NetlinkChannel> channel)
      : channel_(std::move(channel)) {}
  std::unique_ptr<NetlinkChannel> channel_;
};

}  // namespace sluice::ipvs
