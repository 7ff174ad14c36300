// The IPVS mode's one nftables table (no iptables, no ipset): masquerade
// for eTP=Cluster traffic to NodePort/LoadBalancer/externalIP frontends,
// hairpin masquerade, loadBalancerSourceRanges and the refusal of
// frontends without an endpoint, all driven by sets whose elements are
// added and deleted one by one (never the whole table per change).
//
//   table inet sluice_ipvs[_<instance>]
//     sets  masq4/6      addr . proto . port      eTP=Cluster external frontends
//           refuse4/6    addr . proto . port      nothing takes new flows
//           hairpin4/6   addr . addr              every backend, as (b . b)
//           lbrestrict4/6 addr . proto . port     LB frontends with source ranges
//           lbsrc4/6     addr . port . prefix (interval)
//     chain guard  (filter, input, priority -10: before IPVS's LOCAL_IN hook
//                   at 98) source ranges, the refusal of new flows (TCP
//                   RST, ICMP(v6) port unreachable for UDP/SCTP), and the
//                   masquerade mark on flows to masq4/6 frontends
//     chain guard_out (filter, output, priority -150: before IPVS's
//                   LOCAL_OUT hook at -99): the TCP refusal for the node's
//                   own connections to a frontend whose backends all drain
//     chain post   (nat, postrouting, srcnat) masquerade of marked packets
//                   (IPVS sends them on with their conntrack entry when
//                   net.ipv4.vs.conntrack=1), and hairpin (source == dest,
//                   not on lo)
//
// Writes go through libnftables (nft_run_cmd_from_buffer): each call is one
// netlink transaction, so a change is applied whole or not at all. The
// chains are (re)written at create(), before any virtual server; the sets'
// elements survive an agent restart and are replaced in one transaction at
// the first full update.
//
// Not thread-safe: one owner (the IPVS datapath, under its lock).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dataplane/result.h"
#include "dataplane/service_diff.h"

struct nft_ctx;

namespace sluice::ipvs {

// The packet mark bit meaning "masquerade after IPVS": kube-proxy's
// default --iptables-masquerade-bit 14, so the two never disagree on a node
// that switches between them.
inline constexpr uint32_t kMasqueradeMark = 0x4000;

// Set name -> element texts ("10.96.0.10 . tcp . 80").
using NftElements = std::map<std::string, std::set<std::string>>;

// The elements one Service contributes.
NftElements nftElementsOf(const sluice::Service& service);

class NftTable {
 public:
  // `table`: the table's name ("sluice_ipvs"). Creates table, sets and
  // chains (rules rewritten, elements kept).
  static Result<std::unique_ptr<NftTable>> create(const std::string& table);
  ~NftTable();
  NftTable(const NftTable&) = delete;
  NftTable& operator=(const NftTable&) = delete;

  // full: the services of `diff` are everything (elements replaced in one
  // transaction); else each change's elements are updated by element.
  Result<void> apply(const ServiceDiff& diff, bool full);

  // Deletes the table (cleanup).
  static Result<void> remove(const std::string& table);

  // Transactions run and elements written, for the lab and tests.
  uint64_t transactions() const { return transactions_; }
  uint64_t elementWrites() const { return elementWrites_; }
  // Element -> services contributing it, as held now.
  const std::map<std::string, std::map<std::string, int>>& elements() const { return refs_; }

 private:
  explicit NftTable(std::string table, nft_ctx* ctx) : table_(std::move(table)), ctx_(ctx) {}
  Result<void> run(const std::string& commands);

  const std::string table_;
  nft_ctx* ctx_;
  // set -> element -> reference count (hairpin pairs are shared by services).
  std::map<std::string, std::map<std::string, int>> refs_;
  uint64_t transactions_ = 0;
  uint64_t elementWrites_ = 0;
};

}  // namespace sluice::ipvs
