// bpf/sock.bpf.c cost per system call: cgroup socket hooks have no
// BPF_PROG_TEST_RUN, so this times the calls themselves, with and without
// the hooks, in the same process and run:
//
//   UdpConnect/Baseline      a socket outside the cgroup: no hook runs
//   UdpConnect/NotAService   inside: connect4 runs, the lookup misses
//   UdpConnect/ClusterIp     inside, to a ClusterIP: lookup, backend choice
//                            (random slot), reverse-map write
//   UdpConnect/Maglev        the same over a 16381-slot Maglev table
//   UdpConnect/Affinity      ClientIP affinity (the netns's entry)
//   Getpeername/...          getpeername() on a connected socket; with the
//                            hook the backend reads as the ClusterIP
//
// UDP connect() sends nothing (route lookup and socket state only), so the
// difference to the baseline is the hook. Runs in a private network
// namespace and a cgroup of its own; needs root, bpffs and cgroup v2, else
// every benchmark reports SkipWithError.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "bpf/loader/ebpf_mode.h"
#include "dataplane/service_diff.h"
#include "tests/bpf/bpffs.h"
#include "tests/bpf/cgroup.h"

namespace sluice {
namespace {

IpAddress ip(const std::string& text) { return IpAddress::parse(text).value(); }

Service udpService(const std::string& name, const std::string& vip, LbAlgorithm algo,
                   bool affinity) {
  Service s;
  s.key = {"bench", name, ""};
  s.protocol = Protocol::kUdp;
  Frontend f;
  f.address = ip(vip);
  f.port = 53;
  f.protocol = Protocol::kUdp;
  s.frontends.push_back(f);
  for (int i = 1; i <= 3; ++i) {
    Backend b;
    b.address = ip("127.0.0." + std::to_string(i));
    b.port = 5353;
    s.backends.push_back(b);
  }
  s.algorithm = algo;
  s.maglevTableSize = 16381;
  s.affinity.clientIp = affinity;
  return s;
}

sockaddr_in v4(const char* addr, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, addr, &a.sin_addr);
  return a;
}

// The whole setup, once: netns, cgroup, loaded and attached EbpfMode, and
// two sockets, one created before joining the cgroup (no hooks) and one
// after.
struct SockDatapath {
  std::unique_ptr<testing::ScopedBpffs> fs;
  std::unique_ptr<testing::ScopedCgroup> cgroup;
  std::unique_ptr<EbpfMode> mode;
  std::string originalCgroup;
  int outside = -1;
  int inside = -1;
  std::string error;

  SockDatapath() {
    if (geteuid() != 0) {
      error = "needs root";
      return;
    }
    // This process's own network namespace: the hooks only ever see
    // loopback here.
    if (::unshare(CLONE_NEWNET) != 0 || std::system("ip link set lo up") != 0) {
      error = "cannot make a private network namespace with lo up";
      return;
    }
    fs = std::make_unique<testing::ScopedBpffs>();
    if (!fs->ok()) {
      error = fs->error();
      return;
    }
    cgroup = std::make_unique<testing::ScopedCgroup>();
    if (!cgroup->ok()) {
      error = cgroup->error();
      return;
    }
    EbpfOptions o;
    o.pinDir = fs->pinDir();
    auto m = EbpfMode::create(o);
    if (!m.ok()) {
      error = m.error().message;
      return;
    }
    mode = std::move(*m);
    ServiceTable table;
    for (const Service& s : {udpService("random", "10.96.0.1", LbAlgorithm::kRandom, false),
                             udpService("maglev", "10.96.0.2", LbAlgorithm::kMaglev, false),
                             udpService("sticky", "10.96.0.3", LbAlgorithm::kRandom, true)}) {
      if (auto r = table.upsert(s); !r.ok()) {
        error = r.error().message;
        return;
      }
    }
    if (auto r = mode->sync(table); !r.ok()) {
      error = r.error().message;
      return;
    }
    if (auto r = mode->attachCgroup(cgroup->path()); !r.ok()) {
      error = r.error().message;
      return;
    }
    outside = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    // Join the cgroup (remembering where this process was), make the
    // hooked socket, go back: the socket stays in the cgroup it was made in.
    std::ifstream self("/proc/self/cgroup");
    for (std::string line; std::getline(self, line);) {
      if (line.rfind("0::", 0) == 0) originalCgroup = line.substr(3);
    }
    if (!join(cgroup->procsFile())) {
      error = "cannot join " + cgroup->path();
      return;
    }
    inside = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    leave();
  }

