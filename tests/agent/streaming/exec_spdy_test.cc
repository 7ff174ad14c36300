// kubectl exec over SPDY (v4/v3/v2.channel.k8s.io) with real processes: the
// launcher here spawns /bin/sh with pipes (or a real pty for tty), the
// client side is spdy_test_client.h over a socketpair, opening the streams
// in kubectl's order (error, stdin, stdout, stderr, resize).
#include "control/agent/streaming/exec_spdy.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>

#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/agent/streaming/spdy_test_client.h"

extern char** environ;

namespace sluice::agent::streaming {
namespace {

using testing::SpdyTestClient;

// What a TestProcess saw, kept by the test after the server dropped it.
struct Record {
  std::mutex mu;
  std::condition_variable applied;  // notified when a resize reached the pty
  int resizesApplied = 0;
  std::vector<std::pair<uint16_t, uint16_t>> resizes;
  int exitCode = -1;
  std::pair<int, int> ptySize{-1, -1};  // rows, cols when the process was dropped
};

// A process on pipes, or on a pty when options.tty.
class TestProcess final : public ExecProcess {
 public:
  static Result<std::unique_ptr<ExecProcess>> spawn(const ExecOptions& o,
                                                    std::shared_ptr<Record> rec) {
    auto p = std::unique_ptr<TestProcess>(new TestProcess());
    p->rec_ = std::move(rec);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    int childIn = -1, childOut = -1, childErr = -1;
    if (o.tty) {
      int master, slave;
      if (openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) {
        return Error::internal("openpty failed");
      }
      p->master_ = master;
      childIn = childOut = childErr = slave;
      posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    } else {
      int in[2], out[2], err[2];
      EXPECT_EQ(::pipe2(in, O_CLOEXEC), 0);
      EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
      EXPECT_EQ(::pipe2(err, O_CLOEXEC), 0);
      p->in_ = in[1];
      p->out_ = out[0];
      p->err_ = err[0];
      childIn = in[0];
      childOut = out[1];
      childErr = err[1];
    }
    posix_spawn_file_actions_adddup2(&fa, childIn, 0);
    posix_spawn_file_actions_adddup2(&fa, childOut, 1);
    posix_spawn_file_actions_adddup2(&fa, childErr, 2);
    std::vector<char*> argv;
    for (const auto& a : o.command) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    int rc = posix_spawn(&p->pid_, argv[0], &fa, &attr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    // The child's ends stay with the child only.
    ::close(childIn);
    if (!o.tty) {
      ::close(childOut);
      ::close(childErr);
    }
    if (rc != 0) {
      return Error::notFound(std::string("exec: \"") + o.command[0] +
                             "\": executable file not found: " + std::strerror(rc));
    }
    return std::unique_ptr<ExecProcess>(std::move(p));
  }
  ~TestProcess() override {
    if (master_ >= 0) {
      winsize ws{};
      ::ioctl(master_, TIOCGWINSZ, &ws);
      std::lock_guard<std::mutex> lock(rec_->mu);
      rec_->ptySize = {ws.ws_row, ws.ws_col};
    }
    for (int fd : {in_, out_, err_, master_}) {
      if (fd >= 0) ::close(fd);
    }
  }
  int stdinFd() const override { return master_ >= 0 ? master_ : in_; }
  int stdoutFd() const override { return master_ >= 0 ? master_ : out_; }
  int stderrFd() const override { return master_ >= 0 ? -1 : err_; }
  void closeStdin() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (master_ >= 0) {
      (void)!::write(master_, "\x04", 1);  // the terminal's EOF
    } else if (in_ >= 0) {
      ::close(in_);
      in_ = -1;
    }
  }
  Result<void> resize(uint16_t width, uint16_t height) override {
    {
      std::lock_guard<std::mutex> lock(rec_->mu);
      rec_->resizes.emplace_back(width, height);
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (master_ < 0) return okResult();
    winsize ws{};
    ws.ws_col = width;
    ws.ws_row = height;
    if (::ioctl(master_, TIOCSWINSZ, &ws) != 0) return Error::internal("TIOCSWINSZ");
    std::lock_guard<std::mutex> rec(rec_->mu);
    ++rec_->resizesApplied;
    rec_->applied.notify_all();
    return okResult();
  }
  int wait() override {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    {
      std::lock_guard<std::mutex> lock(rec_->mu);
      rec_->exitCode = code;
    }
    std::lock_guard<std::mutex> lock(mu_);
    reaped_ = true;
    return code;
  }
  void kill() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!reaped_) ::kill(pid_, SIGKILL);
  }

