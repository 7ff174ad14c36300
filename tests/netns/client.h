// Clients of the netns suite. Each runs in a child process placed in a pod
// or in the node namespace and cgroup (topology.h), talks to a service
// through real sockets, and reports what the application saw: which
// backend answered, the address the backend saw, getpeername(), the
// source recvfrom() gave, or the errno.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tests/netns/topology.h"

namespace sluice::netns {

enum class Transport : uint8_t {
  kTcp,           // connect, one request line, one answer line
  kUdp,           // unconnected socket: sendto, recvfrom
  kUdpConnected,  // connect, send, recv
};

struct Answer {
  int err = 0;           // errno of the first failing call, 0 if answered
  std::string failedAt;  // the call that failed: "connect", "recv", ...
  std::string backend;   // the echo server's name
  std::string seenAs;    // the client address the backend saw
  std::string peer;      // getpeername(), "addr:port" / "[addr]:port" (TCP, connected UDP)
  std::string from;      // recvfrom()'s source (unconnected UDP)
  std::string describe() const;
};

// `count` requests to addr:port (IPv4, IPv6, or v4-mapped IPv6 text), each
// on a fresh socket, from a child placed at `where`.
std::vector<Answer> request(const Placement& where, Transport transport, const std::string& addr,
                            uint16_t port, int count = 1);

// The backends in answers, and how many answers each gave; failures count
// under "" .
std::vector<std::pair<std::string, int>> backendsOf(const std::vector<Answer>& answers);

// One TCP connection held open by a child process for as long as this
// object lives; each ping() sends a line over it and returns the answer.
// For long-lived-flow tests (agent restarts, backend changes).
class StreamClient {
 public:
  StreamClient(const Placement& where, const std::string& addr, uint16_t port);
  ~StreamClient();
  StreamClient(const StreamClient&) = delete;
  StreamClient& operator=(const StreamClient&) = delete;

  // The answer on the open connection (err set if it broke).
  Answer ping();
  // What connecting gave (the first ping's answer: which backend).
  const Answer& first() const { return first_; }

 private:
  ChildProcess child_;
  int cmd_ = -1;
  int result_ = -1;
  Answer first_;
};

// A connected UDP socket held by a child process for as long as this object
// lives (stale-socket tests): connect() to addr:port once, then commands.
// Each returns what the application saw.
class UdpSession {
 public:
  UdpSession(const Placement& where, const std::string& addr, uint16_t port);
  ~UdpSession();
  UdpSession(const UdpSession&) = delete;
  UdpSession& operator=(const UdpSession&) = delete;

  // send() + recv() on the session socket.
  Answer ping();
  // recv(MSG_DONTWAIT) on the session socket without sending: the error
  // the socket holds (err, failedAt "recv"), EAGAIN when it holds none.
  Answer pendingError();
  // Closes the session socket and connects a fresh one to the same
  // address, then ping()s on it: what an application does after an error.
  Answer reconnect();
  // A second, independent socket connected to addr:port (created on the
  // first call): SO_ERROR first (failedAt "SO_ERROR" if set), then
  // send() + recv() on it.
  Answer pingOther(const std::string& addr, uint16_t port);
  // What connecting gave (the first ping's answer: which backend).
  const Answer& first() const { return first_; }

 private:
  Answer command(const std::string& line);

  ChildProcess child_;
  int cmd_ = -1;
  int result_ = -1;
  Answer first_;
};

}  // namespace sluice::netns
