#include "control/controllers/cluster/node_ipam.h"

#include <arpa/inet.h>

#include <algorithm>
#include <optional>

#include "dataplane/log.h"

namespace sluice::controllers {
namespace {

// Kubernetes refuses cluster CIDR / node mask pairs with more than 2^16
// blocks (cidrset.ErrCIDRSetSubNetTooBig); a block per node, far more
// nodes than one server handles.
constexpr int kMaxBlockBits = 16;
// /31 and /32 blocks leave no pod address next to the gateway sluice-ipam
// takes; /30 is the smallest block that still holds one pod.
constexpr int kMaxMaskSize = 30;

struct V4Prefix {
  uint32_t addr = 0;  // host byte order
  int len = 0;
};

std::optional<V4Prefix> parseV4Prefix(const std::string& s) {
  size_t slash = s.find('/');
  if (slash == std::string::npos) return std::nullopt;
  std::string len = s.substr(slash + 1);
  if (len.empty() || len.size() > 2 || len.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  in_addr a{};
  if (::inet_pton(AF_INET, s.substr(0, slash).c_str(), &a) != 1) return std::nullopt;
  V4Prefix p{ntohl(a.s_addr), std::stoi(len)};
  if (p.len > 32) return std::nullopt;
  return p;
}

uint32_t maskOf(int len) { return len <= 0 ? 0 : ~uint32_t{0} << (32 - len); }

std::string formatV4(uint32_t addr, int len) {
  in_addr a{htonl(addr)};
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a, text, sizeof text);
  return std::string(text) + "/" + std::to_string(len);
}

std::string podCidrOf(const Json& node) { return node.value("/spec/podCIDR"_json_pointer, std::string()); }

}  // namespace

Result<NodeCidrSet> NodeCidrSet::create(const std::string& clusterCidr, int maskSize) {
  if (clusterCidr.find(':') != std::string::npos) {
    return Error::invalid("--cluster-cidr " + clusterCidr + ": IPv6 cluster CIDRs are not supported (IPv4 only)");
  }
  auto p = parseV4Prefix(clusterCidr);
  if (!p) return Error::invalid("--cluster-cidr " + clusterCidr + ": expected an IPv4 CIDR such as 10.244.0.0/16");
  if ((p->addr & ~maskOf(p->len)) != 0) {
    return Error::invalid("--cluster-cidr " + clusterCidr + ": host bits set (did you mean " +
                          formatV4(p->addr & maskOf(p->len), p->len) + "?)");
  }
  if (maskSize < p->len || maskSize > kMaxMaskSize) {
    return Error::invalid("--node-cidr-mask-size " + std::to_string(maskSize) + ": must be between the cluster CIDR's " +
                          std::to_string(p->len) + " and " + std::to_string(kMaxMaskSize));
  }
  if (maskSize - p->len > kMaxBlockBits) {
    return Error::invalid("--node-cidr-mask-size " + std::to_string(maskSize) + ": cluster CIDR " + clusterCidr +
                          " would hold more than 2^" + std::to_string(kMaxBlockBits) +
                          " node CIDRs; use a larger mask size or a smaller cluster CIDR");
  }
  NodeCidrSet s;
  s.clusterCidr_ = clusterCidr;
  s.base_ = p->addr;
  s.prefix_ = p->len;
  s.maskSize_ = maskSize;
  s.owners_.assign(size_t{1} << (maskSize - p->len), std::string());
  return s;
}

std::string NodeCidrSet::blockAt(uint32_t index) const {
  return formatV4(base_ + (index << (32 - maskSize_)), maskSize_);
}

Result<std::string> NodeCidrSet::allocateNext(const std::string& node) {
  if (used_ == owners_.size()) {
    return Error::exhausted("no free /" + std::to_string(maskSize_) + " left in cluster CIDR " + clusterCidr_ + " (" +
                            std::to_string(owners_.size()) + " allocated)");
  }
  const auto n = static_cast<uint32_t>(owners_.size());
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t idx = (cursor_ + i) % n;
    if (!owners_[idx].empty()) continue;
    owners_[idx] = node;
    ++used_;
    cursor_ = (idx + 1) % n;
    return blockAt(idx);
  }
  return Error::internal("node CIDR set: used count and blocks disagree");
}

Result<void> NodeCidrSet::occupy(const std::string& cidr, const std::string& node) {
  auto p = parseV4Prefix(cidr);
  if (!p) return Error::invalid("podCIDR " + cidr + ": not an IPv4 CIDR");
  // Both ranges as [first, last] in 64 bits so /0 does not overflow.
  uint64_t first = p->addr & maskOf(p->len);
  uint64_t last = first + (uint64_t{1} << (32 - p->len)) - 1;
  uint64_t clusterFirst = base_;
  uint64_t clusterLast = clusterFirst + (uint64_t{1} << (32 - prefix_)) - 1;
  if (last < clusterFirst || first > clusterLast) return okResult();
  first = std::max(first, clusterFirst);
  last = std::min(last, clusterLast);
  auto from = static_cast<uint32_t>((first - clusterFirst) >> (32 - maskSize_));
  auto to = static_cast<uint32_t>((last - clusterFirst) >> (32 - maskSize_));
  for (uint32_t i = from; i <= to; ++i) {
    if (!owners_[i].empty() && owners_[i] != node) {
      return Error::exists("podCIDR " + cidr + " overlaps " + blockAt(i) + ", already node " + owners_[i] + "'s");
    }
  }
  for (uint32_t i = from; i <= to; ++i) {
    if (owners_[i].empty()) ++used_;
    owners_[i] = node;
  }
  return okResult();
}