 private:
  TestProcess() = default;
  std::shared_ptr<Record> rec_;
  std::mutex mu_;
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1, err_ = -1, master_ = -1;
  bool reaped_ = false;
};

class ExecSpdyTest : public ::testing::Test {
 protected:
  void start(const std::string& protocol, ExecOptions options, ExecSpdyOptions spdy = {}) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    client_ = std::make_unique<SpdyTestClient>(sv[0]);
    conn_ = std::make_unique<FdByteStream>(sv[1]);
    ExecLauncher launcher = [this](const ExecOptions& o) -> Result<std::unique_ptr<ExecProcess>> {
      if (o.command.empty() || o.command[0] == "/no/such/binary") {
        return Error::notFound(
            "exec: \"/no/such/binary\": stat /no/such/binary: no such file or directory");
      }
      return TestProcess::spawn(o, record_);
    };
    server_ = std::thread([this, protocol, options, launcher, spdy] {
      result_ = serveExecSpdy(*conn_, protocol, options, launcher, spdy);
    });
  }
  Result<void> finish() {
    if (server_.joinable()) server_.join();
    return result_;
  }
  void TearDown() override {
    if (client_) client_->closeNow();
    (void)finish();
  }
  // kubectl's stream creation order, each waiting for its reply.
  void openStreams(std::initializer_list<std::pair<uint32_t, const char*>> streams) {
    auto& c = *client_;
    for (const auto& s : streams) {
      const uint32_t id = s.first;  // a plain variable: clang 14 cannot capture bindings
      c.synStream(id, {{"streamtype", s.second}});
      ASSERT_TRUE(c.waitUntil([&] { return c.stream(id).replied; }));
    }
  }

  std::unique_ptr<SpdyTestClient> client_;
  std::unique_ptr<FdByteStream> conn_;
  std::thread server_;
  Result<void> result_;
  std::shared_ptr<Record> record_ = std::make_shared<Record>();
};

ExecOptions shell(const std::string& script, bool in, bool out, bool err, bool tty = false) {
  ExecOptions o;
  o.command = {"/bin/sh", "-c", script};
  o.stdin = in;
  o.stdout = out;
  o.stderr = err;
  o.tty = tty;
  return o;
}

// `kubectl exec -i pod -- sh -c 'cat; echo oops >&2; exit 3'`: stdin in,
// both outputs back, and the exit code in v4's status.
TEST_F(ExecSpdyTest, V4CarriesStdioAndTheExitCode) {
  start("v4.channel.k8s.io", shell("cat; echo oops >&2; exit 3", true, true, true));
  auto& c = *client_;
  openStreams({{1, "error"}, {3, "stdin"}, {5, "stdout"}, {7, "stderr"}});
  c.data(3, "hello\n", /*fin=*/true);
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(1).fin && c.stream(5).fin && c.stream(7).fin; }));
  EXPECT_EQ(c.stream(5).data, "hello\n");
  EXPECT_EQ(c.stream(7).data, "oops\n");
  auto status = nlohmann::json::parse(c.stream(1).data, nullptr, false);
  ASSERT_FALSE(status.is_discarded()) << c.stream(1).data;
  EXPECT_EQ(status["status"], "Failure");
  EXPECT_EQ(status["reason"], "NonZeroExitCode");
  EXPECT_EQ(status["details"]["causes"][0]["reason"], "ExitCode");
  EXPECT_EQ(status["details"]["causes"][0]["message"], "3");
  c.readToEof();
  ASSERT_EQ(c.goAways().size(), 1u) << "the session closes like kubelet's conn.Close()";
  EXPECT_TRUE(finish().ok());
}

TEST_F(ExecSpdyTest, V4SuccessSendsSuccessStatus) {
  start("v4.channel.k8s.io", shell("echo hi", false, true, true));
  auto& c = *client_;
  openStreams({{1, "error"}, {3, "stdout"}, {5, "stderr"}});
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(1).fin && c.stream(3).fin; }));
  EXPECT_EQ(c.stream(3).data, "hi\n");
  auto status = nlohmann::json::parse(c.stream(1).data, nullptr, false);
  ASSERT_FALSE(status.is_discarded()) << c.stream(1).data;
  EXPECT_EQ(status["status"], "Success");
  EXPECT_TRUE(finish().ok());
}

// v2/v3: nothing on the error stream for success, the message as text for
// a failure.
TEST_F(ExecSpdyTest, V3ReportsFailureAsTextAndSuccessAsNothing) {
  start("v3.channel.k8s.io", shell("exit 7", false, true, true));
  auto& c = *client_;
  openStreams({{1, "error"}, {3, "stdout"}, {5, "stderr"}});
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(1).fin; }));
  EXPECT_EQ(c.stream(1).data, "command terminated with non-zero exit code: exit status 7");
  client_->closeNow();
  client_.reset();
  EXPECT_TRUE(finish().ok());

  start("v2.channel.k8s.io", shell("true", false, true, false));
  auto& c2 = *client_;
  openStreams({{1, "error"}, {3, "stdout"}});
  ASSERT_TRUE(c2.waitUntil([&] { return c2.stream(1).fin; }));
  EXPECT_EQ(c2.stream(1).data, "");
}

