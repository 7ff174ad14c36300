// main() for the IPVS tests of the vm suite: they need a kernel with ip_vs (and ctnetlink), which
// this host lacks, so meson runs them through tests/vm/vm_run.py inside a Debian kernel. Run
// anywhere else they exit 77 (meson's skip) with the reason instead of failing.
#include <gtest/gtest.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>

#include "ipvs/netlink_client.h"

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "SKIP: IPVS tests need root (CAP_NET_ADMIN)\n");
    return 77;
  }
  {
    auto client = sluice::ipvs::NetlinkClient::create();
    if (!client) {
      std::fprintf(stderr, "SKIP: %s (run through tests/vm/vm_run.py)\n",
                   client.error().message.c_str());
      return 77;
    }
    utsname u{};
    uname(&u);
    std::printf("kernel %s, IPVS family id %u\n", u.release, (*client)->familyId());
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
