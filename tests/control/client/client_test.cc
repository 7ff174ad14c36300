// The REST client, informer and work queue against a real `sluice server`
// (in-process, HTTPS on a free port, a real SQLite file): what the
// controllers and the agent build on.
#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "control/client/api_client.h"
#include "control/client/informer.h"
#include "control/client/work_queue.h"
#include "control/server/api_server.h"

namespace sluice::client {
namespace {

namespace fs = std::filesystem;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sluice-client-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    server::ApiServerOptions o;
    o.dataDir = dir_.string();
    o.listenPort = 0;
    o.compactInterval = std::chrono::seconds(0);
    o.watch.bookmarkInterval = std::chrono::milliseconds(200);
    auto s = server::ApiServer::start(o);
    ASSERT_TRUE(s.ok()) << s.error().message;
    server_ = std::move(*s);
    auto kc = Kubeconfig::load(server_->kubeconfigPath());
    ASSERT_TRUE(kc.ok()) << kc.error().message;
    auto c = ApiClient::create(*kc, "client-test");
    ASSERT_TRUE(c.ok()) << c.error().message;
    client_ = std::move(*c);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    fs::remove_all(dir_);
  }

  static Json pod(const std::string& name, Json labels = Json::object()) {
    return {{"apiVersion", "v1"},
            {"kind", "Pod"},
            {"metadata", {{"name", name}, {"labels", labels}}},
            {"spec", {{"containers", {{{"name", "c"}, {"image", "sluice/echo"}}}}}}};
  }

  fs::path dir_;
  std::unique_ptr<server::ApiServer> server_;
  std::unique_ptr<ApiClient> client_;
};

TEST_F(ClientTest, KubeconfigFromServer) {
  auto kc = Kubeconfig::load(server_->kubeconfigPath());
  ASSERT_TRUE(kc.ok());
  EXPECT_EQ(kc->host, "127.0.0.1");
  EXPECT_EQ(kc->port, server_->port());
  EXPECT_EQ(kc->token, server_->token());
  EXPECT_EQ(kc->caPem, server_->caCertPem());
  auto missing = Kubeconfig::load((dir_ / "nope").string());
  EXPECT_FALSE(missing.ok());
}

TEST_F(ClientTest, CrudAndErrorCodes) {
  using resources::kPods;
  auto created = client_->create(kPods, "default", pod("a", {{"app", "x"}}));
  ASSERT_TRUE(created.ok()) << created.error().message;
  EXPECT_FALSE(uidOf(*created).empty());
  auto dup = client_->create(kPods, "default", pod("a"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ErrorCode::kAlreadyExists);

  Json stale = *created;
  Json next = *created;
  next["metadata"]["labels"]["v"] = "2";
  ASSERT_TRUE(client_->update(kPods, "default", next).ok());
  stale["metadata"]["labels"]["v"] = "3";
  auto conflict = client_->update(kPods, "default", stale);
  ASSERT_FALSE(conflict.ok());
  EXPECT_EQ(conflict.error().code, ErrorCode::kAborted);

  auto patched = client_->patch(kPods, "default", "a", {{"metadata", {{"labels", {{"p", "1"}}}}}});
  ASSERT_TRUE(patched.ok()) << patched.error().message;
  EXPECT_EQ((*patched)["metadata"]["labels"]["p"], "1");

  ListOptions sel;
  sel.labelSelector = "app in (x,y),p";
  auto list = client_->list(kPods, "default", sel);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ((*list)["items"].size(), 1u);

  auto bad = client_->create(kPods, "default", Json{{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", {{"name", "B"}}}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);

  ASSERT_TRUE(client_->remove(kPods, "default", "a").ok());
  auto gone = client_->get(kPods, "default", "a");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ErrorCode::kNotFound);
}

// Many threads share one client (pooled keep-alive connections).
TEST_F(ClientTest, ConcurrentRequests) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        if (client_->create(resources::kPods, "default", pod("p" + std::to_string(t) + "-" + std::to_string(i))).ok()) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 80);
  auto list = client_->list(resources::kPods, "default");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ((*list)["items"].size(), 80u);
}

// The informer sees the initial list and every later change, in order, and
// its cache matches the server.
TEST_F(ClientTest, InformerListsThenWatches) {
  using resources::kPods;
  ASSERT_TRUE(client_->create(kPods, "default", pod("before")).ok());
  Informer inf(*client_, kPods);
  std::mutex mu;
  std::vector<std::string> seen;
  inf.addHandlers({
      [&](const ObjectPtr& o) { std::lock_guard l(mu); seen.push_back("add " + nameOf(*o)); },
      [&](const ObjectPtr&, const ObjectPtr& o) { std::lock_guard l(mu); seen.push_back("update " + nameOf(*o)); },
      [&](const ObjectPtr& o) { std::lock_guard l(mu); seen.push_back("delete " + nameOf(*o)); },
  });
  inf.start();
  ASSERT_TRUE(inf.waitForSync(std::chrono::seconds(10)));
  ASSERT_TRUE(client_->create(kPods, "default", pod("after")).ok());
  ASSERT_TRUE(client_->patch(kPods, "default", "after", {{"metadata", {{"labels", {{"a", "b"}}}}}}).ok());
  ASSERT_TRUE(client_->remove(kPods, "default", "before").ok());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    {
      std::lock_guard l(mu);
      if (seen.size() >= 4 || std::chrono::steady_clock::now() > deadline) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  inf.stop();
  std::lock_guard l(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"add before", "add after", "update after", "delete before"}));
  EXPECT_EQ(inf.size(), 1u);
  ASSERT_NE(inf.get("default", "after"), nullptr);
  EXPECT_EQ((*inf.get("default", "after"))["metadata"]["labels"]["a"], "b");
  EXPECT_EQ((*inf.get("default", "after"))["kind"], "Pod");
}

