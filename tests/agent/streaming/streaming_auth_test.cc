// Who may use the agent's streaming server (kubectl logs/exec/port-forward
// through the API server): only a caller presenting the agent's own node
// token, and no server at all without one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "control/agent/streaming/streaming_server.h"
#include "tests/control/server/https_client.h"

namespace sluice::agent::streaming {
namespace {

class StreamingAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sluice-streaming-auth-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  StreamingServerOptions options(std::string token) {
    StreamingServerOptions o;
    o.address = "127.0.0.1";
    o.port = 0;
    o.tlsDir = dir_.string();
    o.token = std::move(token);
    return o;
  }
  // A backend that knows no pod: every authenticated request gets its 404.
  static StreamingBackend noPods() {
    StreamingBackend b;
    b.logs = [](const std::string&, const std::string&, const std::string&, bool) -> Result<LogSource> {
      return Error::notFound("no such pod");
    };
    return b;
  }
  std::filesystem::path dir_;
};

// Unauthenticated, anyone reaching the port could exec into every pod: the
// server refuses to start instead.
TEST_F(StreamingAuthTest, RefusesToStartWithoutAToken) {
  auto s = StreamingServer::start(options(""), noPods());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kFailedPrecondition);
  EXPECT_NE(s.error().message.find("node-kubeconfig"), std::string::npos) << s.error().message;
}

// Another token, a prefix of the right one, or none: 401. The node's own
// token: through to the backend.
TEST_F(StreamingAuthTest, OnlyTheNodesOwnTokenGetsThrough) {
  auto s = StreamingServer::start(options("sluice-node.n1.abcdef"), noPods());
  ASSERT_TRUE(s.ok()) << s.error().message;
  const std::string ca = [&] {
    std::ifstream f(dir_ / "ca.crt");
    return std::string(std::istreambuf_iterator<char>(f), {});
  }();
  const std::string path = "/containerLogs/default/p/c";
  for (const char* token : {"sluice-node.n2.abcdef", "sluice-node.n1.abcde", "", "sluice-node.n1.abcdef0"}) {
    server::testing::HttpsClient c("127.0.0.1", (*s)->port(), ca, token);
    EXPECT_EQ(c.get(path).status, 401) << "token '" << token << "'";
  }
  server::testing::HttpsClient good("127.0.0.1", (*s)->port(), ca, "sluice-node.n1.abcdef");
  EXPECT_EQ(good.get(path).status, 404);
}

}  // namespace
}  // namespace sluice::agent::streaming
