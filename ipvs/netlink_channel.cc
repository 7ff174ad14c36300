#include "ipvs/netlink_channel.h"

#include <errno.h>
#include <linux/netlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

namespace sluice::ipvs {
namespace {

// Largest request the clients build: an IPVS destination with every attribute is ~120 bytes,
// a ctnetlink tuple ~100; one page leaves ample room.
constexpr size_t kMaxRequestBytes = 4096;
// A dump part is at most 32 KiB (netlink caps its dump skbs to the reader's largest recvmsg,
// up to 32 KiB + a page); 64 KiB never truncates.
constexpr size_t kReceiveBytes = 64 << 10;

struct MsgDeleter {
  void operator()(nl_msg* msg) const { nlmsg_free(msg); }
};
using MsgPtr = std::unique_ptr<nl_msg, MsgDeleter>;

Error osError(const char* what, int err) {
  const ErrorCode code = (err == EAGAIN || err == ENOBUFS || err == EINTR) ? ErrorCode::kUnavailable
                                                                           : ErrorCode::kInternal;
  return {code, std::string(what) + ": " + errnoText(err)};
}

void setBuffer(int fd, int forceOpt, int opt, int bytes) {
  // FORCE ignores net.core.[rw]mem_max but needs CAP_NET_ADMIN; without it the plain option
  // gives what the sysctl allows and the window shrinks to match.
  if (setsockopt(fd, SOL_SOCKET, forceOpt, &bytes, sizeof(bytes)) != 0) {
    (void)setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof(bytes));
  }
}

int getBuffer(int fd, int opt) {
  int v = 0;
  socklen_t len = sizeof(v);
  (void)getsockopt(fd, SOL_SOCKET, opt, &v, &len);
  return v;
}

// The error code and extended-ACK message of an NLMSG_ERROR.
Ack parseAck(const nlmsghdr* h) {
  Ack ack;
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) {
    ack.error = EBADMSG;
    return ack;
  }
  const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
  ack.error = -e->error;
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return ack;
  // With NETLINK_CAP_ACK the TLVs follow the echoed header alone (NLM_F_CAPPED); without it
  // they follow the whole echoed request.
  size_t off = NLMSG_LENGTH(sizeof(nlmsgerr));
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - sizeof(nlmsghdr);
  if (off >= h->nlmsg_len) return ack;
  auto* tlvs = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(const_cast<nlmsghdr*>(h)) +
                                         NLMSG_ALIGN(off));
  nlattr* tb[NLMSGERR_ATTR_MAX + 1] = {};
  if (nla_parse(tb, NLMSGERR_ATTR_MAX, tlvs, static_cast<int>(h->nlmsg_len - NLMSG_ALIGN(off)),
                nullptr) == 0 &&
      tb[NLMSGERR_ATTR_MSG]) {
    ack.message = nla_get_string(tb[NLMSGERR_ATTR_MSG]);
  }
  return ack;
}

// The message at `off` in buf[0, len), advancing `off` past it; nullptr at the end or at a
// malformed length. (NLMSG_OK/NLMSG_NEXT do the same but compare signed with unsigned.)
nlmsghdr* nextMessage(uint8_t* buf, size_t len, size_t& off) {
  if (len < off + sizeof(nlmsghdr)) return nullptr;
  auto* h = reinterpret_cast<nlmsghdr*>(buf + off);
  if (h->nlmsg_len < sizeof(nlmsghdr) || h->nlmsg_len > len - off) return nullptr;
  off += NLMSG_ALIGN(h->nlmsg_len);
  return h;
}

}  // namespace

std::string errnoText(int error) {
  const char* name = strerrorname_np(error);
  return std::string(name ? name : "E" + std::to_string(error)) + " (" + strerror(error) + ")";
}

