#include "bpf/loader/kernel_features.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "bpf/loader/bpf_map.h"
#include "bpf/loader/libbpf_opts.h"

namespace sluice::bpf {

namespace {

using P = KernelProbe;
using F = ModeFeature;

// `since`: the upstream release that added the capability (for a helper,
// to that program type). Sources: the kernel's git history as summarised by
// bcc's docs/kernel-versions.md and the helpers' man page; get_socket_cookie
// in sock_addr programs is known present in 5.4 (Cilium's minimum requires
// it there) without a more precise release.
constexpr KernelProbeInfo kProbes[] = {
    {P::kBtf, "btf:vmlinux", "kernel BTF (/sys/kernel/btf/vmlinux)", "5.4",
     "CO-RE: every object is relocated against the running kernel's types", true, {}},
    {P::kProgSchedCls, "prog:sched_cls", "program type sched_cls (tc)", "4.1",
     "bpf_lxc on pod veths, bpf_host on the uplink", true, {}},
    {P::kProgCgroupSockAddr, "prog:cgroup_sock_addr", "program type cgroup_sock_addr", "4.17",
     "socket-level load balancing for the node's own processes", true, {}},
    {P::kProgXdp, "prog:xdp", "program type xdp", "4.8", "bpf_xdp: early drop on the uplink", false,
     F::kXdpEarlyDrop},
    {P::kAttachConnect, "attach:connect", "attach types cgroup/connect4, connect6", "4.17",
     "translating connect()", true, {}},
    {P::kAttachSendmsg, "attach:sendmsg", "attach types cgroup/sendmsg4, sendmsg6", "4.18",
     "translating sendto() on unconnected UDP sockets", true, {}},
    {P::kAttachRecvmsg, "attach:recvmsg", "attach types cgroup/recvmsg4, recvmsg6", "5.2",
     "UDP answers read as coming from the Service address", true, {}},
    {P::kAttachGetpeername, "attach:getpeername", "attach types cgroup/getpeername4, getpeername6",
     "5.8", "getpeername() names the Service address", false, F::kSocketLbPeerName},
    {P::kCgroupLinks, "link:cgroup", "bpf_link for cgroup hooks (create, update, pin)", "5.7",
     "socket hooks that outlive the agent and are replaced in place on restart", true, {}},
    {P::kMapHash, "map:hash", "map type hash", "3.19", "services, slots, backends", true, {}},
    {P::kMapArray, "map:array", "map type array", "3.19", "Maglev tables", true, {}},
    {P::kMapPercpuArray, "map:percpu_array", "map type percpu_array", "4.6",
     "drop and event counters", true, {}},
    {P::kMapLruHash, "map:lru_hash", "map type lru_hash", "4.10",
     "conntrack, affinity, socket reverse translation", true, {}},
    {P::kMapHashOfMaps, "map:hash_of_maps", "map type hash_of_maps", "4.12",
     "Maglev tables per service", true, {}},
    {P::kMapInnerMapFlag, "map:inner_map_flag", "BPF_F_INNER_MAP (inner maps of any size)", "5.10",
     "Maglev tables of each Service's own size in one outer map", true, {}},
    {P::kMapBatch, "map:batch", "batched map syscalls (hash, LRU hash)", "5.6",
     "sync and dump in one syscall per 8,192 entries (else one per entry: slower start-up)",
     false, {}},
    {P::kTcSkbLoadBytes, "helper:tc:skb_load_bytes", "bpf_skb_load_bytes() in tc", "4.5",
     "parsing packets", true, {}},
    {P::kTcSkbStoreBytes, "helper:tc:skb_store_bytes", "bpf_skb_store_bytes() in tc", "4.1",
     "NAT rewrites", true, {}},
    {P::kTcL3CsumReplace, "helper:tc:l3_csum_replace", "bpf_l3_csum_replace() in tc", "4.1",
     "IPv4 header checksums", true, {}},
    {P::kTcL4CsumReplace, "helper:tc:l4_csum_replace", "bpf_l4_csum_replace() in tc", "4.1",
     "TCP/UDP checksums", true, {}},
    {P::kTcCsumDiff, "helper:tc:csum_diff", "bpf_csum_diff() in tc", "4.6",
     "checksums of rewritten ICMP errors", true, {}},
    {P::kTcSkbChangeTail, "helper:tc:skb_change_tail", "bpf_skb_change_tail() in tc", "4.9",
     "building TCP RST / ICMP unreachable refusals", true, {}},
    {P::kTcSkbPullData, "helper:tc:skb_pull_data", "bpf_skb_pull_data() in tc", "4.9",
     "writable headers before a refusal is built", true, {}},
    {P::kTcRedirect, "helper:tc:redirect", "bpf_redirect() in tc", "4.4",
     "refusals sent back out of the ingress device", true, {}},
    {P::kTcFibLookup, "helper:tc:fib_lookup", "bpf_fib_lookup() in tc", "4.18",
     "next hop of NodePort/LoadBalancer flows", true, {}},
    {P::kTcRedirectNeigh, "helper:tc:redirect_neigh", "bpf_redirect_neigh() in tc", "5.10",
     "forwarding NodePort/LoadBalancer flows with a node source address", true, {}},
    {P::kTcKtimeGetNs, "helper:tc:ktime_get_ns", "bpf_ktime_get_ns() in tc", "4.1",
     "conntrack and affinity ageing", true, {}},
    {P::kXdpLoadBytes, "helper:xdp:xdp_load_bytes", "bpf_xdp_load_bytes() in xdp", "5.18",
     "bpf_xdp parsing (multi-buffer safe)", false, F::kXdpEarlyDrop},
    {P::kXdpGetBuffLen, "helper:xdp:xdp_get_buff_len", "bpf_xdp_get_buff_len() in xdp", "5.18",
     "bpf_xdp length checks", false, F::kXdpEarlyDrop},
    {P::kSockSocketCookie, "helper:sock_addr:get_socket_cookie",
     "bpf_get_socket_cookie() in cgroup_sock_addr", "≤5.4",
     "keys of the socket reverse translation", true, {}},
    {P::kSockNetnsCookie, "helper:sock_addr:get_netns_cookie",
     "bpf_get_netns_cookie() in cgroup_sock_addr", "5.7",
     "acting on the node's own network namespace only; ClientIP affinity", true, {}},
    {P::kSockSetRetval, "helper:sock_addr:set_retval", "bpf_set_retval() in cgroup_sock_addr",
     "5.18", "ECONNREFUSED for a refused connect()", false, F::kSocketLbErrno},
    {P::kIterUdp, "iter:udp", "BPF iterator over UDP sockets (iter/udp)", "5.9",
     "finding sockets connected to a removed backend", false, F::kUdpStaleFlowCleanup},
    {P::kKfuncSockDestroy, "kfunc:bpf_sock_destroy", "kfunc bpf_sock_destroy()", "6.5",
     "resetting those sockets", false, F::kUdpStaleFlowCleanup},
    {P::kSoNetnsCookie, "sockopt:SO_NETNS_COOKIE", "getsockopt SO_NETNS_COOKIE", "5.14",
     "naming the node's network namespace to the socket hooks", false, F::kSocketLb},
};
static_assert(std::size(kProbes) == kKernelProbeCount, "one row per KernelProbe");

// What a user loses with each feature the probes can take away.
struct Effect {
  ModeFeature feature;
  std::string_view text;
};
constexpr Effect kEffects[] = {
    {F::kXdpEarlyDrop,
     "packets bpf_host drops (malformed, externalTrafficPolicy Local without a local backend) are "
     "dropped at tc after the kernel built an skb for them, not in XDP: more CPU per dropped packet "
     "under a flood; serving is unchanged"},
    {F::kSocketLbPeerName,
     "getpeername() on a node process's socket connected to a Service names the backend, not the "
     "Service address"},
    {F::kSocketLbErrno,
     "a node process's connect() or sendto() to a Service with no usable endpoint fails with EPERM "
     "instead of ECONNREFUSED or EHOSTUNREACH (pods still get a TCP RST or ICMP unreachable)"},
    {F::kSocketLb,
     "the socket hooks cannot tell network namespaces apart: they translate the sockets of every "
     "namespace in their cgroup, so two nodes on one host interfere"},
    {F::kUdpStaleFlowCleanup,
     "UDP sockets of node processes connected to a Service keep their backend after it is removed, "
     "until the application reconnects (they are not reset); pods' UDP flows still move at once "
     "(per-packet path)"},
};

std::string errnoText(int err) { return std::strerror(err < 0 ? -err : err); }

// A probe call's result: 1 supported, 0 not, < 0 -errno of the trial.
void record(KernelFeatures& f, P p, int r) {
  if (r == 1) {
    f.set(p, true);
  } else if (r == 0) {
    f.set(p, false, "not in this kernel");
  } else if (r == -EPERM || r == -EACCES) {
    f.set(p, false, "cannot probe: " + errnoText(r) + " (needs CAP_BPF: run as root)");
  } else {
    f.set(p, false, "probe failed: " + errnoText(r));
  }
}

// `r0 = 1; exit`: valid for every sock_addr attach type (recvmsg and
// getpeername programs must return 1).
int loadSockAddr(bpf_attach_type type) {
  const bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  auto opts = libbpfOpts<bpf_prog_load_opts>();
  opts.expected_attach_type = type;
  const int fd = bpf_prog_load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, nullptr, "GPL", insns,
                               std::size(insns), &opts);
  return fd < 0 ? -errno : fd;
}

// Both attach types load: 1; the kernel refuses the attach type (EINVAL):
// 0; anything else: -errno.
int probeAttach(bpf_attach_type v4, bpf_attach_type v6) {
  for (bpf_attach_type t : {v4, v6}) {
    const int fd = loadSockAddr(t);
    if (fd == -EINVAL) return 0;
    if (fd < 0) return fd;
    ::close(fd);
  }
  return 1;
}

// BPF_LINK_CREATE for a cgroup hook with an invalid cgroup fd: a kernel
// with cgroup links gets as far as resolving the cgroup (EBADF); one
// without the command refuses the syscall itself (EINVAL).
int probeCgroupLinks() {
  FileDescriptor prog(loadSockAddr(BPF_CGROUP_INET4_CONNECT));
  if (!prog.valid()) return prog.get();
  const int r = bpf_link_create(prog.get(), -1, BPF_CGROUP_INET4_CONNECT, nullptr);
  if (r >= 0) {  // never: there is no cgroup -1
    ::close(r);
    return 1;
  }
  if (r == -EBADF) return 1;
  return r == -EINVAL ? 0 : r;
}

int probeInnerMapFlag() {
  auto opts = libbpfOpts<bpf_map_create_opts>();
  opts.map_flags = BPF_F_INNER_MAP;
  const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, nullptr, 4, 4, 1, &opts);
  if (fd >= 0) {
    ::close(fd);
    return 1;
  }
  return fd == -EINVAL ? 0 : fd;
}

