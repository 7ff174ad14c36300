// The executables' spdlog sink: each --log-format as a reader parses it,
// written to a real file (--log-file).
#include "control/logging/logging.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "dataplane/log.h"

namespace sluice::logging {
namespace {

class LoggingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice-logging-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override {
    log::setSink(nullptr);
    log::setVerbosity(0);
    std::remove(path().c_str());
    ::rmdir(dir_.c_str());
  }
  std::string path() const { return dir_ + "/log"; }
  std::string contents() const {
    std::ifstream in(path());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string dir_;
};

// --log-format json: one object per line with ts, level, v, component, msg
// and the fields, so `jq` and log shippers read them.
TEST_F(LoggingTest, JsonLinesCarryLevelVerbosityComponentMessageAndFields) {
  ASSERT_TRUE(install({2, Format::kJson, path()}).ok());
  log::info(2, "proxy", "synced", {{"services", 12}});
  log::error("server", "compaction \"failed\"", {{"err", "disk full"}});
  log::info(3, "server", "HTTP");  // above -v 2: not written
  std::istringstream lines(contents());
  std::string line;
  std::vector<nlohmann::json> got;
  while (std::getline(lines, line)) got.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(got.size(), 2u) << contents();
  EXPECT_EQ(got[0]["level"], "info");
  EXPECT_EQ(got[0]["v"], 2);
  EXPECT_EQ(got[0]["component"], "proxy");
  EXPECT_EQ(got[0]["msg"], "synced");
  EXPECT_EQ(got[0]["services"], "12");
  EXPECT_TRUE(got[0]["ts"].is_string());
  EXPECT_EQ(got[1]["level"], "error");
  EXPECT_EQ(got[1]["msg"], "compaction \"failed\"");
  EXPECT_EQ(got[1]["err"], "disk full");
}

// --log-format logfmt: key=value pairs, values quoted where needed.
TEST_F(LoggingTest, LogfmtLinesAreKeyValuePairs) {
  ASSERT_TRUE(install({0, Format::kLogfmt, path()}).ok());
  log::warning("agent", "probe failed", {{"pod", "default/web-1"}, {"err", "connection refused"}});
  std::string text = contents();
  EXPECT_EQ(text.rfind("ts=", 0), 0u) << text;
  EXPECT_NE(text.find(" level=warning v=0 component=agent msg=\"probe failed\" pod=default/web-1 "
                      "err=\"connection refused\"\n"),
            std::string::npos)
      << text;
}

// --log-format text: klog's header letter and "component: message fields".
TEST_F(LoggingTest, TextLinesLookLikeKlog) {
  ASSERT_TRUE(install({0, Format::kText, path()}).ok());
  log::warning("agent", "probe failed", {{"pod", "default/web-1"}});
  std::string text = contents();
  EXPECT_EQ(text[0], 'W') << text;
  EXPECT_NE(text.find(" agent: probe failed pod=default/web-1\n"), std::string::npos) << text;
}

TEST(LogFormatFlagTest, UnknownFormatsAreRefusedNamingTheChoices) {
  auto f = parseFormat("yaml");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message.find("text, logfmt or json"), std::string::npos);
}

}  // namespace
}  // namespace sluice::logging