Result<std::unique_ptr<NetlinkChannel>> NetlinkChannel::create(const Options& options) {
  std::unique_ptr<NetlinkChannel> ch(new NetlinkChannel());
  ch->sock_ = nl_socket_alloc();
  if (ch->sock_ == nullptr) return Error::internal("nl_socket_alloc: out of memory");
  if (int err = nl_connect(ch->sock_, options.protocol); err < 0) {
    return Error::unavailable(std::string("netlink socket (protocol ") +
                              std::to_string(options.protocol) + "): " + nl_geterror(err));
  }
  ch->fd_ = nl_socket_get_fd(ch->sock_);
  ch->portId_ = nl_socket_get_local_port(ch->sock_);
  setBuffer(ch->fd_, SO_RCVBUFFORCE, SO_RCVBUF, options.receiveBufferBytes);
  setBuffer(ch->fd_, SO_SNDBUFFORCE, SO_SNDBUF, options.sendBufferBytes);
  // Short ACKs (no echo of each request) keep a window's ACKs small; extended ACKs carry the
  // kernel's reason text when it has one. Both exist since 4.12; older kernels ignore them.
  int on = 1;
  (void)setsockopt(ch->fd_, SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof(on));
  (void)setsockopt(ch->fd_, SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof(on));
  timeval tv{options.replyTimeoutMs / 1000, (options.replyTimeoutMs % 1000) * 1000};
  (void)setsockopt(ch->fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

  const size_t rcv = static_cast<size_t>(getBuffer(ch->fd_, SO_RCVBUF));
  // Half the buffer for ACKs, the rest for what else might be queued (a dump's tail).
  ch->window_ = std::clamp<size_t>(rcv / 2 / kAckTruesizeBytes, 1, options.maxWindow);
  const size_t snd = static_cast<size_t>(getBuffer(ch->fd_, SO_SNDBUF));
  ch->maxSendBytes_ = std::max<size_t>(snd > 64 ? snd - 64 : snd, kMaxRequestBytes);
  ch->rx_.resize(kReceiveBytes);
  return ch;
}

NetlinkChannel::~NetlinkChannel() {
  if (sock_ != nullptr) nl_socket_free(sock_);
}

Result<std::vector<uint8_t>> NetlinkChannel::encodeOne(uint16_t type, uint16_t flags, uint32_t seq,
                                                       size_t index, const Encoder& encode) {
  MsgPtr msg(nlmsg_alloc_size(kMaxRequestBytes));
  if (!msg) return Error::internal("nlmsg_alloc: out of memory");
  if (nlmsg_put(msg.get(), portId_, seq, type, 0, flags) == nullptr) {
    return Error::internal("nlmsg_put: no room for the header");
  }
  if (auto r = encode(index, msg.get()); !r) return r.error();
  const nlmsghdr* h = nlmsg_hdr(msg.get());
  const auto* p = reinterpret_cast<const uint8_t*>(h);
  return std::vector<uint8_t>(p, p + NLMSG_ALIGN(h->nlmsg_len));
}

Result<void> NetlinkChannel::sendBuffer(const std::vector<uint8_t>& buf) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  iovec iov{const_cast<uint8_t*>(buf.data()), buf.size()};
  msghdr mh{};
  mh.msg_name = &kernel;
  mh.msg_namelen = sizeof(kernel);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  ssize_t n;
  do {
    n = sendmsg(fd_, &mh, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return osError("netlink sendmsg", errno);
  ++counters_.sendCalls;
  return okResult();
}

Result<size_t> NetlinkChannel::receive() {
  sockaddr_nl from{};
  iovec iov{rx_.data(), rx_.size()};
  msghdr mh{};
  mh.msg_name = &from;
  mh.msg_namelen = sizeof(from);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  for (;;) {
    const ssize_t n = recvmsg(fd_, &mh, 0);
    if (n < 0 && errno == EINTR) continue;
    ++counters_.receiveCalls;
    if (n < 0) {
      if (errno == EAGAIN) return osError("netlink: no reply from the kernel in time", errno);
      if (errno == ENOBUFS) {
        return osError("netlink receive buffer overrun: replies were dropped", errno);
      }
      return osError("netlink recvmsg", errno);
    }
    if (mh.msg_flags & MSG_TRUNC) return Error::internal("netlink reply truncated");
    if (from.nl_pid != 0) continue;  // not from the kernel
    return static_cast<size_t>(n);
  }
}

Result<size_t> NetlinkChannel::receiveBurst() {
  if (burst_.empty()) {
    burst_.resize(kBurst * kBurstBytes);
    burstLen_.resize(kBurst);
  }
  sockaddr_nl from[kBurst];
  iovec iov[kBurst];
  mmsghdr mm[kBurst];
  for (size_t i = 0; i < kBurst; ++i) {
    iov[i] = {burst_.data() + i * kBurstBytes, kBurstBytes};
    mm[i] = {};
    mm[i].msg_hdr.msg_name = &from[i];
    mm[i].msg_hdr.msg_namelen = sizeof(from[i]);
    mm[i].msg_hdr.msg_iov = &iov[i];
    mm[i].msg_hdr.msg_iovlen = 1;
  }
  int n;
  do {
    n = recvmmsg(fd_, mm, kBurst, MSG_WAITFORONE, nullptr);
  } while (n < 0 && errno == EINTR);
  ++counters_.receiveCalls;
  if (n < 0) {
    if (errno == EAGAIN) return osError("netlink: no reply from the kernel in time", errno);
    if (errno == ENOBUFS) {
      return osError("netlink receive buffer overrun: replies were dropped", errno);
    }
    return osError("netlink recvmmsg", errno);
  }
  for (int i = 0; i < n; ++i) {
    // A truncated datagram (a stray dump part) or one not from the kernel reads as empty;
    // only stale traffic can be that large, and the caller skips what it does not expect.
    const bool keep = !(mm[i].msg_hdr.msg_flags & MSG_TRUNC) && from[i].nl_pid == 0;
    burstLen_[i] = keep ? mm[i].msg_len : 0;
    if (!keep) ++counters_.staleMessages;
  }
  return static_cast<size_t>(n);
}

Result<std::vector<Ack>> NetlinkChannel::transact(size_t count, uint16_t type,
                                                  const Encoder& encode) {
  std::vector<Ack> acks(count);
  size_t next = 0;
  while (next < count) {
    // Build one window: up to window_ requests and maxSendBytes_ bytes.
    std::vector<uint8_t> buf;
    std::map<uint32_t, size_t> pending;  // seq -> request index
    while (next < count && pending.size() < window_) {
      const uint32_t seq = nextSeq_++;
      auto one = encodeOne(type, NLM_F_REQUEST | NLM_F_ACK, seq, next, encode);
      if (!one) return one.error();
      if (!buf.empty() && buf.size() + one->size() > maxSendBytes_) {
        --nextSeq_;
        break;
      }
      buf.insert(buf.end(), one->begin(), one->end());
      pending.emplace(seq, next++);
    }
    if (auto r = sendBuffer(buf); !r) return r.error();
    counters_.requestsSent += pending.size();
    ++counters_.roundTrips;
    // Every request in the window is answered before sendmsg returns, so the ACKs are
    // already queued; read until each is matched.
    while (!pending.empty()) {
      auto n = receiveBurst();
      if (!n) {
        return Error{n.error().code, n.error().message + " (" + std::to_string(pending.size()) +
                                         " of " + std::to_string(count) +
                                         " requests unacknowledged)"};
      }
      for (size_t d = 0; d < *n; ++d) {
        size_t off = 0;
        while (nlmsghdr* h = nextMessage(burst_.data() + d * kBurstBytes, burstLen_[d], off)) {
          ++counters_.messagesReceived;
          auto it = pending.find(h->nlmsg_seq);
          if (it == pending.end() || h->nlmsg_type != NLMSG_ERROR) {
            ++counters_.staleMessages;
            continue;
          }
          acks[it->second] = parseAck(h);
          pending.erase(it);
        }
      }
    }
  }
  return acks;
}

Result<void> NetlinkChannel::dump(uint16_t type, const Encoder& encode, const Handler& onMessage) {
  const uint32_t seq = nextSeq_++;
  auto req = encodeOne(type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0, encode);
  if (!req) return req.error();
  if (auto r = sendBuffer(*req); !r) return r;
  ++counters_.requestsSent;
  ++counters_.roundTrips;
  Result<void> status = okResult();
  for (;;) {
    auto n = receive();
    if (!n) return n.error();
    size_t off = 0;
    while (nlmsghdr* h = nextMessage(rx_.data(), *n, off)) {
      ++counters_.messagesReceived;
      if (h->nlmsg_seq != seq) {
        ++counters_.staleMessages;
        continue;
      }
      if (h->nlmsg_type == NLMSG_DONE) {
        // NLMSG_DONE carries the dump callback's final return value.
        int err = 0;
        if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
          std::memcpy(&err, NLMSG_DATA(h), sizeof(err));
        }
        if (err < 0 && status.ok()) return osError("netlink dump", -err);
        return status;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        const Ack ack = parseAck(h);
        if (ack.error == 0) continue;
        return osError("netlink dump request", ack.error);
      }
      if (h->nlmsg_flags & NLM_F_DUMP_INTR) {
        // The table changed under the dump; the caller retries on kAborted.
        if (status.ok()) status = Error::aborted("netlink dump interrupted by a change");
        continue;
      }
      if (status.ok()) {
        if (auto r = onMessage(h); !r) status = r.error();
      }
    }
  }
}

Result<Ack> NetlinkChannel::request(uint16_t type, const Encoder& encode,
                                    const Handler& onMessage) {
  const uint32_t seq = nextSeq_++;
  auto req = encodeOne(type, NLM_F_REQUEST | NLM_F_ACK, seq, 0, encode);
  if (!req) return req.error();
  if (auto r = sendBuffer(*req); !r) return r.error();
  ++counters_.requestsSent;
  ++counters_.roundTrips;
  Result<void> status = okResult();
  for (;;) {
    auto n = receive();
    if (!n) return n.error();
    size_t off = 0;
    while (nlmsghdr* h = nextMessage(rx_.data(), *n, off)) {
      ++counters_.messagesReceived;
      if (h->nlmsg_seq != seq) {
        ++counters_.staleMessages;
        continue;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        // The ACK follows the reply, so it ends the exchange either way.
        Ack ack = parseAck(h);
        if (!status.ok()) return status.error();
        return ack;
      }
      if (status.ok()) {
        if (auto r = onMessage(h); !r) status = r.error();
      }
    }
  }
}

}  // namespace sluice::ipvs
