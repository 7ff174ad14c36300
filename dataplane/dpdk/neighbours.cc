#include "dataplane/dpdk/neighbours.h"

#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>

namespace sluice::dpdk {

NextHops::NextHops(uint32_t capacity)
    : slots_(new std::atomic<uint64_t>[capacity]), mask_(capacity - 1) {
  for (uint32_t i = 0; i < capacity; ++i) slots_[i].store(0, std::memory_order_relaxed);
}

void NextHops::set(uint32_t backendId, const MacAddr& mac) {
  uint64_t v = uint64_t{1} << 63 | generationOf(backendId) << 48;
  for (size_t i = 0; i < 6; ++i) v |= uint64_t{mac[i]} << (40 - 8 * i);
  slots_[backendId & mask_].store(v, std::memory_order_relaxed);
}

void NextHops::clear(uint32_t backendId) {
  std::atomic<uint64_t>& slot = slots_[backendId & mask_];
  // Only this id's: the slot may hold a newer backend's hop already.
  if (((slot.load(std::memory_order_relaxed) >> 48) & kGenerationMask) == generationOf(backendId)) {
    slot.store(0, std::memory_order_relaxed);
  }
}

namespace {

// Neighbour states whose link-layer address is usable: the kernel itself
// sends on STALE, DELAY and PROBE while it re-confirms.
constexpr uint16_t kUsable =
    NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP;

// How often the set is walked: a new hop is asked for at once (track()
// wakes the thread), an unresolved one again after kRetry.
constexpr auto kRefresh = std::chrono::milliseconds(1000);
constexpr auto kRetry = std::chrono::milliseconds(50);

int family(const IpAddress& a) { return a.isV4() ? AF_INET : AF_INET6; }

}  // namespace

// One rtnetlink socket and the three requests the resolver makes.
struct NeighbourResolver::Netlink {
  nl_sock* sock = nullptr;
  ~Netlink() {
    if (sock != nullptr) nl_socket_free(sock);
  }

  struct Route {
    int oif = 0;
    std::optional<IpAddress> gateway;
  };
  struct Neighbour {
    uint16_t state = 0;
    std::optional<MacAddr> mac;
  };

  // Sends `msg` (freed here) and parses the one answer with `parse`;
  // a negative libnl error, or 0.
  template <typename Parse>
  int ask(nl_msg* msg, Parse parse) {
    if (msg == nullptr) return -NLE_NOMEM;
    const int sent = nl_send_auto(sock, msg);
    nlmsg_free(msg);
    if (sent < 0) return sent;
    nl_cb* cb = nl_cb_clone(nl_socket_get_cb(sock));
    if (cb == nullptr) return -NLE_NOMEM;
    nl_cb_set(
        cb, NL_CB_VALID, NL_CB_CUSTOM,
        [](nl_msg* m, void* arg) {
          (*static_cast<Parse*>(arg))(nlmsg_hdr(m));
          return static_cast<int>(NL_OK);
        },
        &parse);
    const int r = nl_recvmsgs(sock, cb);
    nl_cb_put(cb);
    return r;
  }

  Result<Route> route(const IpAddress& dst) {
    rtmsg rtm{};
    rtm.rtm_family = static_cast<unsigned char>(family(dst));
    rtm.rtm_dst_len = static_cast<unsigned char>(dst.bytes().size() * 8);
    nl_msg* msg = nlmsg_alloc_simple(RTM_GETROUTE, NLM_F_REQUEST);
    if (msg != nullptr && (nlmsg_append(msg, &rtm, sizeof rtm, NLMSG_ALIGNTO) < 0 ||
                           nla_put(msg, RTA_DST, static_cast<int>(dst.bytes().size()),
                                   dst.bytes().data()) < 0)) {
      nlmsg_free(msg);
      msg = nullptr;
    }
    Route out;
    const int r = ask(msg, [&](nlmsghdr* h) {
      if (h->nlmsg_type != RTM_NEWROUTE) return;
      nlattr* tb[RTA_MAX + 1] = {};
      if (nlmsg_parse(h, sizeof(rtmsg), tb, RTA_MAX, nullptr) < 0) return;
      if (tb[RTA_OIF] != nullptr) out.oif = static_cast<int>(nla_get_u32(tb[RTA_OIF]));
      if (tb[RTA_GATEWAY] != nullptr &&
          nla_len(tb[RTA_GATEWAY]) == static_cast<int>(dst.bytes().size())) {
        const auto* b = static_cast<const uint8_t*>(nla_data(tb[RTA_GATEWAY]));
        if (dst.isV4()) {
          out.gateway = IpAddress::v4({b[0], b[1], b[2], b[3]});
        } else {
          std::array<uint8_t, 16> a;
          std::memcpy(a.data(), b, 16);
          out.gateway = IpAddress::v6(a);
        }
      }
    });
    if (r < 0) return Error::unavailable(std::string("route to ") + dst.toString() + ": " +
                                         nl_geterror(r));
    return out;
  }

