// main() of the dpdk suite's tests: EAL first (without hugepages, see
// eal_env.h); a machine where it cannot start skips the whole test with
// exit code 77 and the reason.
#include <gtest/gtest.h>

#include <cstdio>

#include "tests/dpdk/eal_env.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const std::string error = sluice::dpdk::testing::initEal();
  if (!error.empty()) {
    std::fprintf(stderr, "SKIP: DPDK EAL does not start here: %s\n", error.c_str());
    return 77;
  }
  return RUN_ALL_TESTS();
}
