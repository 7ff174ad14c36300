// Node IPAM, as kube-controller-manager's range allocator
// (--allocate-node-cidrs --cluster-cidr=10.244.0.0/16
// --node-cidr-mask-size=24): every Node without spec.podCIDR gets the next
// free block of the cluster CIDR, written as spec.podCIDR and
// spec.podCIDRs; a deleted Node's block is free again.
//
// Restart safety: the blocks in use are the Nodes' podCIDRs, so start()
// records every cached Node's podCIDR (the informers have synced by then)
// before any allocation, and each allocation first records the podCIDRs the
// cache holds (a Node whose agent brought its own --pod-cidr takes its block
// out of the pool even before its own event is handled). A podCIDR outside
// the cluster CIDR is left alone, as Kubernetes does.
//
// Exhaustion has no Event to post here: the node is left without a podCIDR,
// the reason is logged once per node, and the node is retried every
// kExhaustedRetry and at once whenever a block is released.
#pragma once

#include <cstdint>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "control/controllers/cluster/cluster_util.h"
#include "control/controllers/controller.h"

namespace sluice::controllers {

struct NodeIpamOptions {
  // --cluster-cidr (IPv4); empty: no allocation (agents bring --pod-cidr).
  std::string clusterCidr;
  // --node-cidr-mask-size.
  int nodeCidrMaskSize = 24;
};

// The blocks of one cluster CIDR and the node holding each (CidrSet in
// Kubernetes). Hands out blocks from a cursor that moves past the last one
// handed out, so a block just released is not the very next one reused
// (routes to it may still exist on other nodes). Not thread-safe.
class NodeCidrSet {
 public:
  // Errors name the flag: --cluster-cidr (malformed, IPv6, host bits set)
  // or --node-cidr-mask-size (not in [cluster prefix, 30], or more than
  // 2^16 blocks, Kubernetes' limit).
  static Result<NodeCidrSet> create(const std::string& clusterCidr, int maskSize);

  // The next free block for `node`, "a.b.c.d/len"; kResourceExhausted when
  // every block is taken.
  Result<std::string> allocateNext(const std::string& node);
  // Records `cidr` (any prefix length) as `node`'s: every block it overlaps.
  // A CIDR outside the cluster CIDR is ignored (ok). kAlreadyExists (naming
  // the holder) if a block is another node's; nothing is recorded then.
  // kInvalidArgument if `cidr` is malformed.
  Result<void> occupy(const std::string& cidr, const std::string& node);
  // Frees every block `node` holds.
  void release(const std::string& node);
  // The blocks `node` holds, as CIDRs, lowest first.
  std::vector<std::string> heldBy(const std::string& node) const;

  size_t size() const { return owners_.size(); }
  size_t used() const { return used_; }
  const std::string& clusterCidr() const { return clusterCidr_; }
  int maskSize() const { return maskSize_; }

 private:
  std::string blockAt(uint32_t index) const;

  std::string clusterCidr_;
  uint32_t base_ = 0;  // network address, host byte order
  int prefix_ = 0;
  int maskSize_ = 0;
  std::vector<std::string> owners_;  // per block: the node name, "" when free
  size_t used_ = 0;
  uint32_t cursor_ = 0;
};

class NodeIpamController final : public QueueController {
 public:
  // A release re-queues waiting nodes at once; this only bounds the wait
  // should that be missed (a Node's podCIDR removed by hand, say).
  static constexpr std::chrono::seconds kExhaustedRetry{5};

  // Validates the options (see NodeCidrSet::create).
  static Result<std::unique_ptr<NodeIpamController>> create(const ControllerContext& ctx,
                                                            const NodeIpamOptions& options);
  const char* name() const override { return "nodeipam"; }
  void start() override;

 protected:
  Result<void> reconcile(const std::string& key) override;

 private:
  NodeIpamController(const ControllerContext& ctx, NodeCidrSet cidrs);
  void onDelete(const client::ObjectPtr& node);
  // Records the podCIDR of every cached Node (mu_ held).
  void recordCached();
  // Enqueues every cached Node without a podCIDR.
  void enqueueWaiting();

  client::Informer& nodes_;
  std::mutex mu_;
  NodeCidrSet cidrs_;
  // Conflicts already logged ("node|cidr"), so a retry does not repeat them.
  std::set<std::string> reported_;
  // Nodes told the cluster CIDR is exhausted, until they get a block.
  std::set<std::string> exhausted_;
};

}  // namespace sluice::controllers