// stop() returns promptly even while the watch is idle.
TEST_F(ClientTest, InformerStopsPromptly) {
  Informer inf(*client_, resources::kServices);
  inf.start();
  ASSERT_TRUE(inf.waitForSync(std::chrono::seconds(10)));
  auto t0 = std::chrono::steady_clock::now();
  inf.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
}

// client-go's queue metrics through a recording provider: adds only for
// keys that were not already queued, depth as keys come and go, one wait
// and one work time per processed key, a retry per rate-limited add.
TEST(WorkQueueTest, NamedQueuesReportToTheMetricsProvider) {
  struct Recorded {
    int adds = 0, waited = 0, worked = 0, retries = 0;
    std::vector<size_t> depths;
    std::string name;
  };
  struct Recording final : WorkQueueMetrics {
    explicit Recording(Recorded& r) : r(r) {}
    void added() override { ++r.adds; }
    void depth(size_t n) override { r.depths.push_back(n); }
    void waited(double) override { ++r.waited; }
    void worked(double) override { ++r.worked; }
    void retried() override { ++r.retries; }
    Recorded& r;
  };
  struct Provider final : WorkQueueMetricsProvider {
    std::unique_ptr<WorkQueueMetrics> forQueue(const std::string& name) override {
      rec.name = name;
      return std::make_unique<Recording>(rec);
    }
    Recorded rec;
  } provider;
  setWorkQueueMetricsProvider(&provider);
  {
    WorkQueue unnamed;  // no name: no metrics
    unnamed.add("x");
    EXPECT_EQ(provider.rec.adds, 0);
    WorkQueue q("deployment");
    q.add("a");
    q.add("a");  // already queued: not an add
    q.add("b");
    std::string k;
    ASSERT_TRUE(q.get(k));
    q.done(k);
    q.addRateLimited("c");
    EXPECT_EQ(provider.rec.name, "deployment");
    EXPECT_EQ(provider.rec.adds, 2);
    EXPECT_EQ(provider.rec.waited, 1);
    EXPECT_EQ(provider.rec.worked, 1);
    EXPECT_EQ(provider.rec.retries, 1);
    EXPECT_EQ(provider.rec.depths, (std::vector<size_t>{1, 2, 1}));
    q.shutdown();
  }
  setWorkQueueMetricsProvider(nullptr);
}

TEST(WorkQueueTest, DedupsAndRequeuesWhileProcessing) {
  WorkQueue q;
  q.add("a");
  q.add("a");
  q.add("b");
  EXPECT_EQ(q.size(), 2u);
  std::string k;
  ASSERT_TRUE(q.get(k));
  EXPECT_EQ(k, "a");
  q.add("a");  // while processing: not handed out twice
  std::string k2;
  ASSERT_TRUE(q.get(k2));
  EXPECT_EQ(k2, "b");
  EXPECT_EQ(q.size(), 0u);
  q.done("a");
  EXPECT_EQ(q.size(), 1u);
  q.done("b");
  ASSERT_TRUE(q.get(k));
  EXPECT_EQ(k, "a");
  q.done("a");
  q.addAfter("c", std::chrono::milliseconds(50));
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(q.get(k));
  EXPECT_EQ(k, "c");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(45));
  q.addRateLimited("d");
  q.addRateLimited("d");
  EXPECT_EQ(q.retries("d"), 2);
  q.forget("d");
  EXPECT_EQ(q.retries("d"), 0);
  q.shutdown();
  std::string none;
  EXPECT_FALSE(q.get(none));
}

}  // namespace
}  // namespace sluice::client
