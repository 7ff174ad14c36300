// Prints the digest (MaglevTable::digest(), 16 hex digits) of one Maglev
// table, so maglev_test can check that a table does not depend on process
// state (ASLR, allocator, std::hash seeds) by building it in fresh processes.
//
// Usage: maglev_dump [--size=M] [--seed=S] [KEY[=WEIGHT]...]
//   M defaults to kDefaultMaglevTableSize, S to 0. Without keys it uses 100
//   built-in backends "10.0.0.0:8080" .. "10.0.0.99:8080", weight 1.
// Exit: 0 with the digest on stdout; 2 with a message on stderr.
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/maglev.h"

namespace {

bool parseUint(std::string_view text, uint64_t max, uint64_t& out) {
  if (text.empty()) {
    return false;
  }
  std::string s(text);
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || v > max || s[0] == '-') {
    return false;
  }
  out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t size = sluice::kDefaultMaglevTableSize;
  uint64_t seed = 0;
  std::vector<sluice::MaglevBackend> backends;
  for (int a = 1; a < argc; ++a) {
    std::string_view arg = argv[a];
    if (arg.starts_with("--size=")) {
      if (!parseUint(arg.substr(7), UINT32_MAX, size)) {
        std::fprintf(stderr, "maglev_dump: bad --size: %s\n", argv[a]);
        return 2;
      }
    } else if (arg.starts_with("--seed=")) {
      if (!parseUint(arg.substr(7), UINT64_MAX, seed)) {
        std::fprintf(stderr, "maglev_dump: bad --seed: %s\n", argv[a]);
        return 2;
      }
    } else {
      sluice::MaglevBackend backend;
      size_t eq = arg.rfind('=');
      backend.key = std::string(arg.substr(0, eq));
      if (eq != std::string_view::npos) {
        uint64_t weight = 0;
        if (!parseUint(arg.substr(eq + 1), UINT32_MAX, weight)) {
          std::fprintf(stderr, "maglev_dump: bad weight: %s\n", argv[a]);
          return 2;
        }
        backend.weight = static_cast<uint32_t>(weight);
      }
      backends.push_back(std::move(backend));
    }
  }
  if (backends.empty()) {
    for (int i = 0; i < 100; ++i) {
      backends.push_back({"10.0.0." + std::to_string(i) + ":8080", 1});
    }
  }

  auto builder = sluice::MaglevBuilder::create(static_cast<uint32_t>(size), seed);
  if (!builder) {
    std::fprintf(stderr, "maglev_dump: %s\n", builder.error().message.c_str());
    return 2;
  }
  auto table = builder->build(backends);
  if (!table) {
    std::fprintf(stderr, "maglev_dump: %s\n", table.error().message.c_str());
    return 2;
  }
  std::printf("%016" PRIx64 "\n", table->digest());
  return 0;
}