  // The kernel's entry for `hop` on `oif`; state 0 when it has none.
  Result<Neighbour> neighbour(int oif, const IpAddress& hop) {
    ndmsg ndm{};
    ndm.ndm_family = static_cast<unsigned char>(family(hop));
    ndm.ndm_ifindex = oif;
    nl_msg* msg = nlmsg_alloc_simple(RTM_GETNEIGH, NLM_F_REQUEST);
    if (msg != nullptr &&
        (nlmsg_append(msg, &ndm, sizeof ndm, NLMSG_ALIGNTO) < 0 ||
         nla_put(msg, NDA_DST, static_cast<int>(hop.bytes().size()), hop.bytes().data()) < 0)) {
      nlmsg_free(msg);
      msg = nullptr;
    }
    Neighbour out;
    const int r = ask(msg, [&](nlmsghdr* h) {
      if (h->nlmsg_type != RTM_NEWNEIGH) return;
      const auto* n = static_cast<const ndmsg*>(nlmsg_data(h));
      nlattr* tb[NDA_MAX + 1] = {};
      if (nlmsg_parse(h, sizeof(ndmsg), tb, NDA_MAX, nullptr) < 0) return;
      out.state = n->ndm_state;
      if (tb[NDA_LLADDR] != nullptr && nla_len(tb[NDA_LLADDR]) == 6) {
        MacAddr m;
        std::memcpy(m.data(), nla_data(tb[NDA_LLADDR]), 6);
        out.mac = m;
      }
    });
    if (r == -NLE_OBJ_NOTFOUND) return Neighbour{};
    if (r < 0) return Error::unavailable("neighbour " + hop.toString() + ": " + nl_geterror(r));
    return out;
  }