// A batched lookup on an empty hash map: ENOENT (nothing to read) where the
// kernel has the command for hash maps; EINVAL (no such command) or
// ENOTSUPP (524: the map type lacks the op) where not.
int probeMapBatch() {
  FileDescriptor map(bpf_map_create(BPF_MAP_TYPE_HASH, nullptr, 4, 4, 1, nullptr));
  if (!map.valid()) return map.get();
  uint32_t keys[1], values[1], out = 0, count = 1;
  const int r = bpf_map_lookup_batch(map.get(), nullptr, &out, keys, values, &count, nullptr);
  if (r == 0 || r == -ENOENT) return 1;
  constexpr int kEnotsupp = 524;  // include/linux/errno.h: kernel-internal
  return r == -EINVAL || r == -kEnotsupp ? 0 : r;
}

int probeSoNetnsCookie() {
#ifndef SO_NETNS_COOKIE
  constexpr int SO_NETNS_COOKIE = 71;  // asm-generic/socket.h (Linux 5.14)
#endif
  FileDescriptor fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return -errno;
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) == 0) return 1;
  return errno == ENOPROTOOPT ? 0 : -errno;
}

int probeBtfFunc(const btf* vmlinux, const char* name) {
  if (vmlinux == nullptr) return 0;
  return btf__find_by_name_kind(vmlinux, name, BTF_KIND_FUNC) > 0 ? 1 : 0;
}

