// Building blocks of the netns suite: a node network namespace with pod
// namespaces wired to it by veth pairs (the shape sluice-cni gives a node),
// a private cgroup v2 for the "host" client, and child processes that run
// inside a namespace (echo servers, clients).
//
// Every name carries the test process's PID (and a per-process counter),
// every object is removed by a destructor, so a failing or crashing test
// leaves nothing behind in the host's network or cgroup tree, and two runs
// on one machine do not collide. All traffic stays inside the namespaces
// created here.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tests/bpf/cgroup.h"

namespace sluice::netns {

using testing::ScopedCgroup;

// Runs `command` through /bin/sh; returns true on exit status 0. Failed
// commands are printed with their status.
bool sh(const std::string& command);

// Moves the calling thread into a network namespace until destruction.
class ScopedSetns {
 public:
  explicit ScopedSetns(int netnsFd);
  ~ScopedSetns();
  ScopedSetns(const ScopedSetns&) = delete;
  ScopedSetns& operator=(const ScopedSetns&) = delete;
  bool ok() const { return ok_; }

 private:
  int original_ = -1;
  bool ok_ = false;
};

// Where a child process runs: a network namespace (-1: the parent's) and
// optionally a cgroup to join before it creates any socket (a socket
// belongs to its creator's cgroup).
struct Placement {
  int netnsFd = -1;
  std::string cgroupProcs;
};

// Runs fn in a forked child placed as asked and returns what it returned;
// "child: ..." if it could not be placed, died, or outlived timeoutMs.
std::string runInChild(const Placement& where, const std::function<std::string()>& fn,
                       int timeoutMs = 30000);

// A long-running child (an echo server); SIGKILLed and reaped on
// destruction.
class ChildProcess {
 public:
  ChildProcess() = default;
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  ChildProcess(ChildProcess&& o) noexcept : pid_(o.pid_) { o.pid_ = -1; }
  ChildProcess& operator=(ChildProcess&& o) noexcept;
  ~ChildProcess();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// Starts `exe --name name --port port --ready-fd N` in the namespace and
// waits until it listens. Sets *error and returns an empty process on
// failure.
ChildProcess startEchoServer(int netnsFd, const std::string& exe, const std::string& name,
                             uint16_t port, std::string* error);

struct Pod {
  std::string name;       // as its echo server answers
  std::string netnsName;  // `ip netns` name
  int netnsFd = -1;
  std::string ip4;  // 10.244.0.x, /32 on eth0
  std::string ip6;  // fd00:244::x, /128 on eth0
  std::string hostVeth;  // node side of its veth pair, in the node namespace
};

// The node and its pods:
//
//   node netns: lo with the node addresses 192.168.77.1 and fd00:77::1
//     (a node's addresses live on its uplink; this node has none, and the
//     dummy driver may be missing), and per pod a veth lxcN with 169.254.1.1/32 and fe80::1
//     (every pod's gateway, as Calico and Cilium wire pods), a /32 and a
//     /128 route to the pod, forwarding on, rp_filter off (the hairpin
//     source 169.254.42.1 has no route on the node).
//   pod netns: lo, eth0 with the pod's /32 and /128, default routes via
//     the gateways.
//
// Nothing routes out of the node namespace: service addresses exist only
// in the BPF maps.
class Topology {
 public:
  static std::unique_ptr<Topology> create(const std::vector<std::string>& podNames,
                                          std::string* error);
  ~Topology();
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  int nodeNetnsFd() const { return nodeFd_; }
  const std::string& nodeNetns() const { return node_; }
  const std::vector<Pod>& pods() const { return pods_; }
  const Pod& pod(const std::string& name) const;

  static constexpr const char* kNodeIp4 = "192.168.77.1";
  static constexpr const char* kNodeIp6 = "fd00:77::1";

 private:
  Topology() = default;
  bool build(const std::vector<std::string>& podNames, std::string* error);

  std::string prefix_;
  std::string node_;
  int nodeFd_ = -1;
  std::vector<Pod> pods_;
  std::vector<std::string> created_;  // netns names to delete
};

}  // namespace sluice::netns