  // Asks the kernel to resolve `hop` on `oif`: a managed entry it keeps
  // reachable, or (a kernel without them) a one-off resolution.
  Result<void> request(int oif, const IpAddress& hop) {
    for (const bool managed : {true, false}) {
      ndmsg ndm{};
      ndm.ndm_family = static_cast<unsigned char>(family(hop));
      ndm.ndm_ifindex = oif;
      ndm.ndm_state = NUD_NONE;
      ndm.ndm_flags = managed ? 0 : NTF_USE;
      nl_msg* msg =
          nlmsg_alloc_simple(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE |
                                               (managed ? NLM_F_EXCL : NLM_F_REPLACE));
      if (msg == nullptr) return Error::exhausted("netlink message");
      bool ok = nlmsg_append(msg, &ndm, sizeof ndm, NLMSG_ALIGNTO) >= 0 &&
                nla_put(msg, NDA_DST, static_cast<int>(hop.bytes().size()), hop.bytes().data()) >= 0;
      if (ok && managed) ok = nla_put_u32(msg, NDA_FLAGS_EXT, NTF_EXT_MANAGED) >= 0;
      if (!ok) {
        nlmsg_free(msg);
        return Error::exhausted("netlink message");
      }
      const int sent = nl_send_auto(sock, msg);
      nlmsg_free(msg);
      if (sent < 0) return Error::unavailable(std::string("neighbour request: ") + nl_geterror(sent));
      const int r = nl_wait_for_ack(sock);
      // EXIST: an entry appeared meanwhile (ours, or the kernel's own).
      if (r >= 0 || r == -NLE_EXIST) return {};
      if (!managed || r != -NLE_INVAL) {
        return Error::unavailable("neighbour " + hop.toString() + ": " + nl_geterror(r));
      }
      // Before Linux 5.16: no managed entries; ask once now, again later.
    }
    return {};
  }
};

NeighbourResolver::NeighbourResolver(NextHops& hops, std::string tap)
    : hops_(hops), tap_(std::move(tap)) {}

Result<std::unique_ptr<NeighbourResolver>> NeighbourResolver::start(NextHops& hops,
                                                                   std::string tapInterface) {
  std::unique_ptr<NeighbourResolver> r(new NeighbourResolver(hops, std::move(tapInterface)));
  r->nl_ = std::make_unique<Netlink>();
  r->nl_->sock = nl_socket_alloc();
  if (r->nl_->sock == nullptr) return Error::exhausted("netlink socket");
  // Acks are asked for where wanted (request()); a get's answer is the ack.
  nl_socket_disable_auto_ack(r->nl_->sock);
  if (int e = nl_connect(r->nl_->sock, NETLINK_ROUTE); e < 0) {
    return Error::unavailable(std::string("rtnetlink: ") + nl_geterror(e));
  }
  // An answer that never comes must not hold the thread (and the
  // process's stop, which joins it): a round gives up after a second.
  const timeval timeout{1, 0};
  if (::setsockopt(nl_socket_get_fd(r->nl_->sock), SOL_SOCKET, SO_RCVTIMEO, &timeout,
                   sizeof timeout) != 0) {
    return Error::internal("rtnetlink: receive timeout");
  }
  r->thread_ = std::thread([p = r.get()] { p->run(); });
  return r;
}

NeighbourResolver::~NeighbourResolver() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NeighbourResolver::track(std::vector<std::pair<uint32_t, IpAddress>> backends) {
  {
    std::lock_guard lock(mu_);
    wanted_ = std::move(backends);
    changed_ = true;
  }
  wake_.notify_all();
}

NeighbourStats NeighbourResolver::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void NeighbourResolver::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    changed_ = false;
    lock.unlock();
    round();
    lock.lock();
    if (stop_ || changed_) continue;
    wake_.wait_for(lock, stats_.unresolved > 0 ? kRetry : kRefresh,
                   [this] { return stop_ || changed_; });
  }
}

NeighbourResolver::Hop NeighbourResolver::resolve(int tap, const IpAddress& address,
                                                  uint64_t& requests) {
  auto route = nl_->route(address);
  if (tap == 0 || !route || route->oif != tap) return {};
  Hop h{std::nullopt, true};
  const IpAddress hop = route->gateway.value_or(address);
  auto n = nl_->neighbour(tap, hop);
  if (!n) return h;
  if (n->mac && (n->state & kUsable) != 0) {
    h.mac = n->mac;
  } else if (n->state == NUD_NONE || (n->state & NUD_FAILED) != 0) {
    // None yet, or the last attempt failed: ask (again). INCOMPLETE means
    // the kernel is at it.
    if (nl_->request(tap, hop)) ++requests;
  }
  return h;
}

void NeighbourResolver::round() {
  std::vector<std::pair<uint32_t, IpAddress>> wanted;
  {
    std::lock_guard lock(mu_);
    wanted = wanted_;
  }
  std::vector<uint32_t> ids;
  for (const auto& w : wanted) ids.push_back(w.first);
  std::sort(ids.begin(), ids.end());
  // Ids no longer tracked first: their slots may be another backend's now.
  for (const uint32_t id : set_) {
    if (!std::binary_search(ids.begin(), ids.end(), id)) hops_.clear(id);
  }
  // The TAP's index now: it is re-created with the process, never moved.
  const int tap = static_cast<int>(if_nametoindex(tap_.c_str()));
  NeighbourStats s;
  uint64_t requests = 0;
  // Backends sharing an address (one pod in several services) share one
  // round trip.
  std::map<IpAddress, Hop> seen;
  set_.clear();
  for (const auto& [id, address] : wanted) {
    auto it = seen.find(address);
    if (it == seen.end()) it = seen.emplace(address, resolve(tap, address, requests)).first;
    const Hop& h = it->second;
    if (h.mac) {
      hops_.set(id, *h.mac);
      set_.push_back(id);
      ++s.resolved;
    } else {
      hops_.clear(id);
      ++(h.routed ? s.unresolved : s.unrouted);
    }
  }
  std::lock_guard lock(mu_);
  s.requests = stats_.requests + requests;
  stats_ = s;
}

}  // namespace sluice::dpdk
