// What the API server tests share: a scratch directory per test case and
// the options a test server starts from (its own data dir, any free port,
// no compaction).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

#include "control/server/api_server.h"

namespace sluice::server::testing {

// temp/<prefix>-<pid>-<test name>, emptied: unique per process and case.
inline std::filesystem::path scratchDir(std::string_view prefix) {
  auto dir = std::filesystem::temp_directory_path() /
             (std::string(prefix) + "-" + std::to_string(::getpid()) + "-" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  return dir;
}

inline ApiServerOptions testServerOptions(const std::filesystem::path& dataDir) {
  ApiServerOptions o;
  o.dataDir = dataDir.string();
  o.listenPort = 0;
  o.compactInterval = std::chrono::seconds(0);
  return o;
}

}  // namespace sluice::server::testing
