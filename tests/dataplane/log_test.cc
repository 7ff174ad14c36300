// The logging facade (dataplane/log.h): verbosity, repeat limiting and the
// plain text form the default sink writes, through a recording sink.
#include "dataplane/log.h"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>

namespace sluice::log {
namespace {

struct Seen {
  Severity severity;
  int verbosity;
  std::string text;
  uint64_t suppressed;
};

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setSink([this](const Record& r) {
      std::lock_guard lock(mu_);
      seen_.push_back({r.severity, r.verbosity, formatText(r), r.suppressed});
    });
  }
  void TearDown() override {
    setSink(nullptr);
    setVerbosity(0);
  }
  std::vector<Seen> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

  std::mutex mu_;
  std::vector<Seen> seen_;
};

// -v 2 lets info up to V(2) through; warnings and errors always pass.
TEST_F(LogTest, VerbosityGatesInfoButNeverWarningsOrErrors) {
  setVerbosity(2);
  info(2, "proxy", "synced");
  info(4, "server", "HTTP");
  warning("agent", "slow");
  setVerbosity(0);
  error("agent", "failed");
  info(1, "proxy", "quiet");
  auto s = seen();
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].severity, Severity::kInfo);
  EXPECT_EQ(s[0].verbosity, 2);
  EXPECT_EQ(s[1].severity, Severity::kWarning);
  EXPECT_EQ(s[2].severity, Severity::kError);
  EXPECT_FALSE(enabled(1));
}

// A failing probe logging every sync: one line per interval, and the next
// line after it says how many were held back.
TEST_F(LogTest, RepeatsWithinTheIntervalAreCountedAndReportedWithTheNext) {
  const Limit limit{"test/probe/default/web-1", std::chrono::milliseconds(20)};
  for (int i = 0; i < 5; ++i) warning(limit, "agent", "probe failed", {{"pod", "default/web-1"}});
  ASSERT_EQ(seen().size(), 1u);
  EXPECT_EQ(seen()[0].suppressed, 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(40));  // past the interval
  warning(limit, "agent", "probe failed", {{"pod", "default/web-1"}});
  auto s = seen();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[1].suppressed, 4u);
  EXPECT_NE(s[1].text.find("suppressed=4"), std::string::npos) << s[1].text;
}

// Different keys are limited apart: one flapping endpoint does not silence another.
TEST_F(LogTest, KeysAreLimitedIndependently) {
  for (int i = 0; i < 3; ++i) {
    warning(Limit{"test/endpoint/a", std::chrono::hours(1)}, "proxy", "flap");
    warning(Limit{"test/endpoint/b", std::chrono::hours(1)}, "proxy", "flap");
  }
  EXPECT_EQ(seen().size(), 2u);
}

// klog's header, the component, the message, then logfmt fields (quoted
// when they hold spaces, quotes or '=').
TEST_F(LogTest, TextLinesHaveTheKlogHeaderAndLogfmtFields) {
  warning("proxy", "apply failed",
          {{"service", "default/web"}, {"err", "port \"http\" = 80"}, {"n", 3}});
  auto s = seen();
  ASSERT_EQ(s.size(), 1u);
  const std::string& t = s[0].text;
  EXPECT_EQ(t[0], 'W');
  EXPECT_NE(t.find(" proxy: apply failed service=default/web err=\"port \\\"http\\\" = 80\" n=3"),
            std::string::npos)
      << t;
}

TEST(LogFormatTest, JsonStringsEscapeQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(jsonString("a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\u0001\"");
  EXPECT_EQ(logfmtValue("plain"), "plain");
  EXPECT_EQ(logfmtValue(""), "\"\"");
}

}  // namespace
}  // namespace sluice::log
