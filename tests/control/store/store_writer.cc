// Durability probe for sqlite_store_test (AckedWritesSurviveSigkill): opens
// the store at argv[1] and creates "/k/<n>" for n = 1, 2, ... (continuing
// after the highest existing n) until killed, from argv[2] threads (default
// 1). "<n>\n" goes to stdout only after create() returned ok, so every line
// the parent read is a write the store acknowledged as durable.
//
// Usage: store_writer <store path> [threads]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "control/store/sqlite_store.h"

namespace {

using sluice::store::SqliteStore;

// Highest n among existing "/k/<n>" keys, so a rerun on the same file
// continues instead of colliding with writes that committed unacknowledged.
int64_t highestKey(SqliteStore& store) {
  auto listed = store.list("/k/");
  if (!listed) {
    std::fprintf(stderr, "store_writer: %s\n", listed.error().message.c_str());
    std::exit(1);
  }
  int64_t highest = 0;
  for (const auto& kv : listed->kvs) {
    int64_t n = 0;
    std::string_view digits = std::string_view(kv.key).substr(3);
    std::from_chars(digits.data(), digits.data() + digits.size(), n);
    highest = std::max(highest, n);
  }
  return highest;
}

void writeLoop(SqliteStore& store, std::atomic<int64_t>& next) {
  for (;;) {
    int64_t n = next.fetch_add(1);
    std::string key = "/k/" + std::to_string(n);
    auto created = store.create(key, "value-" + std::to_string(n));
    if (!created) {
      std::fprintf(stderr, "store_writer: %s\n", created.error().message.c_str());
      std::exit(1);
    }
    // One write(2) per line: a pipe write of <= PIPE_BUF bytes is atomic, so
    // lines from several threads never interleave.
    std::string line = std::to_string(n) + "\n";
    if (::write(STDOUT_FILENO, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      std::exit(1);  // the reader is gone
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: store_writer <store path> [threads]\n");
    return 2;
  }
  int threads = argc > 2 ? std::atoi(argv[2]) : 1;
  auto store = SqliteStore::open(argv[1]);
  if (!store) {
    std::fprintf(stderr, "store_writer: %s\n", store.error().message.c_str());
    return 1;
  }
  std::atomic<int64_t> next{highestKey(**store) + 1};
  std::vector<std::thread> workers;
  for (int i = 1; i < threads; ++i) {
    workers.emplace_back([&] { writeLoop(**store, next); });
  }
  writeLoop(**store, next);  // never returns; the parent kills us
}
