#include "dataplane/flow.h"

namespace sluice {

namespace {
// 64 x 64 -> 128-bit multiply, halves folded (wyhash's "mum"): one
// instruction that mixes every input bit into the middle of the product.
__extension__ typedef unsigned __int128 Uint128;  // __extension__: -Wpedantic accepts it
inline uint64_t mum(uint64_t a, uint64_t b) {
  const Uint128 r = static_cast<Uint128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

// Odd constants with balanced bits (wyhash's secret).
constexpr uint64_t kS0 = 0xa0761d6478bd642fULL;
constexpr uint64_t kS1 = 0xe7037ed1a0b428dbULL;
constexpr uint64_t kS2 = 0x8ebc6af09c88c6e3ULL;
constexpr uint64_t kS3 = 0x589965cc75374cc3ULL;
}  // namespace

uint64_t hashFlow(const FlowTuple& t) {
  // Each address is multiplied as a whole (its two words against each
  // other), the ports, protocol and families in a third product; the three
  // are independent (they overlap in the pipeline) and a last product mixes
  // them. Ports never meet an address's bits before a multiply, so fields
  // sharing bit positions cannot cancel (with XOR first, 10.244.1.b:8080 ->
  // node:port tuples once collapsed 6.4 M flows onto 65 k hashes).
  const auto s = t.src.words();
  const auto d = t.dst.words();
  const uint64_t meta = uint64_t{t.srcPort} << 48 | uint64_t{t.dstPort} << 32 |
                        uint64_t{static_cast<uint8_t>(t.protocol)} << 8 |
                        uint64_t{t.src.isV6()} << 1 | uint64_t{t.dst.isV6()};
  const uint64_t a = mum(s[0] ^ kS0, s[1] ^ kS1);
  const uint64_t b = mum(d[0] ^ kS2, d[1] ^ kS3);
  const uint64_t c = mum(meta ^ kS1, kS2);
  return mum(a ^ c ^ kS3, b ^ kS0);
}

}  // namespace sluice
