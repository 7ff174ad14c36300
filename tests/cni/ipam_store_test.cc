// The file-backed allocator behind sluice-ipam, in a temporary directory.
#include "cni/ipam_store.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "tests/cni/cni_test_util.h"

namespace sluice::cni {
namespace {

IpAddress ip(const char* text) { return IpAddress::parse(text).value(); }

IpRange range(const char* subnet, std::optional<IpAddress> start = std::nullopt,
              std::optional<IpAddress> end = std::nullopt) {
  return IpRange::create(*IpPrefix::parse(subnet), start, end, std::nullopt).value();
}

class IpamStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }
  IpamStore open() { return IpamStore::open(dir_.path() + "/net").value(); }
  testing::ScopedDir dir_;
};

// Defaults skip the network address, the gateway (.1) and the broadcast.
TEST_F(IpamStoreTest, DefaultRangeSkipsNetworkGatewayAndBroadcast) {
  auto r = range("10.1.0.0/29");
  EXPECT_EQ(r.start, ip("10.1.0.1"));
  EXPECT_EQ(r.end, ip("10.1.0.6"));
  EXPECT_EQ(r.gateway, ip("10.1.0.1"));
  EXPECT_EQ(r.capacity(), 5u);
  auto store = open();
  std::vector<IpAddress> got;
  for (int i = 0; i < 5; ++i) {
    auto a = store.allocate({r}, "c" + std::to_string(i), "eth0");
    ASSERT_TRUE(a.ok()) << a.error().message;
    got.push_back((*a)[0]);
  }
  EXPECT_EQ(got, (std::vector<IpAddress>{ip("10.1.0.2"), ip("10.1.0.3"), ip("10.1.0.4"),
                                         ip("10.1.0.5"), ip("10.1.0.6")}));
  auto full = store.allocate({r}, "c9", "eth0");
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.error().code, ErrorCode::kResourceExhausted);
  EXPECT_FALSE(*store.hasFree(r));
}

// rangeStart/rangeEnd bound the pool; a bad range is refused with the field.
TEST_F(IpamStoreTest, RangeBoundsAreHonouredAndValidated) {
  auto r = range("10.2.0.0/24", ip("10.2.0.100"), ip("10.2.0.101"));
  auto store = open();
  EXPECT_EQ((*store.allocate({r}, "a", "eth0"))[0], ip("10.2.0.100"));
  EXPECT_EQ((*store.allocate({r}, "b", "eth0"))[0], ip("10.2.0.101"));
  EXPECT_FALSE(store.allocate({r}, "c", "eth0").ok());
  auto bad = IpRange::create(*IpPrefix::parse("10.2.0.0/24"), ip("10.2.0.9"), ip("10.2.0.8"),
                             std::nullopt);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("rangeStart 10.2.0.9 is after rangeEnd"), std::string::npos);
}

// A retried ADD gets the same address; DEL-then-ADD moves on round-robin
// rather than reusing the address just freed.
TEST_F(IpamStoreTest, AllocationIsIdempotentAndRoundRobin) {
  auto r = range("10.3.0.0/24");
  auto store = open();
  auto first = store.allocate({r}, "a", "eth0");
  EXPECT_EQ(*store.allocate({r}, "a", "eth0"), *first);
  EXPECT_EQ(*store.release("a", "eth0"), 1u);
  EXPECT_EQ(*store.release("a", "eth0"), 0u);
  EXPECT_EQ((*store.allocate({r}, "b", "eth0"))[0], ip("10.3.0.3"));
}

// Dual stack: one address per range, all or nothing.
TEST_F(IpamStoreTest, AllocatesOnePerRangeAllOrNothing) {
  auto v4 = range("10.4.0.0/30");  // capacity 1
  auto v6 = range("fd00:4::/64");
  auto store = open();
  auto both = store.allocate({v4, v6}, "a", "eth0");
  ASSERT_TRUE(both.ok());
  EXPECT_EQ((*both)[1], ip("fd00:4::2"));
  // v6 would succeed but v4 is full: nothing of b's stays allocated.
  EXPECT_FALSE(store.allocate({v6, v4}, "b", "eth0").ok());
  EXPECT_EQ(store.list()->size(), 2u);
}

