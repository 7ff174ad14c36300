// main() for the netns suite: exits 77 (meson's skip) with the reason when
// this machine cannot create network namespaces or the plugin binaries are
// missing, instead of failing.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "cni/netns.h"
#include "tests/cni/cni_test_util.h"

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "SKIP: netns tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN for setns)\n");
    return 77;
  }
  const std::string probe = sluice::cni::testing::uniqueName("slprobe");
  auto ns = sluice::cni::Netns::create(probe);
  if (!ns) {
    std::fprintf(stderr, "SKIP: cannot create a network namespace: %s\n",
                 ns.error().message.c_str());
    return 77;
  }
  (void)sluice::cni::Netns::remove(probe);
  struct stat st {};
  const std::string plugin = sluice::cni::testing::binDir() + "/sluice-cni";
  if (::stat(plugin.c_str(), &st) != 0) {
    std::fprintf(stderr, "SKIP: %s not built (set SLUICE_CNI_BIN_DIR)\n", plugin.c_str());
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