void NodeCidrSet::release(const std::string& node) {
  for (auto& owner : owners_) {
    if (owner == node) {
      owner.clear();
      --used_;
    }
  }
}

std::vector<std::string> NodeCidrSet::heldBy(const std::string& node) const {
  std::vector<std::string> out;
  for (uint32_t i = 0; i < owners_.size(); ++i) {
    if (owners_[i] == node) out.push_back(blockAt(i));
  }
  return out;
}

Result<std::unique_ptr<NodeIpamController>> NodeIpamController::create(const ControllerContext& ctx,
                                                                       const NodeIpamOptions& options) {
  auto cidrs = NodeCidrSet::create(options.clusterCidr, options.nodeCidrMaskSize);
  if (!cidrs) return cidrs.error();
  return std::unique_ptr<NodeIpamController>(new NodeIpamController(ctx, std::move(*cidrs)));
}

NodeIpamController::NodeIpamController(const ControllerContext& ctx, NodeCidrSet cidrs)
    : QueueController(ctx, "nodeipam"), nodes_(ctx.informers.get(client::resources::kNodes)), cidrs_(std::move(cidrs)) {
  nodes_.addHandlers({
      [this](const client::ObjectPtr& n) { enqueue(client::nameOf(*n)); },
      [this](const client::ObjectPtr& old, const client::ObjectPtr& n) {
        if (podCidrOf(*n).empty() || podCidrOf(*n) != podCidrOf(*old)) enqueue(client::nameOf(*n));
      },
      [this](const client::ObjectPtr& n) { onDelete(n); },
  });
}

void NodeIpamController::start() {
  {
    std::lock_guard lock(mu_);
    recordCached();
  }
  QueueController::start();
}

void NodeIpamController::recordCached() {
  for (const auto& node : nodes_.list()) {
    std::string cidr = podCidrOf(*node);
    if (cidr.empty()) continue;
    std::string name = client::nameOf(*node);
    auto r = cidrs_.occupy(cidr, name);
    if (r) continue;
    if (!reported_.insert(name + "|" + cidr).second) continue;
    log::warning("nodeipam", "node's podCIDR conflicts", {{"node", name}, {"err", r.error().message}});
  }
}

void NodeIpamController::onDelete(const client::ObjectPtr& node) {
  std::string name = client::nameOf(*node);
  bool freed = false;
  {
    std::lock_guard lock(mu_);
    size_t before = cidrs_.used();
    cidrs_.release(name);
    freed = cidrs_.used() < before;
  }
  // A freed block may be what a waiting node needs.
  if (freed) enqueueWaiting();
}

void NodeIpamController::enqueueWaiting() {
  for (const auto& node : nodes_.list()) {
    if (podCidrOf(*node).empty()) enqueue(client::nameOf(*node));
  }
}

Result<void> NodeIpamController::reconcile(const std::string& key) {
  const std::string name = splitKey(key).second;
  auto node = nodes_.get(name);
  std::string cidr;
  {
    std::lock_guard lock(mu_);
    if (!node) {
      cidrs_.release(name);
      exhausted_.erase(name);
      return okResult();
    }
    std::string have = podCidrOf(*node);
    if (!have.empty()) {
      // Set by its agent, by us earlier, or by hand: it is what the node's
      // pods use, so it is what the set records.
      auto held = cidrs_.heldBy(name);
      if (held.size() != 1 || held.front() != have) {
        cidrs_.release(name);
        recordCached();
      }
      return okResult();
    }
    // An allocation whose write the cache has not shown yet is reused, so
    // a stale event never gets the node a second block.
    auto held = cidrs_.heldBy(name);
    if (!held.empty()) {
      cidr = held.front();
    } else {
      recordCached();
      auto next = cidrs_.allocateNext(name);
      if (!next && next.error().code == ErrorCode::kResourceExhausted) {
        if (exhausted_.insert(name).second) {
          log::warning("nodeipam", "no pod CIDR left; the node stays without spec.podCIDR until one is released",
                       {{"node", name}, {"err", next.error().message}});
        }
        enqueueAfter(name, kExhaustedRetry);
        return okResult();
      }
      if (!next) return next.error();
      cidr = *next;
    }
  }
  // An update (compare-and-swap on the cached resourceVersion), not a
  // patch: a podCIDR its agent set meanwhile must not be overwritten; the
  // conflict retries, and the retry sees the agent's CIDR.
  Json next = *node;
  next["spec"]["podCIDR"] = cidr;
  next["spec"]["podCIDRs"] = Json::array({cidr});
  auto r = ctx_.client.update(client::resources::kNodes, "", next);
  if (!r) {
    if (r.error().code == ErrorCode::kAborted) return r.error();  // keep the block for the retry
    std::lock_guard lock(mu_);
    cidrs_.release(name);
    if (r.error().code == ErrorCode::kNotFound) return okResult();
    return Error{r.error().code, "node " + name + ": setting podCIDR " + cidr + ": " + r.error().message};
  }
  {
    std::lock_guard lock(mu_);
    exhausted_.erase(name);
  }
  log::info(0, "nodeipam", "assigned podCIDR", {{"node", name}, {"podCIDR", cidr}});
  return okResult();
}

}  // namespace sluice::controllers