  ~SockDatapath() {
    if (outside >= 0) ::close(outside);
    if (inside >= 0) ::close(inside);
    if (mode && cgroup && cgroup->ok()) (void)mode->detachCgroup(cgroup->path());
  }

  static bool join(const std::string& procs) {
    const int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::write(fd, "0\n", 2) == 2;
    ::close(fd);
    return ok;
  }
  void leave() {
    // The cgroup2 root is the parent of our cgroup's directory.
    const std::string root = cgroup->path().substr(0, cgroup->path().rfind('/'));
    join(root + originalCgroup + "/cgroup.procs");
  }
};

SockDatapath& datapath() {
  static SockDatapath d;
  return d;
}

void connectLoop(benchmark::State& state, bool hooked, const char* addr, uint16_t port) {
  SockDatapath& d = datapath();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  const int fd = hooked ? d.inside : d.outside;
  const sockaddr_in dst = v4(addr, port);
  for (auto _ : state) {
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&dst), sizeof(dst)) != 0) {
      return state.SkipWithError("connect failed");
    }
  }
  state.counters["connects"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_UdpConnect_Baseline(benchmark::State& s) { connectLoop(s, false, "127.0.0.1", 5353); }
void BM_UdpConnect_NotAService(benchmark::State& s) { connectLoop(s, true, "127.0.0.1", 5353); }
void BM_UdpConnect_ClusterIp(benchmark::State& s) { connectLoop(s, true, "10.96.0.1", 53); }
void BM_UdpConnect_Maglev(benchmark::State& s) { connectLoop(s, true, "10.96.0.2", 53); }
void BM_UdpConnect_Affinity(benchmark::State& s) { connectLoop(s, true, "10.96.0.3", 53); }
BENCHMARK(BM_UdpConnect_Baseline);
BENCHMARK(BM_UdpConnect_NotAService);
BENCHMARK(BM_UdpConnect_ClusterIp);
BENCHMARK(BM_UdpConnect_Maglev);
BENCHMARK(BM_UdpConnect_Affinity);

void getpeernameLoop(benchmark::State& state, bool hooked) {
  SockDatapath& d = datapath();
  if (!d.error.empty()) return state.SkipWithError(d.error.c_str());
  const int fd = hooked ? d.inside : d.outside;
  const sockaddr_in dst = hooked ? v4("10.96.0.1", 53) : v4("127.0.0.1", 5353);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&dst), sizeof(dst)) != 0) {
    return state.SkipWithError("connect failed");
  }
  sockaddr_in peer{};
  for (auto _ : state) {
    socklen_t len = sizeof(peer);
    ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len);
    benchmark::DoNotOptimize(peer);
  }
  if (hooked && peer.sin_addr.s_addr != dst.sin_addr.s_addr) {
    state.SkipWithError("getpeername did not show the ClusterIP");
  }
}

void BM_Getpeername_Baseline(benchmark::State& s) { getpeernameLoop(s, false); }
void BM_Getpeername_ClusterIp(benchmark::State& s) { getpeernameLoop(s, true); }
BENCHMARK(BM_Getpeername_Baseline);
BENCHMARK(BM_Getpeername_ClusterIp);

}  // namespace
}  // namespace sluice

BENCHMARK_MAIN();
