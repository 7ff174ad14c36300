// The HTTPS server's own defences, with a small test handler on a real
// listener: handler exceptions become 500s, pre-authentication timeouts,
// admission before the body is read, the connection cap with eviction, and
// accept() backing off when the process is out of fds.
#include "control/server/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "control/server/credentials.h"
#include "tests/control/server/https_client.h"
#include "tests/control/server/server_fixture.h"

namespace sluice::server {
namespace {

using namespace std::chrono_literals;
using testing::connectTcp;
using testing::HttpsClient;
using testing::tcpClosedByPeer;
using testing::TlsConnection;

class TestHandler : public HttpHandler {
 public:
  Admission admit(const HttpRequest& req) override {
    if (req.path == "/deny") {
      Admission a;
      a.admitted = false;
      a.status = 429;
      a.headers = {{"Retry-After", "1"}};
      a.body = "busy";
      return a;
    }
    Admission a;
    inFlight_.fetch_add(1);
    a.ticket = std::shared_ptr<void>(nullptr, [this](void*) {
      std::lock_guard lock(mu_);
      inFlight_.fetch_sub(1);
      cv_.notify_all();
    });
    return a;
  }

  void handle(HttpRequest req, std::shared_ptr<ResponseWriter> writer) override {
    if (req.path == "/throw") throw std::runtime_error("handler bug");
    if (req.path == "/throw-int") throw 42;
    if (req.path == "/stream-throw") {
      writer->startStream(200, {{"Content-Type", "text/plain"}});
      writer->writeChunk("partial");
      throw std::logic_error("failed mid-stream");
    }
    if (req.path == "/block") {
      std::unique_lock lock(mu_);
      ++blocked_;
      cv_.notify_all();
      cv_.wait(lock, [this] { return released_; });
    }
    writer->send(200, {{"Content-Type", "text/plain"}}, "ok " + req.body);
  }

  void waitBlocked(int n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 10s, [&] { return blocked_ >= n; });
  }
  void release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  int inFlight() const { return inFlight_.load(); }
  // A slot is released when the handler returned, which is after it sent
  // the response: a client can read the answer a moment before. Waits for
  // the release (true) or 10 s.
  bool inFlightDrains() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [this] { return inFlight_.load() == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int blocked_ = 0;
  bool released_ = false;
  std::atomic<int> inFlight_{0};
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::scratchDir("sluice-http-test");
    std::filesystem::create_directories(dir_);
    auto c = loadOrCreateCredentials(dir_.string(), {});
    ASSERT_TRUE(c.ok()) << c.error().message;
    creds_ = *c;
  }
  void TearDown() override {
    handler_.release();
    if (server_) server_->stop();
    std::filesystem::remove_all(dir_);
  }

  void start(HttpLimits limits) {
    HttpServerOptions o;
    o.port = 0;
    o.certPem = creds_.certPem;
    o.keyPem = creds_.keyPem;
    o.workerThreads = 4;
    o.limits = limits;
    auto s = HttpServer::create(o, handler_);
    ASSERT_TRUE(s.ok()) << s.error().message;
    server_ = std::move(*s);
    server_->start();
  }

  HttpsClient client() { return HttpsClient("127.0.0.1", server_->port(), creds_.caCertPem, ""); }
  std::unique_ptr<TlsConnection> tls() {
    auto c = std::make_unique<TlsConnection>("127.0.0.1", server_->port(), creds_.caCertPem);
    EXPECT_TRUE(c->ok());
    return c;
  }

