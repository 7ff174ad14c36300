// BPF_PROG_TEST_RUN for packet tests and benchmarks.
//
// The kernel's `repeat` reuses one buffer, so a rewriting program would see
// its own output from the second run on: run() always uses repeat=1 and a
// fresh copy of the input.
#pragma once

#include <bpf/bpf.h>

#include <cstdint>
#include <vector>

#include "bpf/loader/libbpf_opts.h"

namespace sluice::testing {

struct TestRunResult {
  int err = 0;              // bpf() result, 0 or -errno
  uint32_t retval = 0;      // the program's verdict (TC_ACT_*, XDP_*)
  uint32_t durationNs = 0;  // the kernel's measurement of one run
  std::vector<uint8_t> out; // the packet as the program left it
};

inline TestRunResult testRun(int progFd, const std::vector<uint8_t>& packet) {
  TestRunResult r;
  std::vector<uint8_t> in = packet;
  // Room for programs that grow the packet (encapsulation, ICMP replies).
  r.out.resize(packet.size() + 256);
  auto opts = sluice::bpf::libbpfOpts<bpf_test_run_opts>();
  opts.data_in = in.data();
  opts.data_out = r.out.data();
  opts.data_size_in = static_cast<uint32_t>(in.size());
  opts.data_size_out = static_cast<uint32_t>(r.out.size());
  opts.repeat = 1;
  r.err = bpf_prog_test_run_opts(progFd, &opts);
  r.retval = opts.retval;
  r.durationNs = opts.duration;
  r.out.resize(r.err == 0 ? opts.data_size_out : 0);
  return r;
}

}  // namespace sluice::testing
