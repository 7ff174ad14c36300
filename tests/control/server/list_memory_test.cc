// Memory of large lists, measured on a real `sluice server` process: 50,000
// Events (written straight into its SQLite file before it starts), 16
// concurrent lists of all of them (half plain JSON, half the Table kubectl
// get asks for), the server's RSS sampled from /proc/PID/status meanwhile.
//
// The bounds: a list is encoded page by page into a chunked response whose
// unsent bytes are capped, so each request holds a few MiB whatever the
// list's size; 16 of them plus the idle server fit well under 512 MiB above
// the idle RSS (before, each list held the decoded objects, a nlohmann tree
// of ~12x the JSON and the JSON itself: 3 GiB for this test). Afterwards the
// freed memory is returned to the kernel, so RSS comes back to within
// 64 MiB of the idle server.
//
// Needs SLUICE_EXE (set by meson): the server binary.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "control/api/object_meta.h"
#include "control/api/proto/core.pb.h"
#include "control/api/registry.h"
#include "control/server/object_store.h"
#include "control/store/sqlite_store.h"
#include "tests/control/server/https_client.h"

namespace sluice::server {
namespace {

using namespace std::chrono_literals;

constexpr int kObjects = 50'000;
constexpr int kConcurrentLists = 16;
constexpr int kWriters = 32;
constexpr double kPeakBoundMiB = 512;   // above the idle server
constexpr double kSettleBoundMiB = 64;  // above the idle server, after the lists

std::string readFile(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// VmRSS / VmHWM of `pid` in MiB (0 if unreadable).
double statusMiB(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0)
      return std::strtod(line.c_str() + field.size() + 1, nullptr) / 1024.0;
  }
  return 0;
}

// Counts occurrences of `needle` in a byte stream that arrives in pieces.
struct Counter {
  explicit Counter(std::string n) : needle(std::move(n)) {}
  void feed(std::string_view data) {
    tail += data;
    size_t pos = 0;
    while ((pos = tail.find(needle, pos)) != std::string::npos) {
      ++count;
      pos += needle.size();
    }
    bytes += data.size();
    if (tail.size() > needle.size()) tail.erase(0, tail.size() - needle.size() + 1);
  }
  std::string needle;
  std::string tail;
  size_t count = 0;
  size_t bytes = 0;
};

class ListMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* exe = std::getenv("SLUICE_EXE");
    if (exe == nullptr) GTEST_SKIP() << "SLUICE_EXE not set";
    exe_ = exe;
    dir_ = std::filesystem::temp_directory_path() /
           ("sluice-list-memory-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    std::filesystem::remove_all(dir_);
  }

  // 50,000 Events through the store the server will open, by many
  // writers so group commit shares the fsyncs.
  void populate() {
    auto store = store::SqliteStore::open((dir_ / "state.db").string());
    ASSERT_TRUE(store.ok()) << store.error().message;
    ObjectStore objects(**store);
    const api::ResourceType* type = api::Registry::builtin().findKind("v1", "Event");
    ASSERT_NE(type, nullptr);
    std::atomic<int> next{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&] {
        for (int i; (i = next.fetch_add(1)) < kObjects;) {
          api::Event ev;
          auto* m = ev.mutable_metadata();
          m->set_name("web-" + std::to_string(i) + ".17f3a0c2e5d1b9a4");
          m->set_namespace_("default");
          m->set_uid("00000000-0000-4000-8000-" + std::to_string(100000000000 + i));
          m->set_creationtimestamp("2025-01-01T00:00:00Z");
          auto* io = ev.mutable_involvedobject();
          io->set_kind("Pod");
          io->set_namespace_("default");
          io->set_name("web-" + std::to_string(i));
          ev.set_reason("Pulled");
          ev.set_type("Normal");
          ev.set_message(
              "Container image \"registry.example/web:1.2.3\" already present on machine; " +
              std::string(150, static_cast<char>('a' + i % 26)));
          ev.set_firsttimestamp("2025-01-01T00:00:00Z");
          ev.set_lasttimestamp("2025-01-01T00:00:00Z");
          ev.set_count(1);
          if (!objects.create(*type, ev).ok()) ++failed;
        }
      });
    }
    for (auto& t : writers) t.join();
    ASSERT_EQ(failed.load(), 0);
  }

  void startServer() {
    pid_ = ::fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      std::string log = (dir_ / "server.log").string();
      std::freopen(log.c_str(), "w", stdout);
      std::freopen(log.c_str(), "a", stderr);
      ::execl(exe_.c_str(), exe_.c_str(), "server", "--data-dir", dir_.c_str(), "--listen",
              "127.0.0.1:0", "--disable-controllers", static_cast<char*>(nullptr));
      std::_Exit(127);
    }
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      std::string kc = readFile(dir_ / "kubeconfig");
      size_t at = kc.find("server: https://127.0.0.1:");
      if (at != std::string::npos) port_ = static_cast<uint16_t>(std::atoi(kc.c_str() + at + 26));
      if (port_ == 0) std::this_thread::sleep_for(50ms);
    }
    ASSERT_NE(port_, 0) << readFile(dir_ / "server.log");
    token_ = readFile(dir_ / "token");
    while (!token_.empty() && token_.back() == '\n') token_.pop_back();
    ca_ = readFile(dir_ / "ca.crt");
  }

  testing::HttpsClient client() { return testing::HttpsClient("127.0.0.1", port_, ca_, token_); }

  std::string exe_;
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  std::string token_;
  std::string ca_;
};

