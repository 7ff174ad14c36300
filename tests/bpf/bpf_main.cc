// main() for the bpf suite: exits 77 (meson's skip) with the reason when this
// machine cannot load and test-run BPF programs, instead of failing.
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "SKIP: BPF tests need root (CAP_BPF + CAP_NET_ADMIN)\n");
    return 77;
  }
  for (auto type : {BPF_PROG_TYPE_SCHED_CLS, BPF_PROG_TYPE_XDP}) {
    int r = libbpf_probe_bpf_prog_type(type, nullptr);
    if (r != 1) {
      std::fprintf(stderr, "SKIP: kernel cannot load BPF program type %s: %s\n",
                   libbpf_bpf_prog_type_str(type), r < 0 ? std::strerror(-r) : "unsupported");
      return 77;
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