KernelFeatures probeNow() {
  utsname u{};
  ::uname(&u);
  KernelFeatures f = KernelFeatures::all(u.release);

  btf* vmlinux = btf__load_vmlinux_btf();
  if (vmlinux == nullptr) {
    f.set(P::kBtf, false, "no kernel BTF: " + errnoText(errno) + " (CONFIG_DEBUG_INFO_BTF)");
  } else {
    f.set(P::kBtf, true);
  }
  record(f, P::kProgSchedCls, libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SCHED_CLS, nullptr));
  record(f, P::kProgCgroupSockAddr,
         libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, nullptr));
  record(f, P::kProgXdp, libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_XDP, nullptr));
  record(f, P::kAttachConnect, probeAttach(BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT));
  record(f, P::kAttachSendmsg, probeAttach(BPF_CGROUP_UDP4_SENDMSG, BPF_CGROUP_UDP6_SENDMSG));
  record(f, P::kAttachRecvmsg, probeAttach(BPF_CGROUP_UDP4_RECVMSG, BPF_CGROUP_UDP6_RECVMSG));
  record(f, P::kAttachGetpeername,
         probeAttach(BPF_CGROUP_INET4_GETPEERNAME, BPF_CGROUP_INET6_GETPEERNAME));
  record(f, P::kCgroupLinks, probeCgroupLinks());
  for (auto [p, type] : {std::pair{P::kMapHash, BPF_MAP_TYPE_HASH},
                         {P::kMapArray, BPF_MAP_TYPE_ARRAY},
                         {P::kMapPercpuArray, BPF_MAP_TYPE_PERCPU_ARRAY},
                         {P::kMapLruHash, BPF_MAP_TYPE_LRU_HASH},
                         {P::kMapHashOfMaps, BPF_MAP_TYPE_HASH_OF_MAPS}}) {
    record(f, p, libbpf_probe_bpf_map_type(type, nullptr));
  }
  record(f, P::kMapInnerMapFlag, probeInnerMapFlag());
  record(f, P::kMapBatch, probeMapBatch());
  struct Helper {
    P probe;
    bpf_prog_type type;
    bpf_func_id id;
  };
  for (const Helper& h : {
           Helper{P::kTcSkbLoadBytes, BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_skb_load_bytes},
           Helper{P::kTcSkbStoreBytes, BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_skb_store_bytes},
           Helper{P::kTcL3CsumReplace, BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_l3_csum_replace},
           Helper{P::kTcL4CsumReplace, BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_l4_csum_replace},
           Helper{P::kTcCsumDiff, BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_csum_diff},
           Helper{P::kTcSkbChangeTail, BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_skb_change_tail},
           Helper{P::kTcSkbPullData, BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_skb_pull_data},
           Helper{P::kTcRedirect, BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_redirect},
           Helper{P::kTcFibLookup, BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_fib_lookup},
           Helper{P::kTcRedirectNeigh, BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_redirect_neigh},
           Helper{P::kTcKtimeGetNs, BPF_PROG_TYPE_SCHED_CLS, BPF_FUNC_ktime_get_ns},
           Helper{P::kXdpLoadBytes, BPF_PROG_TYPE_XDP, BPF_FUNC_xdp_load_bytes},
           Helper{P::kXdpGetBuffLen, BPF_PROG_TYPE_XDP, BPF_FUNC_xdp_get_buff_len},
           Helper{P::kSockSocketCookie, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_get_socket_cookie},
           Helper{P::kSockNetnsCookie, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_get_netns_cookie},
           Helper{P::kSockSetRetval, BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_FUNC_set_retval},
       }) {
    record(f, h.probe, libbpf_probe_bpf_helper(h.type, h.id, nullptr));
  }
  // Iterator targets and kfuncs are functions in the kernel's BTF: what
  // libbpf resolves `SEC("iter/udp")` and `__ksym` externs against.
  record(f, P::kIterUdp, probeBtfFunc(vmlinux, "bpf_iter_udp"));
  record(f, P::kKfuncSockDestroy, probeBtfFunc(vmlinux, "bpf_sock_destroy"));
  record(f, P::kSoNetnsCookie, probeSoNetnsCookie());
  btf__free(vmlinux);
  return f;
}

