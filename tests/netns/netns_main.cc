// main() for the netns suite: exits 77 (meson's skip) with the reason when
// this machine cannot run it: not root, no `ip`, no network namespaces, or
// a kernel that cannot load the tc and cgroup socket programs.
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "SKIP: netns tests need root (netns, veth, BPF, cgroups)\n");
    return 77;
  }
  if (std::system("ip -V >/dev/null 2>&1") != 0) {
    std::fprintf(stderr, "SKIP: iproute2's `ip` is not installed\n");
    return 77;
  }
  // A throwaway child tries to create a network namespace.
  const pid_t pid = fork();
  if (pid == 0) _exit(unshare(CLONE_NEWNET) == 0 ? 0 : 1);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
    std::fprintf(stderr, "SKIP: cannot create network namespaces here\n");
    return 77;
  }
  for (auto type : {BPF_PROG_TYPE_SCHED_CLS, BPF_PROG_TYPE_CGROUP_SOCK_ADDR}) {
    int r = libbpf_probe_bpf_prog_type(type, nullptr);
    if (r != 1) {
      std::fprintf(stderr, "SKIP: kernel cannot load BPF program type %s: %s\n",
                   libbpf_bpf_prog_type_str(type), r < 0 ? std::strerror(-r) : "unsupported");
      return 77;
    }
  }
  // A client child that dies must fail its test, not kill the runner.
  signal(SIGPIPE, SIG_IGN);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