// 16 concurrent lists of 50,000 objects stay within the bound and the
// memory is given back afterwards.
TEST_F(ListMemoryTest, ConcurrentLargeListsStayBounded) {
  auto t0 = std::chrono::steady_clock::now();
  populate();
  auto populated = std::chrono::steady_clock::now();
  startServer();
  const std::string path = "/api/v1/namespaces/default/events";
  // Idle baseline: after one small list, so lazily built state exists.
  ASSERT_EQ(client().get(path + "?limit=10").status, 200);
  std::this_thread::sleep_for(500ms);
  double idle = statusMiB(pid_, "VmRSS");

  std::atomic<bool> sampling{true};
  double peakSampled = 0;
  std::thread sampler([&] {
    while (sampling.load()) {
      peakSampled = std::max(peakSampled, statusMiB(pid_, "VmRSS"));
      std::this_thread::sleep_for(20ms);
    }
  });
  struct Result {
    int status = 0;
    size_t items = 0;
    size_t bytes = 0;
  };
  std::vector<Result> results(kConcurrentLists);
  std::vector<std::thread> listers;
  auto listStart = std::chrono::steady_clock::now();
  for (int i = 0; i < kConcurrentLists; ++i) {
    listers.emplace_back([&, i] {
      bool table = i % 2 == 1;
      Counter c(table ? "\"cells\":" : "\"uid\":");
      auto cl = client();
      results[i].status =
          cl.getStreaming(path,
                          table ? "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
                                : "application/json",
                          [&](std::string_view d) { c.feed(d); });
      results[i].items = c.count;
      results[i].bytes = c.bytes;
    });
  }
  for (auto& t : listers) t.join();
  auto listEnd = std::chrono::steady_clock::now();
  // Freed memory is returned asynchronously after the responses: give it a
  // moment, then read the settled RSS.
  double settled = 0;
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(100ms);
    settled = statusMiB(pid_, "VmRSS");
    if (settled - idle < kSettleBoundMiB / 2) break;
  }
  sampling = false;
  sampler.join();
  double hwm = statusMiB(pid_, "VmHWM");

  auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
  size_t jsonBytes = 0;
  for (int i = 0; i < kConcurrentLists; ++i) {
    EXPECT_EQ(results[i].status, 200) << "list " << i;
    EXPECT_EQ(results[i].items, static_cast<size_t>(kObjects)) << "list " << i;
    if (i == 0) jsonBytes = results[i].bytes;
  }
  std::printf("populate %d objects: %.1f s; %d concurrent lists: %.1f s; one JSON list %.1f MiB\n",
              kObjects, secs(populated - t0), kConcurrentLists, secs(listEnd - listStart),
              jsonBytes / 1048576.0);
  std::printf("server RSS: idle %.0f MiB, peak sampled %.0f MiB, VmHWM %.0f MiB, after %.0f MiB\n",
              idle, peakSampled, hwm, settled);
  EXPECT_LT(hwm - idle, kPeakBoundMiB);
  EXPECT_LT(settled - idle, kSettleBoundMiB);
}

}  // namespace
}  // namespace sluice::server