// GC keeps the listed owners and frees the rest.
TEST_F(IpamStoreTest, ReleaseAllExceptKeepsListedOwners) {
  auto r = range("10.5.0.0/24");
  auto store = open();
  for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(store.allocate({r}, id, "eth0").ok());
  EXPECT_EQ(*store.releaseAllExcept({{"b", "eth0"}}), 2u);
  auto left = store.list();
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].containerId, "b");
}

// host-local's "<id>\r\n<ifname>" owner files are read as well.
TEST_F(IpamStoreTest, ReadsHostLocalOwnerFormat) {
  auto store = open();
  FILE* f = std::fopen((store.dir() + "/10.6.0.7").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("ctr\r\neth1", f);
  std::fclose(f);
  auto all = store.list();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].containerId, "ctr");
  EXPECT_EQ((*all)[0].ifName, "eth1");
}

// 64 processes allocating at once from one directory never share an address.
TEST_F(IpamStoreTest, ConcurrentProcessesNeverShareAnAddress) {
  constexpr int kProcs = 64;
  const std::string dir = dir_.path() + "/net";
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  std::vector<pid_t> pids;
  for (int i = 0; i < kProcs; ++i) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto store = IpamStore::open(dir);
      auto a = store ? store->allocate({range("10.7.0.0/24")}, "c" + std::to_string(i), "eth0")
                     : Result<std::vector<IpAddress>>(store.error());
      const std::string line = (a ? (*a)[0].toString() : "ERR " + a.error().message) + "\n";
      [[maybe_unused]] auto n = ::write(pipefd[1], line.data(), line.size());
      ::_exit(a ? 0 : 1);
    }
    pids.push_back(pid);
  }
  ::close(pipefd[1]);
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  std::string all;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof(buf))) > 0) all.append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  std::set<std::string> unique;
  size_t lines = 0;
  for (size_t pos = 0; pos < all.size();) {
    const size_t nl = all.find('\n', pos);
    unique.insert(all.substr(pos, nl - pos));
    ++lines;
    pos = nl + 1;
  }
  EXPECT_EQ(lines, static_cast<size_t>(kProcs));
  EXPECT_EQ(unique.size(), static_cast<size_t>(kProcs));
  EXPECT_EQ(unique.count("10.7.0.1"), 0u) << "the gateway was handed out";
}

mode_t modeOf(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

// Allocations name which container holds which address (issue 18: 0644
// files in a 0755 dir): the store's directory is 0700 and every file in it
// 0600, and a directory an older version left 0755 is tightened on open.
TEST_F(IpamStoreTest, StateIsPrivateToItsOwner) {
  const std::string dir = dir_.path() + "/net";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  auto store = open();
  auto r = range("10.7.0.0/29");
  ASSERT_TRUE(store.allocate({r}, "ctr1", "eth0").ok());
  ASSERT_TRUE(store.allocate({r}, "ctr2", "eth0").ok());
  ASSERT_TRUE(store.release("ctr2", "eth0").ok());
  EXPECT_EQ(modeOf(dir), 0700u);

  std::vector<std::string> files;
  DIR* d = ::opendir(dir.c_str());
  ASSERT_NE(d, nullptr);
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") files.push_back(name);
  }
  ::closedir(d);
  // The allocation, the lock and the range cursor.
  EXPECT_EQ(files.size(), 3u);
  for (const auto& name : files) EXPECT_EQ(modeOf(dir + "/" + name), 0600u) << name;

  // A data dir created by the store itself is private too.
  auto fresh = IpamStore::open(dir_.path() + "/new/net");
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(modeOf(dir_.path() + "/new/net"), 0700u);
}

}  // namespace
}  // namespace sluice::cni