// A command that cannot start: kubelet's InternalError status.
TEST_F(ExecSpdyTest, MissingExecutableReportsAnInternalError) {
  ExecOptions o = shell("", false, true, true);
  o.command = {"/no/such/binary"};
  start("v4.channel.k8s.io", o);
  auto& c = *client_;
  openStreams({{1, "error"}, {3, "stdout"}, {5, "stderr"}});
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(1).fin; }));
  auto status = nlohmann::json::parse(c.stream(1).data, nullptr, false);
  ASSERT_FALSE(status.is_discarded()) << c.stream(1).data;
  EXPECT_EQ(status["status"], "Failure");
  EXPECT_EQ(status["reason"], "InternalError");
  const std::string msg = status["message"];
  EXPECT_NE(msg.find("error executing command in container: exec: \"/no/such/binary\""),
            std::string::npos)
      << msg;
}

// `kubectl exec -it`: a real pty (stdout carries the echo), no stderr
// stream, and the resize channel reaches the terminal.
TEST_F(ExecSpdyTest, TtyWithResize) {
  start("v4.channel.k8s.io", shell("read line; echo got:$line", true, true, true, /*tty=*/true));
  auto& c = *client_;
  openStreams({{1, "error"}, {3, "stdin"}, {5, "stdout"}, {7, "resize"}});
  c.data(7, "{\"Width\":100,\"Height\":40}\n{\"width\":120,\"height\":50}\n");
  // The protocol orders no channel against another (kubelet's neither): the
  // line on stdin ends the process, so it goes only once both sizes reached
  // the terminal, or a resize could meet a process already gone.
  {
    std::unique_lock<std::mutex> lock(record_->mu);
    ASSERT_TRUE(record_->applied.wait_for(lock, std::chrono::seconds(10),
                                          [&] { return record_->resizesApplied == 2; }));
  }
  c.data(3, "abc\n");
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(1).fin && c.stream(5).fin; }));
  EXPECT_NE(c.stream(5).data.find("got:abc"), std::string::npos) << c.stream(5).data;
  auto status = nlohmann::json::parse(c.stream(1).data, nullptr, false);
  EXPECT_EQ(status["status"], "Success") << c.stream(1).data;
  // Both sizes applied, in order, to the kernel's terminal: only checkable
  // once the server returned (the resize pump may trail the process).
  client_->closeNow();
  client_.reset();
  ASSERT_TRUE(finish().ok());
  std::lock_guard<std::mutex> lock(record_->mu);
  EXPECT_EQ(record_->resizes, (std::vector<std::pair<uint16_t, uint16_t>>{{100, 40}, {120, 50}}));
  EXPECT_EQ(record_->ptySize, (std::pair<int, int>{50, 120}));
  EXPECT_EQ(record_->exitCode, 0);
}

// Ctrl-C on kubectl: the connection goes away; the process is killed and
// reaped, and serveExecSpdy returns.
TEST_F(ExecSpdyTest, ClientDisconnectKillsTheProcess) {
  start("v4.channel.k8s.io", shell("echo started; exec sleep 1000", false, true, true));
  auto& c = *client_;
  openStreams({{1, "error"}, {3, "stdout"}, {5, "stderr"}});
  ASSERT_TRUE(c.waitUntil([&] { return c.stream(3).data == "started\n"; }));
  client_->closeNow();
  client_.reset();
  EXPECT_TRUE(finish().ok());
  std::lock_guard<std::mutex> lock(record_->mu);
  EXPECT_EQ(record_->exitCode, 128 + SIGKILL);
}

// The client never opens all its streams: the server gives up.
TEST_F(ExecSpdyTest, MissingStreamsTimeOut) {
  ExecSpdyOptions s;
  s.streamCreationTimeout = std::chrono::milliseconds(100);
  start("v4.channel.k8s.io", shell("true", true, true, true), s);
  openStreams({{1, "error"}});
  auto r = finish();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("timed out waiting for client to create streams (1 of 4)"),
            std::string::npos)
      << r.error().message;
}

TEST_F(ExecSpdyTest, RejectsUnknownProtocolAndNoStreams) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  FdByteStream a(sv[0]), b(sv[1]);
  auto r = serveExecSpdy(a, "channel.k8s.io", shell("true", false, true, false), nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("\"channel.k8s.io\""), std::string::npos);
  r = serveExecSpdy(a, "v4.channel.k8s.io", shell("true", false, false, false), nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("at least 1 of stdin, stdout, stderr"), std::string::npos);
}

}  // namespace
}  // namespace sluice::agent::streaming
