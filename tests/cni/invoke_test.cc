// Executing plugins as a runtime does, against small shell-script plugins:
// lookup, environment, error objects, crashes, timeouts, unread stdin.
#include "cni/invoke.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>

#include "tests/cni/cni_test_util.h"

namespace sluice::cni {
namespace {

class InvokeTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }
  // Writes an executable /bin/sh plugin named `name` with `body`.
  std::string script(const std::string& name, const std::string& body, mode_t mode = 0755) {
    const std::string path = dir_.path() + "/" + name;
    FILE* f = std::fopen(path.c_str(), "w");
    EXPECT_NE(f, nullptr);
    std::fprintf(f, "#!/bin/sh\n%s\n", body.c_str());
    std::fclose(f);
    ::chmod(path.c_str(), mode);
    return path;
  }
  Invocation inv() const {
    Invocation i;
    i.command = Command::kAdd;
    i.containerId = "c1";
    i.netns = "/run/netns/x";
    i.ifName = "eth0";
    return i;
  }
  testing::ScopedDir dir_;
};

// Only plain names are looked up, in CNI_PATH order, executables only.
TEST_F(InvokeTest, FindsPluginsByPlainNameInPathOrder) {
  testing::ScopedDir second;
  script("p", "exit 0", 0644);  // not executable: skipped
  const std::string dirs = dir_.path() + ":" + second.path();
  FILE* f = std::fopen((second.path() + "/p").c_str(), "w");
  std::fputs("#!/bin/sh\n", f);
  std::fclose(f);
  ::chmod((second.path() + "/p").c_str(), 0755);
  auto found = findPlugin("p", splitCniPath(dirs));
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(*found, second.path() + "/p");
  EXPECT_EQ(findPlugin("../p", splitCniPath(dirs)).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(findPlugin("q", splitCniPath(dirs)).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(splitCniPath("::/a::/b:"), (std::vector<std::string>{"/a", "/b"}));
}

// The child sees exactly one of each CNI_* variable: the invocation's.
TEST_F(InvokeTest, EnvironmentCarriesTheInvocation) {
  const std::string p = script("env", "env | grep ^CNI_ | sort; cat >/dev/null");
  auto out = execPlugin({p, buildEnv({"CNI_COMMAND=DEL", "KEEP=1"}, inv()), "{}", -1, 0});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->stdoutData,
            "CNI_COMMAND=ADD\nCNI_CONTAINERID=c1\nCNI_IFNAME=eth0\nCNI_NETNS=/run/netns/x\n");
}

// A plugin's error object reaches the caller with its code, prefixed.
TEST_F(InvokeTest, PluginErrorObjectPassesThrough) {
  const std::string p =
      script("bad", R"(echo '{"cniVersion":"1.0.0","code":7,"msg":"ipam.subnet: required"}'; exit 1)");
  auto r = invokePlugin(p, inv(), {}, "{}", "ipam plugin bad");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, kCodeInvalidConfig);
  EXPECT_EQ(r.error().msg, "ipam plugin bad: ipam.subnet: required");
}

// A crash without an error object is code 103 with the plugin's stderr.
TEST_F(InvokeTest, CrashWithoutErrorObjectKeepsStderr) {
  const std::string p = script("crash", "echo 'panic: runtime error' >&2; exit 2");
  auto r = invokePlugin(p, inv(), {}, "{}", "plugin crash");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, kCodeDelegateFailed);
  EXPECT_NE(r.error().msg.find("exited with status 2"), std::string::npos);
  EXPECT_NE(r.error().details.find("panic: runtime error"), std::string::npos);
}

// A plugin that never answers is killed at the deadline: code 11.
TEST_F(InvokeTest, HungPluginIsKilledAtTheTimeout) {
  const std::string p = script("hang", "exec sleep 30");
  const auto start = std::chrono::steady_clock::now();
  auto r = invokePlugin(p, inv(), {}, "{}", "plugin hang", -1, 300);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, kCodeTryAgainLater);
  EXPECT_LT(took, std::chrono::seconds(5));
}

// A plugin that exits without reading a large config does not kill the
// caller with SIGPIPE.
TEST_F(InvokeTest, UnreadStdinIsNotFatal) {
  const std::string p = script("early", R"(echo '{"cniVersion":"1.1.0","ips":[]}')");
  auto r = invokePlugin(p, inv(), {}, std::string(4 << 20, ' '), "plugin early");
  ASSERT_TRUE(r.ok()) << r.error().msg;
  EXPECT_EQ((*r)["cniVersion"], "1.1.0");
}

}  // namespace
}  // namespace sluice::cni
