// PendingWrites and MapRef's batch operations against real kernel maps:
// what the start-up sync leaves in a map is what one-by-one writes in the
// same order would have left, and chunks past 8192 entries are all written.
#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "bpf/loader/bpf_map.h"
#include "bpf/loader/map_batch.h"

namespace sluice::bpf {
namespace {

// A fresh map owned by the test (closed with it: nothing pinned).
struct TestMap {
  FileDescriptor fd;
  MapOpCounters counters;
  MapRef ref;

  TestMap(bpf_map_type type, uint32_t entries, const char* name) {
    fd = FileDescriptor(bpf_map_create(type, name, sizeof(uint32_t), sizeof(uint64_t), entries,
                                       nullptr));
    ref = MapRef(fd.get(), name, &counters);
  }
  std::map<uint32_t, uint64_t> contents() const {
    std::map<uint32_t, uint64_t> out;
    auto all = ref.dump<uint32_t, uint64_t>();
    EXPECT_TRUE(all.ok()) << all.error().message;
    if (all.ok()) out.insert(all->begin(), all->end());
    return out;
  }
};

constexpr std::pair<int, uint64_t> kFirst{0, 0};
constexpr std::pair<int, uint64_t> kSecond{1, 0};

// 20,000 entries (three batch chunks) written, read back through the batch
// lookup, then 15,000 of them deleted: every entry accounted for.
TEST(MapBatchTest, UpdatesAndDeletesPastOneChunkAllReachTheKernel) {
  TestMap m(BPF_MAP_TYPE_HASH, 32768, "sl_test_batch");
  ASSERT_TRUE(m.fd.valid()) << std::strerror(errno);
  PendingWrites w;
  for (uint32_t k = 0; k < 20000; ++k) ASSERT_TRUE(w.update(kFirst, m.ref, k, uint64_t{k} * 3).ok());
  ASSERT_TRUE(w.flush().ok());
  EXPECT_EQ(m.counters.writes, 20000u);
  auto got = m.contents();
  ASSERT_EQ(got.size(), 20000u);
  for (const auto& [k, v] : got) ASSERT_EQ(v, uint64_t{k} * 3) << "key " << k;

  for (uint32_t k = 0; k < 15000; ++k) ASSERT_TRUE(w.erase(kFirst, m.ref, k).ok());
  ASSERT_TRUE(w.flush().ok());
  EXPECT_EQ(m.counters.deletes, 15000u);
  got = m.contents();
  EXPECT_EQ(got.size(), 5000u);
  EXPECT_EQ(got.begin()->first, 15000u);
}

// Per key, the last operation queued wins, as sequential writes would:
// delete-then-update keeps the update, update-then-delete deletes, two
// updates keep the second value. Deleting an absent key is not an error.
TEST(MapBatchTest, TheLastOperationOnAKeyWins) {
  TestMap m(BPF_MAP_TYPE_HASH, 64, "sl_test_last");
  ASSERT_TRUE(m.fd.valid()) << std::strerror(errno);
  ASSERT_TRUE(m.ref.update(uint32_t{1}, uint64_t{100}).ok());
  ASSERT_TRUE(m.ref.update(uint32_t{2}, uint64_t{200}).ok());
  PendingWrites w;
  ASSERT_TRUE(w.erase(kFirst, m.ref, uint32_t{1}).ok());
  ASSERT_TRUE(w.update(kFirst, m.ref, uint32_t{1}, uint64_t{101}).ok());  // 1: updated
  ASSERT_TRUE(w.update(kFirst, m.ref, uint32_t{2}, uint64_t{201}).ok());
  ASSERT_TRUE(w.erase(kFirst, m.ref, uint32_t{2}).ok());                  // 2: deleted
  ASSERT_TRUE(w.update(kFirst, m.ref, uint32_t{3}, uint64_t{300}).ok());
  ASSERT_TRUE(w.update(kFirst, m.ref, uint32_t{3}, uint64_t{301}).ok());  // 3: second value
  ASSERT_TRUE(w.erase(kFirst, m.ref, uint32_t{4}).ok());                  // 4: never there
  ASSERT_TRUE(w.erase(kFirst, m.ref, uint32_t{5}).ok());
  ASSERT_TRUE(w.update(kFirst, m.ref, uint32_t{5}, uint64_t{500}).ok());
  ASSERT_TRUE(w.erase(kFirst, m.ref, uint32_t{5}).ok());                  // 5: deleted again
  ASSERT_TRUE(w.flush().ok());
  EXPECT_EQ(m.contents(), (std::map<uint32_t, uint64_t>{{1, 101}, {3, 301}}));
  EXPECT_EQ(w.size(), 0u) << "flush() empties the queue";
}

// Updates go out in ascending phase order whatever the queueing order (the
// datapath must find a backend before a slot names it), and a batch the
// kernel refuses stops the flush with the map's name.
TEST(MapBatchTest, LowerPhasesAreWrittenFirstAndAFailureStopsTheFlush) {
  TestMap first(BPF_MAP_TYPE_HASH, 16, "sl_test_first");
  TestMap second(BPF_MAP_TYPE_HASH, 16, "sl_test_second");
  ASSERT_TRUE(first.fd.valid() && second.fd.valid()) << std::strerror(errno);
  // Queued in the opposite order to the one they are written in.
  PendingWrites w;
  ASSERT_TRUE(w.update(kSecond, second.ref, uint32_t{7}, uint64_t{7}).ok());
  ASSERT_TRUE(w.update(kFirst, first.ref, uint32_t{7}, uint64_t{7}).ok());
  ASSERT_TRUE(w.flush().ok());
  EXPECT_EQ(first.contents().size(), 1u);
  EXPECT_EQ(second.contents().size(), 1u);
  // Order is observable through a full map: a batch that cannot be written
  // stops the flush, and what was written before it shows the order.
  TestMap full(BPF_MAP_TYPE_HASH, 1, "sl_test_full");
  ASSERT_TRUE(full.ref.update(uint32_t{1}, uint64_t{1}).ok());
  ASSERT_TRUE(w.update(kSecond, second.ref, uint32_t{8}, uint64_t{8}).ok());
  ASSERT_TRUE(w.update(kFirst, full.ref, uint32_t{2}, uint64_t{2}).ok());  // E2BIG: map full
  auto r = w.flush();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("sl_test_full"), std::string::npos) << r.error().message;
  EXPECT_EQ(second.contents().count(8), 0u) << "phase 1 written before phase 0 failed";
}

}  // namespace
}  // namespace sluice::bpf
