#include "dataplane/checksum.h"

#include <bit>
#include <cstring>

namespace sluice {

uint16_t onesComplementSum(std::span<const uint8_t> data, uint16_t initial) {
  // Sums native-order 32-bit words into 64 bits (no carry is lost below 2^32
  // words) and swaps once at the end: RFC 1071 §2(B) byte-order
  // independence, and 2^16 == 1 mod 0xffff lets a 32-bit word count as two
  // 16-bit ones.
  const uint8_t* p = data.data();
  size_t n = data.size();
  uint64_t sum = 0;
  while (n >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    sum += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    sum += w;
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    // The odd byte is the high half of a big-endian word padded with zero;
    // placed at its own address in a native word, the final swap fixes it up.
    uint8_t pad[2] = {*p, 0};
    uint16_t w;
    std::memcpy(&w, pad, 2);
    sum += w;
  }
  uint16_t folded = foldChecksum(sum);
  if constexpr (std::endian::native == std::endian::little) {
    folded = static_cast<uint16_t>(folded >> 8 | folded << 8);
  }
  return foldChecksum(uint64_t{folded} + initial);
}

uint16_t pseudoHeaderSum(std::span<const uint8_t> src, std::span<const uint8_t> dst,
                         Protocol protocol, uint32_t l4Length) {
  // IPv4 carries the length in 16 bits and IPv6 in 32; summing both halves
  // covers both, since the IPv4 high half is zero.
  uint64_t sum = onesComplementSum(src);
  sum += onesComplementSum(dst);
  sum += static_cast<uint8_t>(protocol);
  sum += l4Length >> 16;
  sum += l4Length & 0xffff;
  return foldChecksum(sum);
}

uint16_t transportChecksum(std::span<const uint8_t> src, std::span<const uint8_t> dst,
                           Protocol protocol, std::span<const uint8_t> segment) {
  uint16_t initial =
      protocol == Protocol::kIcmp
          ? 0
          : pseudoHeaderSum(src, dst, protocol, static_cast<uint32_t>(segment.size()));
  auto check = static_cast<uint16_t>(~onesComplementSum(segment, initial));
  return protocol == Protocol::kUdp ? udpChecksumForWire(check) : check;
}

}  // namespace sluice