std::string lacking(const KernelProbeInfo& info) {
  return std::string(info.name) + " (Linux " + std::string(info.since) + ")";
}

}  // namespace

std::optional<KernelVersion> KernelVersion::parse(std::string_view release) {
  KernelVersion v;
  int* parts[] = {&v.major, &v.minor, &v.patch};
  const char* p = release.data();
  const char* end = release.data() + release.size();
  size_t parsed = 0;
  while (parsed < std::size(parts)) {
    auto [next, ec] = std::from_chars(p, end, *parts[parsed]);
    if (ec != std::errc()) break;
    ++parsed;
    p = next;
    if (p == end || *p != '.') break;
    ++p;
  }
  // A major and a minor at least: "6" alone or no number is no release.
  if (parsed < 2) return std::nullopt;
  return v;
}

std::string KernelVersion::toString() const {
  return std::to_string(major) + "." + std::to_string(minor);
}

std::span<const KernelProbeInfo> kernelProbes() { return kProbes; }

const KernelProbeInfo& kernelProbe(KernelProbe p) { return kProbes[static_cast<size_t>(p)]; }

KernelVersion requiredSince() {
  KernelVersion newest;
  for (const KernelProbeInfo& info : kProbes) {
    if (!info.required) continue;
    std::string_view since = info.since;
    while (!since.empty() && !(since.front() >= '0' && since.front() <= '9')) since.remove_prefix(1);
    if (auto v = KernelVersion::parse(since); v && *v > newest) newest = *v;
  }
  return newest;
}