  std::filesystem::path dir_;
  Credentials creds_;
  TestHandler handler_;
  std::unique_ptr<HttpServer> server_;
};

// A handler that throws answers 500 with a Status; the process and the
// other requests carry on.
TEST_F(HttpServerTest, HandlerExceptionsAre500AndServingContinues) {
  start({});
  auto c = client();
  for (const char* path : {"/throw", "/throw-int"}) {
    auto r = c.get(path);
    EXPECT_EQ(r.status, 500) << path;
    EXPECT_EQ(r.json()["reason"], "InternalError") << path;
    EXPECT_EQ(r.json()["code"], 500) << path;
  }
  EXPECT_EQ(c.get("/ok").status, 200);
  EXPECT_EQ(server_->stats().handlerExceptions, 2u);
  EXPECT_TRUE(handler_.inFlightDrains());
}

// An exception after a stream began cannot become a status: the connection
// ends, the server does not.
TEST_F(HttpServerTest, ExceptionMidStreamEndsOnlyThatConnection) {
  start({});
  auto conn = tls();
  ASSERT_TRUE(conn->write("GET /stream-throw HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_TRUE(conn->closedByPeer(10s));
  EXPECT_EQ(client().get("/ok").status, 200);
}

// Connections that never finish the TLS handshake are closed after the
// handshake timeout: a silent one and one that sent half a ClientHello.
TEST_F(HttpServerTest, HandshakeTimeoutClosesSilentAndHalfHandshakes) {
  HttpLimits l;
  l.handshakeTimeout = 300ms;
  start(l);
  int silent = connectTcp("127.0.0.1", server_->port());
  int half = connectTcp("127.0.0.1", server_->port());
  ASSERT_GE(silent, 0);
  ASSERT_GE(half, 0);
  // A TLS record header announcing 512 bytes of handshake, then 3 of them.
  const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01};
  ASSERT_EQ(::send(half, hello, sizeof hello, 0), static_cast<ssize_t>(sizeof hello));
  EXPECT_TRUE(tcpClosedByPeer(silent, 10s));
  EXPECT_TRUE(tcpClosedByPeer(half, 10s));
  ::close(silent);
  ::close(half);
  EXPECT_GE(server_->stats().timedOut, 2u);
  EXPECT_EQ(client().get("/ok").status, 200);
}

// Half a request header after the handshake is closed after the header
// timeout; a keep-alive connection after the idle timeout.
TEST_F(HttpServerTest, HeaderAndIdleTimeouts) {
  HttpLimits l;
  l.headerTimeout = 300ms;
  l.idleTimeout = 300ms;
  start(l);
  auto half = tls();
  ASSERT_TRUE(half->write("GET /ok HTTP/1.1\r\nHost: x\r\nX-Slow: "));
  EXPECT_TRUE(half->closedByPeer(10s));
  auto idle = tls();
  ASSERT_TRUE(idle->write("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(idle->readResponse(10s).status, 200);
  EXPECT_TRUE(idle->closedByPeer(10s));
}

// A rejected admission is answered at once, without waiting for the body
// the request announced, and then the connection closes.
TEST_F(HttpServerTest, AdmissionAnswersBeforeTheBody) {
  start({});
  auto conn = tls();
  ASSERT_TRUE(conn->write("POST /deny HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{"));
  auto r = conn->readResponse(10s);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.header("Retry-After"), "1");
  EXPECT_TRUE(conn->closedByPeer(10s));
  // An admitted request's slot is held until its handler returned.
  auto body = tls();
  ASSERT_TRUE(body->write("POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab"));
  for (int i = 0; i < 500 && handler_.inFlight() == 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(handler_.inFlight(), 1);
  ASSERT_TRUE(body->write("cd"));
  auto done = body->readResponse(10s);
  EXPECT_EQ(done.status, 200);
  EXPECT_EQ(done.body, "ok abcd");
  EXPECT_TRUE(handler_.inFlightDrains());
}

// At the cap, a new connection displaces the oldest one that never sent a
// request, so idle sockets cannot lock real clients out.
TEST_F(HttpServerTest, ConnectionCapEvictsTheOldestIdleConnection) {
  HttpLimits l;
  l.maxConnections = 8;
  start(l);
  std::vector<int> idle;
  for (int i = 0; i < 8; ++i) idle.push_back(connectTcp("127.0.0.1", server_->port()));
  for (int i = 0; i < 100 && server_->stats().open < 8; ++i) std::this_thread::sleep_for(10ms);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(client().get("/ok").status, 200) << i;
  EXPECT_TRUE(tcpClosedByPeer(idle[0], 10s));
  HttpServerStats st = server_->stats();
  EXPECT_GE(st.evicted, 1u);
  EXPECT_LE(st.open, 8u);
  EXPECT_EQ(st.maxConnections, 8u);
  for (int fd : idle) ::close(fd);
}

// When every connection is inside a request, a connection past the cap is
// closed at once rather than displacing one of them.
TEST_F(HttpServerTest, ConnectionCapRefusesWhenEveryConnectionIsBusy) {
  HttpLimits l;
  l.maxConnections = 2;
  start(l);
  auto a = tls();
  auto b = tls();
  ASSERT_TRUE(a->write("GET /block HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(b->write("GET /block HTTP/1.1\r\nHost: x\r\n\r\n"));
  handler_.waitBlocked(2);
  int extra = connectTcp("127.0.0.1", server_->port());
  EXPECT_TRUE(tcpClosedByPeer(extra, 10s));
  ::close(extra);
  EXPECT_GE(server_->stats().rejectedAtCap, 1u);
  handler_.release();
  EXPECT_EQ(a->readResponse(10s).status, 200);
  EXPECT_EQ(b->readResponse(10s).status, 200);
}

// Out of fds (EMFILE), accept() backs off instead of spinning on the
// pending connection, and serving resumes once fds are free.
TEST_F(HttpServerTest, AcceptBacksOffWhenOutOfFds) {
  HttpLimits l;
  l.maxConnections = 100000;  // above the fd limit: the kernel's limit is hit first
  start(l);
  std::vector<int> pending;
  for (int i = 0; i < 4; ++i) pending.push_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  int highest = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    highest = std::max(highest, std::stoi(e.path().filename().string()));
  }
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(highest + 1);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  // Fill the gaps below the limit: every fd number in use, accept() gets EMFILE.
  std::vector<int> fillers;
  for (int fd; (fd = ::dup(0)) >= 0;) fillers.push_back(fd);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(server_->port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int fd : pending) ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  rusage before{};
  ::getrusage(RUSAGE_SELF, &before);
  uint64_t failuresBefore = server_->stats().acceptFailures;
  std::this_thread::sleep_for(1s);
  uint64_t failures = server_->stats().acceptFailures - failuresBefore;
  rusage after{};
  ::getrusage(RUSAGE_SELF, &after);
  for (int fd : fillers) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  auto cpu = [](const rusage& r) {
    return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
  };
  std::printf("out of fds for 1 s: %llu failed accepts, %.3f s CPU\n",
              static_cast<unsigned long long>(failures), cpu(after) - cpu(before));
  EXPECT_GE(server_->stats().acceptFailures, 1u);
  EXPECT_LE(failures, 100u);  // backoff >= 10 ms between attempts
  EXPECT_EQ(client().get("/ok").status, 200);
  for (int fd : pending) ::close(fd);
}

// Go raises the soft fd limit to the hard one at start; the default cap
// leaves a quarter of the limit to the rest of the process.
TEST_F(HttpServerTest, FdLimitRaisedAndCapSizedFromIt) {
  rlimit lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  size_t soft = raiseFdLimit();
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  EXPECT_EQ(soft, lim.rlim_max == RLIM_INFINITY ? soft : static_cast<size_t>(lim.rlim_max));
  EXPECT_EQ(lim.rlim_cur, lim.rlim_max);
  size_t cap = defaultMaxConnections();
  std::printf("fd limit %zu, default connection cap %zu\n", soft, cap);
  EXPECT_LT(cap, soft);
  EXPECT_GE(cap, soft / 2);
  start({});
  EXPECT_EQ(server_->stats().maxConnections, cap);
}

}  // namespace
}  // namespace sluice::server
