// NetlinkChannel: one netlink socket that pipelines requests. Many requests, each with
// NLM_F_ACK and its own sequence number, go to the kernel in one sendmsg(2); the kernel handles
// them in order within that call and queues one ACK or error per request, which are then read
// back and matched by sequence number. A sync of N changes thus costs one round trip per window,
// not N (kube-proxy's libipvs opens a socket and waits for each request).
//
// Windows: every queued ACK occupies receive-buffer memory (up to 1 KiB of skb each), and a
// full buffer makes the kernel drop ACKs (ENOBUFS on the next read) - so a window holds at most
// receiveBufferBytes / kAckTruesizeBytes requests, and at most the send buffer's bytes (netlink
// rejects a sendmsg larger than SO_SNDBUF with EMSGSIZE). Both buffers are raised with the
// *BUFFORCE options when the process has CAP_NET_ADMIN (it must, for IPVS anyway).
//
// Counters exist so benchmarks can report "netlink messages per change" and tests can prove the
// pipelining (N requests, one sendmsg).
//
// Not thread-safe: one owner (the IPVS mode's sync thread). libnl builds and parses messages;
// the socket I/O here is plain sendmsg/recvmsg so batches and sequence numbers stay ours.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/result.h"

struct nl_msg;
struct nl_sock;
struct nlmsghdr;

namespace sluice::ipvs {

struct NetlinkCounters {
  uint64_t requestsSent = 0;      // netlink messages written to the kernel
  uint64_t sendCalls = 0;         // sendmsg(2) calls (one per window)
  uint64_t receiveCalls = 0;      // recvmsg(2) and recvmmsg(2) calls
  uint64_t messagesReceived = 0;  // ACKs, errors, replies and dump parts read
  uint64_t roundTrips = 0;        // send-then-wait cycles
  uint64_t staleMessages = 0;     // replies to nothing outstanding (skipped)
};

// The kernel's answer to one request: errno 0 for success, else the positive errno, and the
// extended-ACK message (NLMSGERR_ATTR_MSG) when the kernel gave one.
struct Ack {
  int error = 0;
  std::string message;
};

class NetlinkChannel {
 public:
  struct Options {
    int protocol = 0;  // NETLINK_GENERIC, NETLINK_NETFILTER, ...
    // Requested buffer sizes; the kernel doubles them for bookkeeping. 8 MiB of receive buffer
    // holds ~16k ACKs, so a 4096-request window has ample headroom.
    int receiveBufferBytes = 8 << 20;
    int sendBufferBytes = 4 << 20;
    size_t maxWindow = 4096;      // requests per sendmsg at most
    int replyTimeoutMs = 10'000;  // waiting for any one reply; the kernel answers in micro-
                                  // seconds, so this only bounds a lost or wedged socket
  };
  // Receive-buffer cost of one queued ACK, bytes: a 36-byte NLMSG_ERROR costs its skb's
  // truesize, measured (/proc/net/netlink Rmem over 100 queued ACKs) at 768 B on 6.1 and
  // 960 B on 6.12; rounded up.
  static constexpr size_t kAckTruesizeBytes = 1024;

  static Result<std::unique_ptr<NetlinkChannel>> create(const Options& options);
  ~NetlinkChannel();
  NetlinkChannel(const NetlinkChannel&) = delete;
  NetlinkChannel& operator=(const NetlinkChannel&) = delete;

  // For callers that need libnl on the same socket before pipelining starts (genl family
  // resolution); nothing may be left unread on it.
  nl_sock* sock() { return sock_; }

  // Builds request i into `msg` (payload and type; the channel sets flags, sequence and port).
  using Encoder = std::function<Result<void>(size_t index, nl_msg* msg)>;

  // Sends `count` requests pipelined, windows as above, and returns one Ack per request in
  // order. An encoder error aborts before the window it belongs to is sent (earlier windows
  // stay applied). A transport failure (timeout, lost ACKs) is an error for the whole call:
  // the kernel's state is then unknown and the caller resyncs from a dump.
  Result<std::vector<Ack>> transact(size_t count, uint16_t type, const Encoder& encode);

  // A dump (NLM_F_DUMP): `onMessage` sees each reply part; its first error stops collecting
  // (the rest of the dump is still drained, so the socket stays in step).
  using Handler = std::function<Result<void>(const nlmsghdr* reply)>;
  Result<void> dump(uint16_t type, const Encoder& encode, const Handler& onMessage);

  // A single request answered by one reply (a "doit" GET): `onMessage` sees the reply, and the
  // kernel's error (e.g. ESRCH) comes back as the returned Ack.
  Result<Ack> request(uint16_t type, const Encoder& encode, const Handler& onMessage);

  const NetlinkCounters& counters() const { return counters_; }
  size_t window() const { return window_; }

 private:
  NetlinkChannel() = default;
  Result<void> sendBuffer(const std::vector<uint8_t>& buf);
  // Reads one datagram into rx_ and returns its length.
  Result<size_t> receive();
  // Reads up to kBurst datagrams with one recvmmsg(2) (waiting for the first), for a window's
  // ACKs: each ACK is its own datagram, so this cuts the reads per window by up to kBurst.
  // Returns how many arrived; datagram i is at burst_[i * kBurstBytes], burstLen_[i] long.
  Result<size_t> receiveBurst();
  Result<std::vector<uint8_t>> encodeOne(uint16_t type, uint16_t flags, uint32_t seq, size_t index,
                                         const Encoder& encode);

  nl_sock* sock_ = nullptr;
  int fd_ = -1;
  uint32_t portId_ = 0;
  uint32_t nextSeq_ = 1;
  size_t window_ = 0;
  size_t maxSendBytes_ = 0;
  std::vector<uint8_t> rx_;
  static constexpr size_t kBurst = 64;
  // Room per datagram of a burst: an ACK is 36 bytes plus any extended-ACK text.
  static constexpr size_t kBurstBytes = 8192;
  std::vector<uint8_t> burst_;  // kBurst * kBurstBytes, allocated on first use
  std::vector<size_t> burstLen_;
  NetlinkCounters counters_;
};

// "EEXIST (File exists)": the errno's symbolic name and its text.
std::string errnoText(int error);

}  // namespace sluice::ipvs
