#include "bpf/loader/tc_attach.h"

#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

#include "bpf/loader/libbpf_opts.h"
#include "dataplane/log.h"

namespace sluice::bpf {
namespace {

bpf_tc_attach_point point(TcDirection dir) {
  return dir == TcDirection::kIngress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
}

std::string where(int ifindex, TcDirection dir) {
  return std::string("tc ") + (dir == TcDirection::kIngress ? "ingress" : "egress") +
         " of ifindex " + std::to_string(ifindex);
}

bpf_tc_hook hookFor(int ifindex, TcDirection dir) {
  auto hook = libbpfOpts<bpf_tc_hook>();
  hook.ifindex = ifindex;
  hook.attach_point = point(dir);
  return hook;
}

// sluice's filter: one fixed handle and priority, so attach replaces it and
// detach/query find it without touching other tc filters on the device.
bpf_tc_opts ourFilter() {
  auto opts = libbpfOpts<bpf_tc_opts>();
  opts.handle = kTcHandle;
  opts.priority = kTcPriority;
  return opts;
}

// libbpf prints the kernel's extack for every failed netlink request. The
// first attach attempt on a device without a clsact qdisc fails by design
// ("Parent Qdisc doesn't exists"), so that one attempt runs with libbpf's
// output muted on this thread; everything else reaches the previous
// printer (libbpf's default: warnings and info to stderr).
thread_local bool tMuted = false;
libbpf_print_fn_t gPrevious = nullptr;

int mutablePrint(enum libbpf_print_level level, const char* format, va_list args) {
  if (tMuted) return 0;
  if (gPrevious != nullptr) return gPrevious(level, format, args);
  // libbpf's levels onto the facade's: warnings stay warnings, its info
  // (program loads, map reuse) is steady-state detail, debug is -v 4.
  const int v = level == LIBBPF_WARN ? 0 : level == LIBBPF_INFO ? 2 : 4;
  if (!log::enabled(v)) return 0;
  char buf[1024];
  int n = std::vsnprintf(buf, sizeof buf, format, args);
  std::string_view text(buf, n < 0 ? 0 : std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  if (level == LIBBPF_WARN) {
    log::warning("libbpf", text);
  } else {
    log::info(v, "libbpf", text);
  }
  return n;
}

// Runs `attempt` (a libbpf call expected to fail sometimes) without output.
template <typename F>
int quietly(F&& attempt) {
  static std::once_flag once;
  std::call_once(once, [] { gPrevious = libbpf_set_print(mutablePrint); });
  tMuted = true;
  int r = attempt();
  tMuted = false;
  return r;
}

}  // namespace

Result<void> tcAttach(int ifindex, TcDirection dir, int progFd) {
  auto hook = hookFor(ifindex, dir);
  auto opts = ourFilter();
  opts.prog_fd = progFd;
  opts.flags = BPF_TC_F_REPLACE;
  // Re-attaching (an agent restart) finds the qdisc in place: try that
  // first, so the common case is one netlink request and the kernel does
  // not log "Exclusivity flag on" for a qdisc that already exists.
  if (quietly([&] { return bpf_tc_attach(&hook, &opts); }) == 0) return okResult();
  int r = bpf_tc_hook_create(&hook);
  if (r < 0 && r != -EEXIST) {
    return Error::internal(where(ifindex, dir) + ": create clsact: " + std::strerror(-r));
  }
  opts = ourFilter();
  opts.prog_fd = progFd;
  opts.flags = BPF_TC_F_REPLACE;
  r = bpf_tc_attach(&hook, &opts);
  if (r < 0) return Error::internal(where(ifindex, dir) + ": attach: " + std::strerror(-r));
  return okResult();
}

Result<void> tcDetach(int ifindex, TcDirection dir) {
  auto hook = hookFor(ifindex, dir);
  auto opts = ourFilter();
  int r = bpf_tc_detach(&hook, &opts);
  if (r < 0 && r != -ENOENT && r != -EINVAL) {
    return Error::internal(where(ifindex, dir) + ": detach: " + std::strerror(-r));
  }
  return okResult();
}

Result<uint32_t> tcAttachedProgramId(int ifindex, TcDirection dir) {
  auto hook = hookFor(ifindex, dir);
  auto opts = ourFilter();
  int r = bpf_tc_query(&hook, &opts);
  if (r == -ENOENT || r == -EINVAL) return 0u;
  if (r < 0) return Error::internal(where(ifindex, dir) + ": query: " + std::strerror(-r));
  return opts.prog_id;
}

}  // namespace sluice::bpf
