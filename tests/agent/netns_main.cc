// main() for the agent's netns suite: exits 77 (meson's skip) with the reason
// when this machine cannot create network namespaces or the binaries the
// runtime execs (sluice-cni, sluice-ipam, sluice for `echo`) are missing.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "cni/netns.h"
#include "tests/agent/agent_fixture.h"
#include "tests/cni/cni_test_util.h"

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "SKIP: pod runtime tests need root (namespaces, mounts, CNI)\n");
    return 77;
  }
  const std::string probe = sluice::cni::testing::uniqueName("slagprobe");
  auto ns = sluice::cni::Netns::create(probe);
  if (!ns) {
    std::fprintf(stderr, "SKIP: cannot create a network namespace: %s\n",
                 ns.error().message.c_str());
    return 77;
  }
  (void)sluice::cni::Netns::remove(probe);
  for (const std::string& bin :
       {sluice::cni::testing::binDir() + "/sluice-cni",
        sluice::cni::testing::binDir() + "/sluice-ipam", sluice::agent::testing::sluiceBinary()}) {
    struct stat st {};
    if (::stat(bin.c_str(), &st) != 0) {
      std::fprintf(stderr, "SKIP: %s not built (SLUICE_CNI_BIN_DIR, SLUICE_BIN)\n", bin.c_str());
      return 77;
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
