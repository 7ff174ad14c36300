// Replay driver for fuzz targets in builds without libFuzzer (gcc): runs every
// file of a corpus directory through LLVMFuzzerTestOneInput, then a fixed
// number of pseudo-random inputs from a fixed seed, half random bytes and
// half mutated corpus files, so every run covers the same inputs and a
// failure reproduces. A violated invariant traps inside the target.
//
// Usage: <target>_fuzz_replay CORPUS_DIR [ITERATIONS]   (default 200000)
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "dataplane/drop_reason.h"
#include "dataplane/packet.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

using Bytes = std::vector<uint8_t>;

constexpr uint64_t kSeed = 0x5eed5eed5eed5eedULL;
constexpr long kDefaultIterations = 200000;
// Longest random input: a few headers' worth, where all the parsing is.
constexpr size_t kMaxRandomLength = 160;

// splitmix64: tiny, fixed, the same on every platform.
struct Rng {
  uint64_t state;
  uint64_t next() {
    state += 0x9e3779b97f4a7c15ULL;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }
};

// One mutation of the kinds libFuzzer's default mutators make.
void mutate(Bytes& b, Rng& rng) {
  static const uint8_t kInteresting[] = {0x00, 0x01, 0x05, 0x06, 0x11, 0x3a, 0x40, 0x45,
                                         0x60, 0x7f, 0x80, 0x81, 0xdd, 0xfe, 0xff};
  switch (rng.below(7)) {
    case 0:  // flip a bit
      if (!b.empty()) b[rng.below(b.size())] ^= static_cast<uint8_t>(1u << rng.below(8));
      break;
    case 1:  // random byte
      if (!b.empty()) b[rng.below(b.size())] = static_cast<uint8_t>(rng.next());
      break;
    case 2:  // interesting byte (versions, protocols, lengths' edges)
      if (!b.empty()) b[rng.below(b.size())] = kInteresting[rng.below(sizeof(kInteresting))];
      break;
    case 3:  // truncate
      b.resize(rng.below(b.size() + 1));
      break;
    case 4:  // append random bytes
      for (size_t n = 1 + rng.below(16); n > 0; --n) b.push_back(static_cast<uint8_t>(rng.next()));
      break;
    case 5:  // insert a byte
      b.insert(b.begin() + static_cast<std::ptrdiff_t>(rng.below(b.size() + 1)),
               static_cast<uint8_t>(rng.next()));
      break;
    case 6:  // erase a byte
      if (!b.empty()) b.erase(b.begin() + static_cast<std::ptrdiff_t>(rng.below(b.size())));
      break;
  }
}

// Runs one input from an exact-size heap copy, so ASan/valgrind catch a read
// even one byte past it; tallies how far it parsed.
void run(const Bytes& input, std::map<sluice::DropReason, long>& outcomes) {
  Bytes exact(input);
  LLVMFuzzerTestOneInput(exact.data(), exact.size());
  sluice::ParsedPacket parsed;
  ++outcomes[sluice::parsePacket(exact, sluice::Framing::kEthernet, parsed)];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [ITERATIONS]\n", argv[0]);
    return 2;
  }
  const long iterations = argc == 3 ? std::strtol(argv[2], nullptr, 10) : kDefaultIterations;

  std::vector<std::filesystem::path> paths;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1], ec)) {
    if (entry.is_regular_file()) paths.push_back(entry.path());
  }
  if (ec) {
    std::fprintf(stderr, "%s: %s\n", argv[1], ec.message().c_str());
    return 1;
  }
  std::sort(paths.begin(), paths.end());  // directory order is not stable
  std::vector<Bytes> corpus;
  for (const auto& path : paths) {
    std::ifstream in(path, std::ios::binary);
    corpus.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  std::map<sluice::DropReason, long> outcomes;
  for (const Bytes& input : corpus) run(input, outcomes);

  Rng rng{kSeed};
  long randomInputs = 0, mutatedInputs = 0;
  for (long i = 0; i < iterations; ++i) {
    Bytes input;
    if (corpus.empty() || i % 2 == 0) {
      input.resize(rng.below(kMaxRandomLength + 1));
      for (auto& x : input) x = static_cast<uint8_t>(rng.next());
      // Give a quarter of them a plausible start so they get past L2/L3.
      if (input.size() >= 15 && rng.below(4) == 0) {
        input[12] = rng.below(2) ? 0x08 : 0x86;
        input[13] = input[12] == 0x08 ? 0x00 : 0xdd;
        input[14] = input[12] == 0x08 ? 0x45 : 0x60;
      }
      ++randomInputs;
    } else {
      input = corpus[rng.below(corpus.size())];
      for (size_t n = 1 + rng.below(4); n > 0; --n) mutate(input, rng);
      ++mutatedInputs;
    }
    run(input, outcomes);
  }

  std::printf("corpus files: %zu, random inputs: %ld, mutated inputs: %ld\n", corpus.size(),
              randomInputs, mutatedInputs);
  std::printf("outcomes (as Ethernet):\n");
  for (const auto& [reason, count] : outcomes) {
    std::printf("  %-30s %ld\n", std::string(sluice::toString(reason)).c_str(), count);
  }
  return 0;
}
