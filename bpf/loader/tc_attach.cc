#include "bpf/loader/tc_attach.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace sluice::bpf {
namespace {

bpf_tc_attach_point point(TcDirection dir) {
  return dir == TcDirection::kIngress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
}

std::string where(int ifindex, TcDirection dir) {
  return std::string("tc ") + (dir == TcDirection::kIngress ? "ingress" : "egress") +
         " of ifindex " + std::to_string(ifindex);
}

}  // namespace

Result<void> tcAttach(int ifindex, TcDirection dir, int progFd) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point(dir));
  int r = bpf_tc_hook_create(&hook);
  if (r < 0 && r != -EEXIST) {
    return Error::internal(where(ifindex, dir) + ": create clsact: " + std::strerror(-r));
  }
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = progFd, .flags = BPF_TC_F_REPLACE,
              .handle = kTcHandle, .priority = kTcPriority);
  r = bpf_tc_attach(&hook, &opts);
  if (r < 0) return Error::internal(where(ifindex, dir) + ": attach: " + std::strerror(-r));
  return okResult();
}

Result<void> tcDetach(int ifindex, TcDirection dir) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point(dir));
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
  int r = bpf_tc_detach(&hook, &opts);
  if (r < 0 && r != -ENOENT && r != -EINVAL) {
    return Error::internal(where(ifindex, dir) + ": detach: " + std::strerror(-r));
  }
  return okResult();
}

Result<uint32_t> tcAttachedProgramId(int ifindex, TcDirection dir) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point(dir));
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
  int r = bpf_tc_query(&hook, &opts);
  if (r == -ENOENT || r == -EINVAL) return 0u;
  if (r < 0) return Error::internal(where(ifindex, dir) + ": query: " + std::strerror(-r));
  return opts.prog_id;
}

}  // namespace sluice::bpf
