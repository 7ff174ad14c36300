// Internet checksum: known vectors from the RFCs, a byte-at-a-time reference
// on random buffers, and incremental updates against full recomputation.
#include "dataplane/checksum.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <random>
#include <vector>

namespace sluice {
namespace {

using Bytes = std::vector<uint8_t>;

// Naive reference: big-endian words one byte at a time, folded at the end.
uint16_t refSum(const Bytes& b, uint64_t sum = 0) {
  for (size_t i = 0; i < b.size(); ++i) sum += (i % 2 == 0) ? uint64_t{b[i]} << 8 : b[i];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

uint16_t word(const Bytes& b, size_t off) {
  return static_cast<uint16_t>(b[off] << 8 | b[off + 1]);
}

void put16(Bytes& b, size_t off, uint16_t v) {
  b[off] = static_cast<uint8_t>(v >> 8);
  b[off + 1] = static_cast<uint8_t>(v);
}

Bytes randomBytes(std::mt19937& rng, size_t n) {
  Bytes b(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

// ~sum with the checksum field at `off` taken as zero.
uint16_t fullChecksum(Bytes b, size_t off, uint64_t extra = 0) {
  put16(b, off, 0);
  return static_cast<uint16_t>(~refSum(b, extra));
}

TEST(ChecksumTest, Rfc1071ExampleSum) {
  // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2 (so the checksum is 220d).
  const Bytes data{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(onesComplementSum(data), 0xddf2);
  EXPECT_EQ(internetChecksum(data), 0x220d);
}

TEST(ChecksumTest, KnownIpv4HeaderChecksum) {
  // 192.168.0.1 -> 192.168.0.199 UDP, total length 115, DF, TTL 64: b861.
  Bytes header{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
               0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  EXPECT_EQ(internetChecksum(header), 0xb861);
  put16(header, 10, 0xb861);
  EXPECT_EQ(onesComplementSum(header), 0xffff);  // a valid header verifies to all ones
}

TEST(ChecksumTest, OddLengthPadsTheLastByteWithZero) {
  EXPECT_EQ(onesComplementSum(Bytes{0x01}), 0x0100);
  EXPECT_EQ(onesComplementSum(Bytes{0x00, 0x01, 0xf2}), 0xf201);
  EXPECT_EQ(onesComplementSum(Bytes{}), 0);
  EXPECT_EQ(onesComplementSum(Bytes{}, 0x1234), 0x1234);
}

TEST(ChecksumTest, MatchesTheReferenceOnRandomBuffersOfEveryLength) {
  std::mt19937 rng(1071);
  for (size_t n = 0; n < 600; ++n) {
    for (int rep = 0; rep < 5; ++rep) {
      Bytes b = randomBytes(rng, n);
      auto initial = static_cast<uint16_t>(rng());
      ASSERT_EQ(onesComplementSum(b, initial), refSum(b, initial)) << "length " << n;
    }
  }
}

TEST(ChecksumTest, LargeBuffersDoNotLoseCarries) {
  // 1 MiB of 0xff: every addition carries; the sum is still all ones.
  Bytes ones(1 << 20, 0xff);
  EXPECT_EQ(onesComplementSum(ones), 0xffff);
  std::mt19937 rng(7);
  Bytes big = randomBytes(rng, (1 << 20) + 3);
  EXPECT_EQ(onesComplementSum(big), refSum(big));
}

TEST(ChecksumTest, PartialSumsChainAtEvenOffsets) {
  std::mt19937 rng(2);
  Bytes b = randomBytes(rng, 101);
  std::span<const uint8_t> all(b);
  uint16_t chained = onesComplementSum(all.subspan(0, 40));
  chained = onesComplementSum(all.subspan(40, 20), chained);
  chained = onesComplementSum(all.subspan(60), chained);
  EXPECT_EQ(chained, onesComplementSum(all));
}

TEST(ChecksumTest, Ipv4PseudoHeaderIsSrcDstZeroProtocolLength) {
  auto src = IpAddress::parse("10.0.0.1").value();
  auto dst = IpAddress::parse("10.96.0.10").value();
  // 0a00 + 0001 + 0a60 + 000a + 0011 + 000d
  EXPECT_EQ(pseudoHeaderSum(src, dst, Protocol::kUdp, 13),
            refSum({0x0a, 0x00, 0x00, 0x01, 0x0a, 0x60, 0x00, 0x0a, 0x00, 0x11, 0x00, 0x0d}));
}

TEST(ChecksumTest, Ipv6PseudoHeaderHasA32BitLengthAndNextHeader) {
  auto src = IpAddress::parse("fd00::1").value();
  auto dst = IpAddress::parse("2001:db8::2").value();
  Bytes pseudo(src.bytes().begin(), src.bytes().end());
  pseudo.insert(pseudo.end(), dst.bytes().begin(), dst.bytes().end());
  for (uint8_t x : {0x00, 0x01, 0x00, 0x10, 0, 0, 0, 6}) pseudo.push_back(x);  // 65552, TCP
  EXPECT_EQ(pseudoHeaderSum(src, dst, Protocol::kTcp, 65552), refSum(pseudo));
}

TEST(ChecksumTest, TransportChecksumIncludesThePseudoHeaderExceptForIcmpV4) {
  auto src = IpAddress::parse("10.0.0.1").value();
  auto dst = IpAddress::parse("10.0.0.2").value();
  Bytes icmp{8, 0, 0, 0, 0x12, 0x34, 0, 1, 'h', 'i'};
  EXPECT_EQ(transportChecksum(src, dst, Protocol::kIcmp, icmp), internetChecksum(icmp));
  Bytes tcp(20, 0);
  tcp[12] = 0x50;
  uint16_t check = transportChecksum(src, dst, Protocol::kTcp, tcp);
  put16(tcp, 16, check);
  EXPECT_EQ(onesComplementSum(tcp, pseudoHeaderSum(src, dst, Protocol::kTcp, 20)), 0xffff);
}

TEST(ChecksumTest, UdpSendsAComputedZeroAs0xffff) {
  auto src = IpAddress::parse("10.0.0.1").value();
  auto dst = IpAddress::parse("10.0.0.2").value();
  // Pick the payload word so that pseudo-header + segment sum to 0xffff,
  // making ~sum zero, which UDP must not send (it means "no checksum").
  Bytes udp{0x9c, 0x40, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00};
  uint16_t partial = onesComplementSum(udp, pseudoHeaderSum(src, dst, Protocol::kUdp, 10));
  put16(udp, 8, static_cast<uint16_t>(0xffff - partial));
  EXPECT_EQ(
      static_cast<uint16_t>(~onesComplementSum(udp, pseudoHeaderSum(src, dst, Protocol::kUdp, 10))),
      0);
  EXPECT_EQ(transportChecksum(src, dst, Protocol::kUdp, udp), 0xffff);
  // TCP has no such rule.
  EXPECT_EQ(udpChecksumForWire(0), 0xffff);
  EXPECT_EQ(udpChecksumForWire(0x1234), 0x1234);
}

TEST(ChecksumTest, Rfc1624Eqn3GivesZeroWhereEqn2GaveNegativeZero) {
  // RFC 1624 §4: HC 0xdd2f, m 0x5555 -> m' 0x3285. Eqn. 2 (RFC 1141) gives
  // 0xffff; eqn. 3 gives 0x0000, what a full recomputation gives.
  static_assert(checksumUpdate16(0xdd2f, 0x5555, 0x3285) == 0x0000);
  EXPECT_EQ(checksumUpdate16(0xdd2f, 0x5555, 0x3285), 0x0000);
}

TEST(ChecksumTest, Incremental16MatchesFullRecomputation) {
  std::mt19937 rng(1624);
  for (int i = 0; i < 5000; ++i) {
    Bytes b = randomBytes(rng, 4 + 2 * (rng() % 40));  // the checksum and at least one word
    const size_t checkOff = 0;
    put16(b, checkOff, fullChecksum(b, checkOff));
    size_t off = 2 + 2 * (rng() % ((b.size() - 2) / 2));
    uint16_t oldWord = word(b, off);
    auto newWord = static_cast<uint16_t>(rng());
    put16(b, off, newWord);
    uint16_t updated = checksumUpdate16(word(b, checkOff), oldWord, newWord);
    ASSERT_EQ(updated, fullChecksum(b, checkOff)) << "iteration " << i;
  }
}

TEST(ChecksumTest, Incremental32MatchesFullRecomputationForIpv4Addresses) {
  std::mt19937 rng(32);
  for (int i = 0; i < 5000; ++i) {
    Bytes header = randomBytes(rng, 20);
    put16(header, 10, fullChecksum(header, 10));
    uint32_t oldAddr = uint32_t{word(header, 16)} << 16 | word(header, 18);
    auto newAddr = static_cast<uint32_t>(rng());
    put16(header, 16, static_cast<uint16_t>(newAddr >> 16));
    put16(header, 18, static_cast<uint16_t>(newAddr));
    ASSERT_EQ(checksumUpdate32(word(header, 10), oldAddr, newAddr), fullChecksum(header, 10));
  }
}

TEST(ChecksumTest, Incremental128MatchesFullRecomputationForIpv6Addresses) {
  std::mt19937 rng(128);
  for (int i = 0; i < 5000; ++i) {
    // A TCP segment's checksum over an IPv6 pseudo-header, destination changed.
    Bytes src = randomBytes(rng, 16);
    Bytes dst = randomBytes(rng, 16);
    Bytes seg = randomBytes(rng, 20 + rng() % 50);
    auto pseudo = [&] {
      return pseudoHeaderSum(src, dst, Protocol::kTcp, static_cast<uint32_t>(seg.size()));
    };
    put16(seg, 16, fullChecksum(seg, 16, pseudo()));
    Bytes newDst = randomBytes(rng, 16);
    std::array<uint8_t, 16> oldBytes, newBytes;
    std::copy(dst.begin(), dst.end(), oldBytes.begin());
    std::copy(newDst.begin(), newDst.end(), newBytes.begin());
    dst = newDst;
    ASSERT_EQ(checksumUpdate128(word(seg, 16), oldBytes, newBytes),
              fullChecksum(seg, 16, pseudo()));
  }
}

TEST(ChecksumTest, ADeltaOfSeveralChangesEqualsApplyingThemOneByOne) {
  std::mt19937 rng(3);
  for (int i = 0; i < 1000; ++i) {
    auto check = static_cast<uint16_t>(rng());
    uint16_t a = static_cast<uint16_t>(rng()), b = static_cast<uint16_t>(rng()),
             c = static_cast<uint16_t>(rng());
    ChecksumDelta d;
    d.add16(a, b);
    d.add16(b, c);  // the same word changed twice
    uint16_t stepwise = checksumUpdate16(checksumUpdate16(check, a, b), b, c);
    uint16_t direct = checksumUpdate16(check, a, c);
    // All three are the same ones'-complement value; only 0x0000/0xffff may
    // differ in representation.
    auto same = [](uint16_t x, uint16_t y) {
      return x == y || (x == 0 && y == 0xffff) || (x == 0xffff && y == 0);
    };
    ASSERT_TRUE(same(d.applyTo(check), stepwise)) << i;
    ASSERT_TRUE(same(d.applyTo(check), direct)) << i;
  }
}

TEST(ChecksumTest, AnUnchangedWordLeavesTheChecksumAlone) {
  for (uint32_t check = 1; check < 0xffff; check += 97) {
    EXPECT_EQ(checksumUpdate16(static_cast<uint16_t>(check), 0x1234, 0x1234), check);
  }
  EXPECT_TRUE(ChecksumDelta{}.empty());
}

}  // namespace
}  // namespace sluice