KernelFeatures KernelFeatures::probe() {
  static const KernelFeatures probed = probeNow();
  return probed;
}

KernelFeatures KernelFeatures::all(std::string release) {
  KernelFeatures f;
  f.release_ = std::move(release);
  f.supported_.fill(true);
  return f;
}

void KernelFeatures::set(KernelProbe p, bool supported, std::string why) {
  supported_[index(p)] = supported;
  why_[index(p)] = supported ? std::string() : std::move(why);
}

std::vector<KernelProbe> KernelFeatures::missingRequired() const {
  std::vector<KernelProbe> out;
  for (const KernelProbeInfo& info : kProbes) {
    if (info.required && !has(info.probe)) out.push_back(info.probe);
  }
  return out;
}

std::map<ModeFeature, std::string> KernelFeatures::degradations() const {
  std::map<ModeFeature, std::string> lacks;
  for (const KernelProbeInfo& info : kProbes) {
    if (info.required || !info.degrades || has(info.probe)) continue;
    std::string& l = lacks[*info.degrades];
    l += (l.empty() ? "" : ", ") + lacking(info);
  }
  std::map<ModeFeature, std::string> out;
  for (const Effect& e : kEffects) {
    auto it = lacks.find(e.feature);
    if (it != lacks.end()) out[e.feature] = std::string(e.text) + " (this kernel lacks " + it->second + ")";
  }
  return out;
}

Result<void> checkRequired(const KernelFeatures& features) {
  const auto missing = features.missingRequired();
  if (missing.empty()) return okResult();
  std::string list;
  for (KernelProbe p : missing) {
    list += (list.empty() ? "" : "; ") + lacking(kernelProbe(p)) + ": " + features.why(p);
  }
  return Error{ErrorCode::kFailedPrecondition,
               "Linux " + features.release() + " lacks what the eBPF mode cannot run without: " +
                   list + " (every one is in Linux " + requiredSince().toString() +
                   " and later; choose another --mode here)"};
}

Result<void> checkKernel(const KernelFeatures& features, bool allowUntested) {
  if (auto r = checkRequired(features); !r) return r;
  const auto version = KernelVersion::parse(features.release());
  if ((version && *version >= kTestedMinimumKernel) || allowUntested) return okResult();
  return Error{ErrorCode::kFailedPrecondition,
               "the eBPF mode needs Linux " + kTestedMinimumKernel.toString() +
                   " or later, the oldest release it is tested on; this kernel is " +
                   features.release() +
                   " (uname -r). Its probes found every feature the mode requires, so "
                   "--ebpf-allow-untested-kernel=true starts it anyway, untested (a verifier "
                   "refusing a program still stops it); or choose another --mode"};
}

}  // namespace sluice::bpf
