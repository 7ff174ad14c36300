// RCU publication of the service tables: a worker thread keeps forwarding
// bursts while the control thread replaces, grows and removes the tables
// under it; replaced entries are freed only after the worker has passed a
// quiescent state (under ASan, any read of freed memory fails the test).
// The CI profile runs 2,000 updates; SLUICE_DPDK_FULL=1 runs 50,000.
#include <gtest/gtest.h>
#include <rte_mbuf.h>

#include <atomic>
#include <cstdlib>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/mode_description.h"
#include "tests/bpf/packet_cases.h"
#include "tests/dpdk/eal_env.h"
#include "tests/dpdk/pipeline_fixture.h"

namespace sluice::dpdk::testing {
namespace {

using sluice::testing::backend;
using sluice::testing::buildPacket;
using sluice::testing::frontend;
using sluice::testing::parsePacket;
using sluice::testing::service;
using sluice::testing::tcp;

int updates() { return std::getenv("SLUICE_DPDK_FULL") != nullptr ? 50'000 : 2'000; }

// Deterministic: an entry retired while a worker has not been quiescent
// since is not freed; once it has, reclaim() frees it.
TEST(RcuTest, RetiredEntriesWaitForEveryOnlineReader) {
  auto rcu = Rcu::create(2);
  ASSERT_TRUE(rcu.ok());
  (*rcu)->registerReader(0);
  (*rcu)->registerReader(1);
  int freed = 0;
  (*rcu)->retire([&] { ++freed; });
  EXPECT_EQ((*rcu)->reclaim(), 0u);
  (*rcu)->quiescent(0);
  EXPECT_EQ((*rcu)->reclaim(), 0u) << "reader 1 may still hold it";
  (*rcu)->quiescent(1);
  EXPECT_EQ((*rcu)->reclaim(), 1u);
  EXPECT_EQ(freed, 1);
  // An offline reader (sleeping on an idle port) holds nothing back.
  (*rcu)->offline(1);
  (*rcu)->retire([&] { ++freed; });
  (*rcu)->quiescent(0);
  EXPECT_EQ((*rcu)->reclaim(), 1u);
  (*rcu)->unregisterReader(0);
  (*rcu)->unregisterReader(1);
}

// The control thread changes the tables 2,000 times (backend sets of every
// size, Maglev on and off, the service removed and re-added, hundreds of
// other services forcing the index to grow and shrink) while a worker
// forwards a burst of SYNs per round. Every frame is translated to a
// backend the service had at some point, refused, or passed (while it was
// removed); nothing else.
TEST(RcuTest, WorkerKeepsForwardingWhileTheControlThreadReplacesTables) {
  TestPipeline::Options o;
  o.workers = 1;
  o.conntrackCapacity = 1 << 14;
  auto p = TestPipeline::create(o);
  ASSERT_NE(p, nullptr);
  const Frontend vip = frontend("10.96.7.7", 80);
  auto makeService = [&](int round) {
    std::vector<Backend> bs;
    for (int b = 0; b < round % 9; ++b) {
      bs.push_back(backend(("10.0.7." + std::to_string(b + 1)).c_str(), 8080));
    }
    Service s = service("churn", Protocol::kTcp, {vip}, bs);
    if (round % 3 == 0) {
      s.algorithm = LbAlgorithm::kMaglev;
      s.maglevTableSize = 251;
    }
    return s;
  };
  ASSERT_TRUE(p->tables().upsert(makeService(1)).ok());

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bursts{0};
  std::atomic<uint64_t> bad{0};
  std::string firstBad;
  std::thread worker([&] {
    uint64_t now = 1'000'000'000'000ULL;
    uint16_t port = 1024;
    std::vector<rte_mbuf*> ms(32);
    std::vector<Verdict> verdicts(32);
    while (!stop.load(std::memory_order_acquire)) {
      for (auto& m : ms) {
        if (++port == 0) port = 1024;
        m = mbufOf(buildPacket(tcp("10.0.0.2", port, "10.96.7.7", 80)));
      }
      p->worker(0).process(ms.data(), 32, PortRole::kKernel, ++now, verdicts.data());
      for (size_t i = 0; i < ms.size(); ++i) {
        const auto v = parsePacket(bytesOf(ms[i]));
        const bool forwarded = verdicts[i].action == Action::kTxUplink &&
                               v.dst.toString().rfind("10.0.7.", 0) == 0 && v.dport == 8080;
        const bool refused =
            verdicts[i].action == Action::kTxKernel && v.src.toString() == "10.96.7.7";
        const bool passed =
            verdicts[i].action == Action::kTxUplink && v.dst.toString() == "10.96.7.7";
        if (!forwarded && !refused && !passed && bad.fetch_add(1) == 0) firstBad = v.describe();
        rte_pktmbuf_free(ms[i]);
      }
      // Between bursts the worker holds nothing from the tables.
      p->rcu().quiescent(0);
      bursts.fetch_add(1, std::memory_order_release);
    }
  });

  std::vector<ServiceKey> others;
  for (int round = 2; round < updates(); ++round) {
    // Wait for one burst since the last change, so every change meets a
    // worker mid-stream (progress by handshake, not by timing).
    const uint64_t seen = bursts.load(std::memory_order_acquire);
    while (bursts.load(std::memory_order_acquire) == seen) std::this_thread::yield();
    if (round % 50 == 0) {
      p->tables().erase(makeService(round).key);
    } else {
      auto r = p->tables().upsert(makeService(round));
      ASSERT_TRUE(r.ok()) << r.error().message;
    }
    // Other services come and go in batches: the frontend index grows past
    // its size and is rebuilt, then sheds its tombstones.
    if (round % 200 < 100) {
      Service s = service(
          "other-" + std::to_string(round), Protocol::kTcp,
          {frontend(
              ("10.97." + std::to_string(round / 250) + "." + std::to_string(round % 250)).c_str(),
              80)},
          {backend("10.0.8.1", 8080)});
      ASSERT_TRUE(p->tables().upsert(s).ok());
      others.push_back(s.key);
    } else if (!others.empty()) {
      p->tables().erase(others.back());
      others.pop_back();
    }
    p->rcu().reclaim();
  }
  stop.store(true, std::memory_order_release);
  worker.join();
  EXPECT_EQ(bad.load(), 0u) << "first unexpected frame: " << firstBad;
  EXPECT_GE(bursts.load(), static_cast<uint64_t>(updates() - 2));
  // Everything retired is freed once the (stopped) worker is quiescent.
  p->rcu().quiescent(0);
  p->rcu().reclaim();
  EXPECT_EQ(p->rcu().pending(), 0u);
}

}  // namespace
}  // namespace sluice::dpdk::testing
